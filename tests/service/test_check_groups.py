"""Single submissions checked in worker processes in groups: own verdicts, bounded groups, nobody left waiting."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import cycle, islice
from typing import Any

import pytest

import actas.service.ingest as ingest_module
from actas.core import canonical
from actas.core.b64 import b64decode
from actas.core.election import Election
from actas.errors import StorageError
from actas.log.validate import Checked, check_entries, check_one, init_worker
from actas.service.check_groups import GROUP_MAX, CheckGroups
from actas.service.ingest import Accepted, Ingest
from actas.service.ratelimit import Limit
from actas.storage.memory import MemoryLogStore
from tests.service.conftest import Election as Data
from tests.service.conftest import LiveServer
from tests.service.station import authority_of, flip_signature, signer_of
from tests.service.test_errors import (
    acta_of,
    assert_problem,
    device_of,
    post,
    post_batch,
    rejected,
    rogue_key,
    sign,
    variant,
    with_sig,
)


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


class RefusingPool(Executor):
    """A pool that is broken or shut down."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise RuntimeError("A process in the process pool was terminated abruptly")


class FailingPool(Executor):
    """A pool whose task fails in the worker."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(RuntimeError("worker crashed"))
        return future


class CancellingPool(Executor):
    """A pool shut down with its queued work cancelled."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.cancel()
        return future


@pytest.fixture
def definition(election: Data) -> Election:
    return Election.from_json((election.root / "election.json").read_bytes())


@pytest.fixture
def check_here(election: Data, definition: Election) -> Callable[[bytes], Checked]:
    authority = authority_of(election.root)
    return lambda data: check_one(data, definition, authority)


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    """The threads that settle results (the service's check threads)."""
    pool = ThreadPoolExecutor(2, thread_name_prefix="settling")
    yield pool
    pool.shutdown()


@pytest.fixture
def workers(election: Data, definition: Election) -> Iterator[ProcessPoolExecutor]:
    """Two real verification workers, started as the service starts them."""
    pool = ProcessPoolExecutor(
        2,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=init_worker,
        initargs=(definition.to_canonical(), str(authority_of(election.root))),
    )
    yield pool
    pool.shutdown(cancel_futures=True)


