"""Single submissions checked in workers the event loop talks to: own verdicts, bounded groups, none left waiting."""

from __future__ import annotations

import asyncio
import dataclasses
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
from actas.log.validate import Checked, check_entries, check_one
from actas.service.check_link import GROUP_BYTES, GROUP_MAX, CheckLink
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


class RecordingLink(CheckLink):
    """A CheckLink that records the size of every group it sends."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.groups: list[int] = []

    def _send(self, worker: Any) -> None:
        before = len(self._waiting)
        super()._send(worker)
        self.groups.append(before - len(self._waiting))


@pytest.fixture
def link_of(
    election: Data, definition: Election, check_here: Callable[[bytes], Checked], threads: ThreadPoolExecutor
) -> Iterator[Callable[[int], RecordingLink]]:
    """Started links with real worker processes; each is closed after the test."""
    links: list[RecordingLink] = []

    def make(workers: int) -> RecordingLink:
        link = RecordingLink(workers, definition.to_canonical(), str(authority_of(election.root)), check_here, threads)
        link.start()
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


def run_on_loop(work: Callable[[], Any], timeout: float = 60) -> Any:
    """Run a coroutine function on a new event loop (the service's, in a test)."""
    return asyncio.run(asyncio.wait_for(work(), timeout))


def test_each_submission_gets_its_own_verdict_from_the_workers(
    election: Data, link_of: Callable[[int], RecordingLink], check_here: Callable[[bytes], Checked]
) -> None:
    """Good and forged actas, all at once: each future holds what check_one says of it, checked in the workers."""
    link = link_of(2)
    items = [flip_signature(a) if n % 3 == 0 else a for n, a in enumerate(election.actas)]

    async def work() -> list[Checked]:
        return list(await asyncio.gather(*(link.check(data) for data in items)))

    results = run_on_loop(work)
    assert [verdict(r) for r in results] == [verdict(check_here(data)) for data in items]
    assert sum(r.error is not None for r in results) == len(range(0, len(items), 3))
    assert sum(link.groups) == len(items)  # every one went to a worker


def test_groups_grow_while_every_worker_is_busy(election: Data, link_of: Callable[[int], RecordingLink]) -> None:
    """At most one group per worker in flight; what arrives meanwhile waits and goes in the next, ≤ GROUP_MAX."""
    link = link_of(2)
    items = (election.actas * 4)[:150]

    async def work() -> list[Checked]:
        futures = [link.check(data) for data in items]  # before any answer can come back
        assert link.groups == [1, 1]
        return list(await asyncio.gather(*futures))

    results = run_on_loop(work)
    assert [r.entry.data if r.entry else None for r in results] == items
    assert link.groups == [1, 1, GROUP_MAX, GROUP_MAX, len(items) - 2 - 2 * GROUP_MAX]


def test_a_group_stays_small_enough_to_send_without_blocking(
    election: Data, link_of: Callable[[int], RecordingLink]
) -> None:
    link = link_of(1)
    big = [a + b" " * (GROUP_BYTES // 4) for a in election.actas[:12]]  # not canonical: rejected, still checked

    async def work() -> list[Checked]:
        return list(await asyncio.gather(*(link.check(data) for data in big)))

    results = run_on_loop(work)
    assert all(r.error is not None for r in results)
    assert link.groups[0] == 1
    assert max(link.groups[1:]) <= 4


def test_closing_refuses_what_was_not_sent_and_waits_for_what_was(
    election: Data, link_of: Callable[[int], RecordingLink]
) -> None:
    link = link_of(1)

    async def work() -> tuple[Checked, list[BaseException | Checked]]:
        sent = link.check(election.actas[0])
        waiting = [link.check(data) for data in election.actas[1:20]]  # the only worker is busy
        loop = asyncio.get_running_loop()
        pipes = [w.conn.fileno() for w in link._workers]
        closing = loop.run_in_executor(None, link.close)
        checked = await sent
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        await closing
        assert not any(loop.remove_reader(fd) for fd in pipes)  # the loop no longer watches the closed pipes
        with pytest.raises(StorageError, match="stopping"):
            await link.check(election.actas[0])
        return checked, outcomes

    checked, outcomes = run_on_loop(work)
    assert checked.entry is not None
    assert all(isinstance(o, StorageError) and "stopping" in str(o) for o in outcomes)
    assert link.groups == [1]
    assert not any(w.process.is_alive() for w in link._workers)  # the workers ended with the link


def test_a_worker_that_dies_costs_speed_not_answers(
    election: Data,
    link_of: Callable[[int], RecordingLink],
    check_here: Callable[[bytes], Checked],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL of both workers: their groups and every later submission are checked here, with the same verdicts;
    the log says so once."""
    link = link_of(2)
    items = [flip_signature(a) if n % 2 else a for n, a in enumerate(election.actas[:12])]

    async def work() -> list[Checked]:
        assert (await link.check(items[0])).entry is not None
        for worker in link._workers:
            assert worker.process.pid is not None
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.join(10)
        first = await asyncio.gather(*(link.check(data) for data in items))  # sent to the dead worker, or not
        later = await asyncio.gather(*(link.check(data) for data in items))  # no worker left: checked here
        return list(first) + list(later)

    results = run_on_loop(work)
    assert [verdict(r) for r in results] == [verdict(check_here(d)) for d in items * 2]
    assert not any(w.alive for w in link._workers)
    assert len([r for r in caplog.records if "check worker failed" in r.message]) == 1


def test_without_workers_or_threads_a_check_says_the_service_stops(
    election: Data, link_of: Callable[[int], RecordingLink], threads: ThreadPoolExecutor
) -> None:
    link = link_of(1)

    async def work() -> None:
        assert (await link.check(election.actas[0])).entry is not None
        worker = link._workers[0].process
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        threads.shutdown()
        for _ in range(2):  # found dead on the way, then known dead
            with pytest.raises(StorageError, match="stopping"):
                await link.check(election.actas[1])

    run_on_loop(work)


def test_before_start_and_on_another_loop_submissions_are_checked_here(
    election: Data,
    definition: Election,
    check_here: Callable[[bytes], Checked],
    threads: ThreadPoolExecutor,
) -> None:
    link = RecordingLink(1, definition.to_canonical(), str(authority_of(election.root)), check_here, threads)

    async def work() -> Checked:
        return await link.check(election.actas[0])

    try:
        assert run_on_loop(work).entry is not None  # not started: no worker
        link.start()
        assert run_on_loop(work).entry is not None  # binds to this loop
        assert link.groups == [1]
        assert run_on_loop(work).entry is not None  # a different loop: checked here, never read by the first
        assert link.groups == [1]
    finally:
        link.close()
    assert not any(w.process.is_alive() for w in link._workers)


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
    """SIGKILL of every single-POST worker and of a batch worker (which breaks the pool): both are then checked in
    the service process."""
    server = serve(workers=2)
    assert post(server, election.actas[0]).status_code == 201
    pool = server.runtime._pool
    link = server.runtime.check_link
    assert isinstance(pool, ProcessPoolExecutor)
    assert link is not None
    os.kill(next(iter(pool._processes)), signal.SIGKILL)
    for worker in link._workers:
        assert worker.process.pid is not None
        os.kill(worker.process.pid, signal.SIGKILL)
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
