"""The committer: long requests in parts, one batch's failure kept to its own items."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

import actas.service.ingest as ingest_module
from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.receipt import parse_receipt
from actas.errors import EnrollmentError, StorageError
from actas.log.validate import Checked, check_entries, check_one
from actas.service.ingest import Accepted, Ingest
from actas.storage.base import NewEntry
from actas.storage.memory import MemoryLogStore
from tests.service.conftest import Election as Data
from tests.service.station import authority_of, flip_signature, signer_of

AUTHORITY = Signer.from_seed("results.example.org/ingest", b"\x07" * 32)


def item(n: int) -> Checked:
    """A checked acta for mesa m<n> (the committer does not check again)."""
    data = b"acta %d" % n
    return Checked(NewEntry(data, hashlib.sha256(data).digest(), "acta", mesa=f"m{n}", contest="c"), None, (), "dev")


@pytest.fixture
def ingest(election: Data) -> Iterator[Ingest]:
    """An Ingest over an in-memory store (the stores have their own suite)."""
    definition = Election.from_json((election.root / "election.json").read_bytes())
    running = Ingest(MemoryLogStore(), definition, AUTHORITY, lambda: 1_750_000_000.0)
    yield running
    running.close()


def test_a_long_request_is_committed_in_parts_and_answered_in_order(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past JOB_MAX items a request becomes several commits; the answer keeps the request's order."""
    monkeypatch.setattr(ingest_module, "JOB_MAX", 4)
    monkeypatch.setattr(ingest_module, "COMMIT_MAX", 4)
    outcomes = ingest.store([item(n) for n in range(11)]).result(timeout=10)
    expected = [item(n).entry for n in range(11)]
    assert [o.leaf_hash for o in outcomes if isinstance(o, Accepted)] == [e.entry_hash for e in expected if e]
    receipts = [parse_receipt(o.receipt_json.encode()) for o in outcomes if isinstance(o, Accepted)]
    assert max(r.batch_size for r in receipts) <= 8  # no batch past COMMIT_MAX + JOB_MAX leaves
    assert len({r.signature for r in receipts}) >= 2
    for receipt in receipts:
        receipt.check(AUTHORITY.verifier)