def test_each_submission_gets_its_own_verdict_from_the_workers(
    election: Data,
    workers: ProcessPoolExecutor,
    check_here: Callable[[bytes], Checked],
    threads: ThreadPoolExecutor,
) -> None:
    """Good and forged actas sent at once from several threads: each future holds what check_one says of it,
    settled on the service's threads, not on the pool's own."""
    groups = CheckGroups(workers, 2, check_here, threads)
    items = [flip_signature(a) if n % 3 == 0 else a for n, a in enumerate(election.actas)]
    futures: dict[int, Future[Checked]] = {}
    settled_on: list[str] = []

    def send(start: int) -> None:
        for n in range(start, len(items), 4):
            futures[n] = groups.check(items[n])
            futures[n].add_done_callback(lambda _: settled_on.append(threading.current_thread().name))

    senders = [threading.Thread(target=send, args=(start,)) for start in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    try:
        for n, data in enumerate(items):
            assert verdict(futures[n].result(timeout=30)) == verdict(check_here(data))
        assert sum(futures[n].result().error is not None for n in futures) == len(range(0, len(items), 3))
    finally:
        groups.close()
    eventually(lambda: len(settled_on) == len(items))
    assert all(name.startswith("settling") for name in settled_on), set(settled_on)


def test_groups_grow_while_every_worker_is_busy(
    election: Data, definition: Election, check_here: Callable[[bytes], Checked], threads: ThreadPoolExecutor
) -> None:
    """At most one group per worker in flight; what arrives meanwhile waits and goes in the next, ≤ GROUP_MAX."""
    pool = GatedPool(definition, election)
    groups = CheckGroups(pool, 2, check_here, threads)
    items = (election.actas * 4)[:150]
    futures = [groups.check(items[0])]
    eventually(lambda: pool.groups == [1])
    futures.append(groups.check(items[1]))
    eventually(lambda: pool.groups == [1, 1])
    futures += [groups.check(data) for data in items[2:]]  # both workers busy: these wait
    time.sleep(0.1)
    assert pool.groups == [1, 1]
    pool.gate.set()
    try:
        results = [f.result(timeout=30) for f in futures]
    finally:
        groups.close()
    assert [r.entry.data if r.entry else None for r in results] == items
    assert pool.groups == [1, 1, GROUP_MAX, GROUP_MAX, len(items) - 2 - 2 * GROUP_MAX]
    assert pool.most_running == 2


def test_closing_refuses_what_was_not_sent_and_waits_for_what_was(
    election: Data, definition: Election, check_here: Callable[[bytes], Checked], threads: ThreadPoolExecutor
) -> None:
    pool = GatedPool(definition, election)
    groups = CheckGroups(pool, 1, check_here, threads)
    sent = groups.check(election.actas[0])
    eventually(lambda: pool.groups == [1])
    waiting = [groups.check(data) for data in election.actas[1:20]]  # the only worker is busy
    closing = threading.Thread(target=groups.close)
    closing.start()
    eventually(lambda: groups._closed)
    with pytest.raises(StorageError, match="stopping"):
        groups.check(election.actas[0]).result(timeout=1)
    pool.gate.set()
    closing.join(timeout=30)
    assert not closing.is_alive()
    assert sent.result(timeout=10).entry is not None
    for future in waiting:
        with pytest.raises(StorageError, match="stopping"):
            future.result(timeout=10)
    assert pool.groups == [1]


@pytest.mark.parametrize("pool", [RefusingPool(), FailingPool()], ids=["refused", "failed"])
def test_what_the_workers_cannot_check_is_checked_here(
    election: Data,
    pool: Executor,
    check_here: Callable[[bytes], Checked],
    threads: ThreadPoolExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken pool costs speed, never an answer: the same verdicts, made in this process; said once in the log."""
    groups = CheckGroups(pool, 1, check_here, threads)
    items = [flip_signature(a) if n % 2 else a for n, a in enumerate(election.actas[:12])]
    try:
        futures = [groups.check(data) for data in items]
        for future, data in zip(futures, items, strict=True):
            assert verdict(future.result(timeout=10)) == verdict(check_here(data))
        again = groups.check(items[0])  # the slot was given back: the next group is checked too
        assert again.result(timeout=10).entry is not None
    finally:
        groups.close()
    assert len([r for r in caplog.records if "check workers failed" in r.message]) == 1


def test_a_pool_shut_down_with_the_group_in_it_fails_its_callers(
    election: Data, check_here: Callable[[bytes], Checked], threads: ThreadPoolExecutor
) -> None:
    groups = CheckGroups(CancellingPool(), 1, check_here, threads)
    try:
        for future in [groups.check(data) for data in election.actas[:5]]:
            with pytest.raises(StorageError, match="stopping"):
                future.result(timeout=10)
    finally:
        groups.close()


def test_results_that_come_back_after_the_threads_stopped_are_answered(
    election: Data, definition: Election, check_here: Callable[[bytes], Checked]
) -> None:
    pool = GatedPool(definition, election)
    stopped = ThreadPoolExecutor(1)
    groups = CheckGroups(pool, 1, check_here, stopped)
    future = groups.check(election.actas[0])
    eventually(lambda: pool.groups == [1])
    stopped.shutdown()
    pool.gate.set()
    with pytest.raises(StorageError, match="stopping"):
        future.result(timeout=10)
    groups.close()


# -- the service with -j workers ----------------------------------------------------------------------------------


def test_every_answer_to_a_single_post_is_the_same_when_checked_in_workers(
    serve: Callable[..., LiveServer], election: Data
) -> None:
    """With worker processes (-j 2) single POSTs are checked there: each error class, resends and conflicts alike."""
    server = serve(workers=2, device_limit=Limit(rate=0.001, burst=1))
    first = post(server, election.actas[0])
    assert first.status_code == 201, first.text
    resend = post(server, election.actas[0])
    assert resend.status_code == 200
    assert canonical.encode(resend.json()["receipt"]) == canonical.encode(first.json()["receipt"])
    rejected(server, b"{not json", 400, "malformed", "invalid JSON")
    data = election.actas[1]
    signature = bytearray(b64decode(canonical.decode(data)["sig"], "sig", 64))
    signature[17] ^= 0x04
    rejected(server, with_sig(data, bytes(signature)), 422, "bad-signature", "device signature does not verify")
    acta = acta_of(election.actas[2])
    null = acta.registered - acta.valid_votes - acta.blank + 1
    over = sign(dataclasses.replace(acta, null=null), device_of(election, acta.mesa))
    rejected(server, over, 422, "rule-broken", f"exceeds registered {acta.registered}")
    rejected(server, sign(acta_of(election.actas[3]), rogue_key()), 403, "unenrolled-key", "not enrolled")
    limited = post(server, variant(election, 0))  # device 0's burst went on its first acta
    assert_problem(limited, 429, "rate-limited", "rate limit of device key")
    assert post(server, election.actas[4]).status_code == 201


def test_posts_are_answered_after_a_worker_dies(serve: Callable[..., LiveServer], election: Data) -> None:
    """SIGKILL of a check worker breaks the pool; single POSTs and batches are then checked in the service process."""
    server = serve(workers=2)
    assert post(server, election.actas[0]).status_code == 201
    pool = server.runtime._pool
    assert isinstance(pool, ProcessPoolExecutor)
    os.kill(next(iter(pool._processes)), signal.SIGKILL)
    for data in election.actas[1:4]:
        response = post(server, data)
        assert response.status_code == 201, response.text
    lines = list(islice(cycle(election.actas[4:]), 600))  # over 2 × 256 lines: a batch for the workers
    batch = post_batch(server, lines)
    assert batch.status_code == 200, batch.text
    result = batch.json()
    assert len(result["results"]) == len(lines)
    assert result["rejected"] == 0
    assert result["accepted"] == len(set(lines))


def test_a_batch_keeps_a_few_chunks_in_the_workers_at_once(
    election: Data, definition: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So single POSTs wait behind a few chunks, not a whole upload; the results still come back in order."""
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
