"""The sequencer's step: payloads handed over by this process's ingest, the rest read from the store, queue order kept.

The step is driven directly (the service is not started) over a real SQLite store, so each test can say which
payloads the sequencer held and check what it read back and what the log holds afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from actas.core.merkle import leaf_hash
from actas.log.validate import Checked
from actas.service import sequencer as sequencer_module
from actas.service.runtime import Runtime, ServiceConfig
from actas.service.sequencer import BATCH, CADENCE, Sequencer, pause_after
from actas.storage.base import Pending, Submission, SubmissionStore
from tests.service.conftest import Election


class Spy:
    """A store that records which queue reads the sequencer makes, and otherwise is the real one."""

    def __init__(self, store: SubmissionStore) -> None:
        self.store = store
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def pending(self, limit: int) -> list[Pending]:
        self.calls.append(("pending", (limit,)))
        return self.store.pending(limit)

    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        self.calls.append(("pending_leaves", (limit,)))
        return self.store.pending_leaves(limit)

    def submitted(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        self.calls.append(("submitted", (list(hashes),)))
        return self.store.submitted(hashes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def names(self) -> list[str]:
        """The queue reads made, in order."""
        return [name for name, _ in self.calls]


@pytest.fixture
def runtime(election: Election) -> Iterator[Runtime]:
    """A runtime over the election, never started: its sequencer is stepped by hand."""
    running = Runtime(ServiceConfig(data_dir=election.root, workers=0))
    try:
        yield running
    finally:
        running.close()


def _checked(runtime: Runtime, actas: list[bytes]) -> list[Checked]:
    checked = [runtime.ingest.check(data) for data in actas]
    assert all(c.entry is not None for c in checked)
    return checked


def _by_another_process(runtime: Runtime, checked: list[Checked]) -> None:
    """Store submissions through a second connection, as another server process would: nothing is handed over."""
    other = runtime.open_store()
    try:
        other.submit([Submission(c.entry, 1_750_000_000, c.signer) for c in checked if c.entry is not None])
    finally:
        other.close()


def _step(runtime: Runtime, spy: Spy) -> int:
    sequencer = runtime.sequencer
    assert sequencer is not None
    writer = runtime._open_writer(spy)
    return sequencer._step(spy, writer)


def _logged_tail(runtime: Runtime, count: int) -> list[bytes]:
    store = runtime.open_store()
    try:
        size = store.size()
        return [leaf_hash(data) for data in store.read(size - count, size)]
    finally:
        store.close()


def test_a_step_takes_held_payloads_and_reads_back_only_the_others_in_queue_order(
    runtime: Runtime, election: Election
) -> None:
    """Held payloads are not read back; another process's are fetched; the log keeps the queue's order."""
    sequencer = runtime.sequencer
    assert sequencer is not None
    sequencer.is_leader = True
    first, foreign, last = (_checked(runtime, election.actas[i : i + 3]) for i in (0, 3, 6))
    runtime.ingest.store(first).result(timeout=10)
    _by_another_process(runtime, foreign)
    runtime.ingest.store(last).result(timeout=10)
    spy = Spy(runtime.open_store())
    try:
        assert _step(runtime, spy) == 9
        assert spy.names() == ["pending_leaves", "submitted"]
        fetched = spy.calls[1][1][0]
        assert fetched == [c.entry.entry_hash for c in foreign if c.entry is not None]
        expected = [c.entry.entry_hash for c in first + foreign + last if c.entry is not None]
        assert _logged_tail(runtime, 9) == expected
        assert spy.pending_count() == 0
        assert sequencer._held == {}
    finally:
        spy.store.close()


def test_with_nothing_held_a_step_reads_whole_rows(runtime: Runtime, election: Election) -> None:
    """After a restart, or in a process that was not sequencing, the queue is read back in full."""
    sequencer = runtime.sequencer
    assert sequencer is not None
    assert not sequencer.is_leader
    checked = _checked(runtime, election.actas[:4])
    runtime.ingest.store(checked).result(timeout=10)
    assert sequencer._held == {}, "a process that does not sequence must not keep what it stored"
    spy = Spy(runtime.open_store())
    try:
        assert _step(runtime, spy) == 4
        assert spy.names() == ["pending"]
        assert _logged_tail(runtime, 4) == [c.entry.entry_hash for c in checked if c.entry is not None]
    finally:
        spy.store.close()


def test_held_payloads_are_bounded_and_what_was_dropped_is_read_back(
    runtime: Runtime, election: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past HELD_MAX the sequencer forgets what it holds; the store still gives every queued submission."""
    monkeypatch.setattr(sequencer_module, "HELD_MAX", 4)
    sequencer = runtime.sequencer
    assert sequencer is not None
    sequencer.is_leader = True
    early, late = _checked(runtime, election.actas[:3]), _checked(runtime, election.actas[3:6])
    runtime.ingest.store(early).result(timeout=10)
    assert len(sequencer._held) == 3
    runtime.ingest.store(late).result(timeout=10)
    assert set(sequencer._held) == {c.entry.entry_hash for c in late if c.entry is not None}
    spy = Spy(runtime.open_store())
    try:
        assert _step(runtime, spy) == 6
        assert spy.calls[1] == ("submitted", ([c.entry.entry_hash for c in early if c.entry is not None],))
        assert _logged_tail(runtime, 6) == [c.entry.entry_hash for c in early + late if c.entry is not None]
    finally:
        spy.store.close()


def test_a_held_payload_already_logged_elsewhere_changes_nothing(runtime: Runtime, election: Election) -> None:
    """A payload held for a leaf another sequencer took meanwhile is never appended a second time."""
    sequencer = runtime.sequencer
    assert sequencer is not None
    sequencer.is_leader = True
    checked = _checked(runtime, election.actas[:2])
    runtime.ingest.store(checked).result(timeout=10)
    spy = Spy(runtime.open_store())
    try:
        assert _step(runtime, spy) == 2
        size = spy.size()
        sequencer.hand_over([Submission(c.entry, 1, c.signer) for c in checked if c.entry is not None])
        assert _step(runtime, spy) == 0
        assert spy.size() == size
    finally:
        spy.store.close()


def test_pause_after_a_step() -> None:
    """No pause while full batches wait; otherwise the cadence, counted from the start of the step."""
    assert pause_after(BATCH, 0.0) == 0.0
    assert pause_after(1, 0.05) == pytest.approx(CADENCE - 0.05)
    assert pause_after(BATCH - 1, 0.0) == CADENCE
    assert pause_after(1, CADENCE + 1) == 0.0


def test_hand_over_wakes_the_loop_even_when_not_sequencing() -> None:
    """Whatever it holds, a hand-over tells the loop that submissions wait."""
    sequencer = Sequencer(lambda: None, lambda store: None, None, lambda: None)  # type: ignore[arg-type,return-value]
    sequencer.hand_over([])
    assert sequencer._wake.is_set()
