"""The sequencer's step: payloads handed over by this process's ingest, the rest read from the store, queue order kept.

The step is driven directly (the service is not started) over a real SQLite store, so each test can say which
payloads the sequencer held and check what it read back and what the log holds afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from actas.core.merkle import leaf_hash
from actas.log.validate import Checked
from actas.service import sequencer as sequencer_module
from actas.service.runtime import Runtime, ServiceConfig
from actas.service.sequencer import BATCH, CADENCE, LOCK_POLL, Sequencer, pause_after
from actas.storage.base import NewEntry, Pending, Submission, SubmissionStore
from tests.service.conftest import Election


class Spy:
    """A store that records which queue reads the sequencer makes, and otherwise is the real one.

    With a sequencer, it checks that no queue read runs while the sequencer's hand-over lock is taken (ingest's
    committer would wait on it before every receipt); after_read runs once, right after the next queue read.
    """

    def __init__(self, store: SubmissionStore, sequencer: Sequencer | None = None) -> None:
        self.store = store
        self.sequencer = sequencer
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.after_read: Callable[[], None] | None = None

    def _reading(self) -> None:
        if self.sequencer is not None:
            assert not self.sequencer._held_lock.locked(), "a queue read while holding the hand-over lock"

    def _read(self) -> None:
        if self.after_read is not None:
            then, self.after_read = self.after_read, None
            then()

    def pending(self, limit: int) -> list[Pending]:
        self.calls.append(("pending", (limit,)))
        self._reading()
        try:
            return self.store.pending(limit)
        finally:
            self._read()

    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        self.calls.append(("pending_leaves", (limit,)))
        self._reading()
        try:
            return self.store.pending_leaves(limit)
        finally:
            self._read()

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


@pytest.fixture
def sequencer(runtime: Runtime) -> Sequencer:
    """The runtime's sequencer, not leading until a test says so."""
    assert isinstance(runtime.sequencer, Sequencer)
    return runtime.sequencer


@pytest.fixture
def leader(sequencer: Sequencer) -> Sequencer:
    """The runtime's sequencer as the leader, so that ingest hands it what it stores."""
    sequencer.is_leader = True
    return sequencer


@pytest.fixture
def spy(runtime: Runtime, sequencer: Sequencer) -> Iterator[Spy]:
    """A spied connection to the runtime's store, for the steps a test makes."""
    spied = Spy(runtime.open_store(), sequencer)
    try:
        yield spied
    finally:
        spied.store.close()


def _checked(runtime: Runtime, actas: list[bytes]) -> list[Checked]:
    checked = [runtime.ingest.check(data) for data in actas]
    assert all(c.entry is not None for c in checked)
    return checked


def _leaves(checked: list[Checked]) -> list[bytes]:
    return [c.entry.entry_hash for c in checked if c.entry is not None]


def _by_another_process(runtime: Runtime, checked: list[Checked]) -> None:
    """Store submissions through a second connection, as another server process would: nothing is handed over."""
    other = runtime.open_store()
    try:
        other.submit([Submission(c.entry, 1_750_000_000, c.signer) for c in checked if c.entry is not None])
    finally:
        other.close()


def _step(runtime: Runtime, spy: Spy) -> int:
    assert spy.sequencer is not None
    return spy.sequencer._step(spy, runtime._open_writer(spy))


def _logged_tail(runtime: Runtime, count: int) -> list[bytes]:
    store = runtime.open_store()
    try:
        size = store.size()
        return [leaf_hash(data) for data in store.read(size - count, size)]
    finally:
        store.close()


def test_a_step_takes_held_payloads_and_reads_back_only_the_others_in_queue_order(
    runtime: Runtime, election: Election, leader: Sequencer, spy: Spy
) -> None:
    """Held payloads are not read back; another process's are fetched; the log keeps the queue's order."""
    first, foreign, last = (_checked(runtime, election.actas[i : i + 3]) for i in (0, 3, 6))
    runtime.ingest.store(first).result(timeout=10)
    _by_another_process(runtime, foreign)
    runtime.ingest.store(last).result(timeout=10)
    assert _step(runtime, spy) == 9
    assert spy.names() == ["pending_leaves", "submitted"]
    assert spy.calls[1][1][0] == _leaves(foreign)
    assert _logged_tail(runtime, 9) == _leaves(first + foreign + last)
    assert spy.pending_count() == 0
    assert leader._held == {}