def test_a_receipt_that_cannot_be_made_fails_only_its_item(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resend whose stored batch cannot be read gets a storage error; the new acta beside it is answered."""
    first = ingest.store([item(1)]).result(timeout=10)[0]
    assert isinstance(first, Accepted)
    ingest._batches.clear()  # as after a restart: the batch must come from the store
    ingest._kept_leaves = 0

    def unreadable(batch: int) -> None:
        raise StorageError(f"batch {batch}: disk error")

    monkeypatch.setattr(ingest._store, "receipt_batch", unreadable)
    resent, new = ingest.store([item(1), item(2)]).result(timeout=10)
    assert isinstance(resent, StorageError)
    assert isinstance(new, Accepted)
    assert new.status == "accepted"
    parse_receipt(new.receipt_json.encode()).check(AUTHORITY.verifier)
    monkeypatch.undo()
    again = ingest.store([item(1)]).result(timeout=10)[0]  # readable again: the first receipt, byte for byte
    assert isinstance(again, Accepted)
    assert again.receipt_json == first.receipt_json


def test_the_cache_of_recent_batches_stays_bounded_by_leaves(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small commits: the oldest batches are dropped once the kept leaves pass the bound, newest kept."""
    monkeypatch.setattr(ingest_module, "BATCH_LEAVES_KEPT", 10)
    for n in range(0, 30, 3):  # ten commits of three new leaves, then a resend of the newest
        ingest.store([item(n), item(n + 1), item(n + 2)]).result(timeout=10)
    kept = list(ingest._batches.values())
    assert sum(len(b.leaves) for b in kept) == ingest._kept_leaves == 9
    newest = [item(n).entry for n in (27, 28, 29)]
    assert kept[-1].leaves == tuple(e.entry_hash for e in newest if e is not None)
    again = ingest.store([item(29)]).result(timeout=10)[0]
    assert isinstance(again, Accepted)
    assert again.status == "duplicate"
    assert ingest._kept_leaves == 9


def test_a_check_cancelled_by_shutdown_fails_its_caller(ingest: Ingest, election: Data) -> None:
    """A single submission still queued for a check when the check threads shut down is answered, not left waiting."""
    threads = ThreadPoolExecutor(1)
    gate = threading.Event()
    threads.submit(gate.wait)  # the only thread is busy: the next check stays queued
    waiting = ingest.check_and_store(election.actas[0], threads)
    threads.shutdown(wait=False, cancel_futures=True)
    gate.set()
    with pytest.raises(StorageError, match="stopping"):
        waiting.result(timeout=10)


def test_storing_after_close_fails_at_once(election: Data) -> None:
    """Once the committer has stopped, a store is refused at once instead of queued for nobody."""
    definition = Election.from_json((election.root / "election.json").read_bytes())
    closed = Ingest(MemoryLogStore(), definition, AUTHORITY, lambda: 1_750_000_000.0)
    closed.close()
    with pytest.raises(StorageError, match="stopping"):
        closed.store([item(1)]).result(timeout=1)


def verdict(checked: Checked) -> tuple[object, ...]:
    """What a check decided, comparable across processes (errors by type and text)."""
    error = checked.error
    return (checked.entry, type(error), str(error) if error else None, checked.warnings, checked.signer)


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class GatedPool(Executor):
    """Checks chunks on threads of this process once the gate opens; records each chunk and how many ran at once."""

    def __init__(self, election: Election, data: Data) -> None:
        self.election = election
        self.authority = authority_of(data.root)
        self.gate = threading.Event()
        self.groups: list[int] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(8)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        chunk: Sequence[bytes] = args[0]
        with self._lock:
            self.groups.append(len(chunk))
            self.running += 1
            self.most_running = max(self.most_running, self.running)

        def run() -> list[Checked]:
            self.gate.wait(10)
            with self._lock:
                self.running -= 1
            return check_entries(chunk, self.election, self.authority)

        return self._threads.submit(run)


@pytest.fixture
def definition(election: Data) -> Election:
    return Election.from_json((election.root / "election.json").read_bytes())


def test_a_batch_keeps_a_few_chunks_in_the_workers_at_once(
    election: Data, definition: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a second upload waits behind a few chunks, not a whole upload; the results still come back in order."""
    monkeypatch.setattr(ingest_module, "CHUNK", 3)
    pool = GatedPool(definition, election)
    ingest = Ingest(MemoryLogStore(), definition, signer_of(election.root), time.time, pool, workers=2)
    items = [flip_signature(a) if n % 5 == 0 else a for n, a in enumerate(election.actas)]
    checked: list[Checked] = []
    checking = threading.Thread(target=lambda: checked.extend(ingest.check_many(items)))
    try:
        checking.start()
        eventually(lambda: len(pool.groups) == 2 * ingest_module.CHUNKS_PER_WORKER)
        time.sleep(0.1)
        assert len(pool.groups) == 2 * ingest_module.CHUNKS_PER_WORKER  # the rest waits for the first to come back
        pool.gate.set()
        checking.join(timeout=30)
    finally:
        pool.gate.set()
        ingest.close()
    expected = [ingest._enrollment(check_one(data, definition, pool.authority)) for data in items]
    assert [verdict(c) for c in checked] == [verdict(c) for c in expected]
    assert len(pool.groups) == -(-len(items) // 3)


def test_a_store_racing_close_is_answered(election: Data, definition: Election) -> None:
    """A job is never queued after the committer's stop marker: it is committed, or refused at once."""
    ingest = Ingest(MemoryLogStore(), definition, signer_of(election.root), time.time)
    put = ingest._queue.put

    def slow_put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:  # the job, not the stop marker: widens the window between checking closed and putting
            time.sleep(0.2)
        put(item, block, timeout)

    ingest._queue.put = slow_put  # type: ignore[method-assign]
    checked = check_one(election.actas[0], definition, authority_of(election.root))
    stored: list[Future[list[Any]]] = []
    storing = threading.Thread(target=lambda: stored.append(ingest.store([checked])))
    storing.start()
    time.sleep(0.05)  # the store is inside its put
    ingest.close()
    storing.join()
    outcome = stored[0].result(timeout=10)[0]
    assert isinstance(outcome, Accepted)


def test_threads_that_are_shut_down_answer_stopping_not_a_fault(election: Data, definition: Election) -> None:
    """A submission that arrives as the service stops hears "stopping" (503-like, send it again), never a 500."""
    ingest = Ingest(MemoryLogStore(), definition, signer_of(election.root), time.time)
    stopped = ThreadPoolExecutor(1)
    stopped.shutdown()
    checked = check_one(election.actas[0], definition, authority_of(election.root))
    try:
        futures = [
            ingest.check_and_store(election.actas[0], stopped),
            ingest.admit_and_store(checked, lambda _: None, stopped),
        ]
        for future in futures:
            with pytest.raises(StorageError, match="stopping"):
                future.result(timeout=10)
        # Without admit() no thread is needed: answered (this store has no enrollments) all the same.
        assert isinstance(ingest.admit_and_store(checked).result(timeout=10), EnrollmentError)
    finally:
        ingest.close()


def test_a_fault_in_a_check_or_in_admit_is_answered_never_left_waiting(election: Data, definition: Election) -> None:
    """An unexpected error while checking or admitting one submission fails its own future; a refusal by admit()
    (a project error, such as a rate limit) is its answer; nothing is stored for either."""
    store = MemoryLogStore()
    ingest = Ingest(store, definition, signer_of(election.root), time.time)
    threads = ThreadPoolExecutor(1)
    checked = check_one(election.actas[0], definition, authority_of(election.root))
    assert checked.signer is not None
    assert checked.entry is not None
    assert checked.entry.mesa is not None
    ingest.add_enrollment(checked.signer, [checked.entry.mesa])  # so admit() is reached

    def broken(_: Checked) -> None:
        raise RuntimeError("admit broke")

    def refusing(_: Checked) -> None:
        raise StorageError("refused")

    def faulty_check(_: bytes) -> Checked:
        raise RuntimeError("check broke")

    try:
        with pytest.raises(RuntimeError, match="admit broke"):
            ingest.admit_and_store(checked, broken, threads).result(timeout=10)
        assert isinstance(ingest.admit_and_store(checked, refusing).result(timeout=10), StorageError)
        ingest.check = faulty_check  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError, match="check broke"):
            ingest.check_and_store(election.actas[0], threads).result(timeout=10)
        assert store.pending_count() == 0
    finally:
        threads.shutdown()
        ingest.close()