def test_with_nothing_held_a_step_reads_whole_rows(
    runtime: Runtime, election: Election, sequencer: Sequencer, spy: Spy
) -> None:
    """After a restart, or in a process that was not sequencing, the queue is read back in full."""
    assert not sequencer.is_leader
    checked = _checked(runtime, election.actas[:4])
    runtime.ingest.store(checked).result(timeout=10)
    assert sequencer._held == {}, "a process that does not sequence must not keep what it stored"
    assert _step(runtime, spy) == 4
    assert spy.names() == ["pending"]
    assert _logged_tail(runtime, 4) == _leaves(checked)


def test_held_payloads_are_bounded_and_what_was_dropped_is_read_back(
    runtime: Runtime, election: Election, leader: Sequencer, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past HELD_MAX the sequencer forgets what it holds; the store still gives every queued submission."""
    monkeypatch.setattr(sequencer_module, "HELD_MAX", 4)
    early, late = _checked(runtime, election.actas[:3]), _checked(runtime, election.actas[3:6])
    runtime.ingest.store(early).result(timeout=10)
    assert len(leader._held) == 3
    runtime.ingest.store(late).result(timeout=10)
    assert set(leader._held) == set(_leaves(late))
    assert _step(runtime, spy) == 6
    assert spy.calls[1] == ("submitted", (_leaves(early),))
    assert _logged_tail(runtime, 6) == _leaves(early + late)


def test_a_payload_handed_over_after_a_step_took_it_from_the_store_is_forgotten(
    runtime: Runtime, election: Election, leader: Sequencer, spy: Spy
) -> None:
    """A step that read the queue between a commit and its hand-over logged the row; the late payload is dropped."""
    checked = _checked(runtime, election.actas[:3])
    _by_another_process(runtime, checked)
    assert _step(runtime, spy) == 3  # nothing held: read from the store
    size = spy.size()
    leader.hand_over([Submission(c.entry, 1_750_000_000, c.signer) for c in checked if c.entry is not None])
    assert len(leader._held) == 3
    assert _step(runtime, spy) == 0
    assert leader._held == {}, "payloads of rows already sequenced must not be kept for ever"
    assert spy.size() == size


def test_a_payload_handed_over_while_the_queue_is_read_is_kept_and_used(
    runtime: Runtime, election: Election, leader: Sequencer, spy: Spy
) -> None:
    """A commit that lands during a step's read is not in what it read: its payload stays for the next step."""
    first, late = _checked(runtime, election.actas[:2]), _checked(runtime, election.actas[2:4])
    runtime.ingest.store(first).result(timeout=10)

    def commit_late() -> None:  # as ingest would: store, then hand over
        runtime.ingest.store(late).result(timeout=10)

    spy.after_read = commit_late
    assert _step(runtime, spy) == 2
    assert set(leader._held) == set(_leaves(late))
    spy.calls.clear()
    assert _step(runtime, spy) == 2
    assert spy.names() == ["pending_leaves"], "the late payloads were held: nothing to read back"
    assert _logged_tail(runtime, 4) == _leaves(first + late)


class OneLead:
    """A sequencer lock granted once and lost at once: one lead that ends straight after it starts."""

    def __init__(self) -> None:
        self.attempts = 0

    def try_acquire(self) -> bool:
        self.attempts += 1
        return self.attempts == 1

    def held(self) -> bool:
        return False

    def release(self) -> None:
        pass


def test_losing_the_lead_forgets_what_was_held(runtime: Runtime) -> None:
    """Once another process sequences, this one keeps none of the payloads its ingest handed over."""
    lock = OneLead()
    held = Submission(NewEntry(b"x", leaf_hash(b"x"), "acta", mesa="m", contest="c"), 0, "dev")
    handed: list[int] = []

    def while_leading() -> None:  # called as the lead starts, as its ingest would hand over
        own.hand_over([held])
        handed.append(len(own._held))

    own = Sequencer(runtime.open_store, runtime._open_writer, lock, while_leading)
    own.start()
    try:
        deadline = time.monotonic() + 10 + LOCK_POLL
        while lock.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.attempts >= 2, "the sequencer did not lead and step down"
        assert handed == [1], "the payload was not held during the lead"
        assert own._held == {}
        assert not own.is_leader
    finally:
        own.stop()


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
