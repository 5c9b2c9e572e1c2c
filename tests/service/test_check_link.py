"""Single submissions checked in workers the event loop talks to: own verdicts, bounded groups, none left waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import functools
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import cycle, islice
from multiprocessing.connection import Connection
from typing import Any

import pytest

import actas.service.check_link as check_link
from actas.core import canonical
from actas.core.b64 import b64decode
from actas.core.election import Election
from actas.errors import StorageError
from actas.log.validate import Checked, check_one
from actas.service.check_link import GROUP_BYTES, GROUP_MAX, CheckLink
from actas.service.frames import frame
from actas.service.ratelimit import Limit
from tests.service.conftest import Election as Data
from tests.service.conftest import LiveServer
from tests.service.station import authority_of, flip_signature
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


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A test whose event loop is blocked cannot time itself out: end the run, with every thread's stack."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def definition(election: Data) -> Election:
    return Election.from_json((election.root / "election.json").read_bytes())


@pytest.fixture
def check_here(election: Data, definition: Election) -> Callable[[bytes], Checked]:
    authority = authority_of(election.root)
    return lambda data: check_one(data, definition, authority)


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    """The service's check threads: the fallback."""
    pool = ThreadPoolExecutor(2, thread_name_prefix="fallback")
    yield pool
    pool.shutdown()


class RecordingLink(CheckLink):
    """A CheckLink that records the size of every group it sends, how many submissions it checked itself (the
    fallback) and every worker process it started."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.groups: list[int] = []
        self.here = 0
        self.started: list[Any] = []

    def _send(self, worker: Any) -> None:
        before = len(self._waiting)
        super()._send(worker)
        self.groups.append(before - len(self._waiting))

    def _check_each(self, loop: asyncio.AbstractEventLoop, group: Sequence[Any]) -> None:
        self.here += sum(not future.done() for _, future in group)
        super()._check_each(loop, group)

    def _spawn(self) -> Any:
        worker = super()._spawn()
        self.started.append(worker.process)
        return worker


@pytest.fixture
def new_link(
    election: Data, definition: Election, check_here: Callable[[bytes], Checked], threads: ThreadPoolExecutor
) -> Iterator[Callable[[int], RecordingLink]]:
    """Links (not started); each is closed after the test."""
    links: list[RecordingLink] = []

    def make(workers: int) -> RecordingLink:
        link = RecordingLink(workers, definition.to_canonical(), str(authority_of(election.root)), check_here, threads)
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


@pytest.fixture
def link_of(new_link: Callable[[int], RecordingLink]) -> Callable[[int], RecordingLink]:
    """Started links with real worker processes."""

    def make(workers: int) -> RecordingLink:
        link = new_link(workers)
        link.start()
        return link

    return make


def run_on_loop(work: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """Run a coroutine function on a new event loop (the service's, in a test)."""

    async def bounded() -> Any:
        return await asyncio.wait_for(work(), timeout)

    return asyncio.run(bounded())


async def warm(link: CheckLink, data: bytes) -> None:
    """One check through every worker: each has loaded the election."""
    results = await asyncio.gather(*(link.check(data) for _ in link._workers))
    assert all(r.entry is not None for r in results)


def pid_of(link: CheckLink, n: int = 0) -> int:
    pid = link._workers[n].process.pid
    assert pid is not None
    return pid


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait on the loop until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


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
    assert link.here == 0


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
    assert link.here == 0


def test_groups_are_bounded_in_bytes_too(election: Data, link_of: Callable[[int], RecordingLink]) -> None:
    link = link_of(1)
    big = [a + b" " * (GROUP_BYTES // 4) for a in election.actas[:12]]  # not canonical: rejected, still checked

    async def work() -> list[Checked]:
        return list(await asyncio.gather(*(link.check(data) for data in big)))

    results = run_on_loop(work)
    assert all(r.error is not None for r in results)
    assert link.groups[0] == 1
    assert max(link.groups[1:]) == 3  # a fourth would pass GROUP_BYTES


def test_a_group_larger_than_the_pipe_is_sent_without_blocking_the_loop(
    election: Data, link_of: Callable[[int], RecordingLink]
) -> None:
    """One submission of several megabytes: the loop keeps answering its timers while the pipe drains."""
    link = link_of(1)
    huge = election.actas[0] + b" " * (8 << 20)

    async def work() -> tuple[Checked, int]:
        await warm(link, election.actas[0])
        os.kill(pid_of(link), signal.SIGSTOP)  # the worker reads nothing: the pipe fills
        try:
            checking = link.check(huge)
            ticks = 0
            for _ in range(20):  # timers still fire: the write did not block the loop
                started = time.monotonic()
                await asyncio.sleep(0.01)
                ticks += time.monotonic() - started < 0.5
            assert link._workers[0].unsent  # part of the frame still waits for room in the pipe
        finally:
            os.kill(pid_of(link), signal.SIGCONT)
        return await checking, ticks

    checked, ticks = run_on_loop(work)
    assert checked.error is not None  # not canonical
    assert ticks == 20


def test_closing_refuses_what_was_not_sent_and_waits_for_what_was(
    election: Data, link_of: Callable[[int], RecordingLink]
) -> None:
    link = link_of(1)

    async def work() -> tuple[Checked, list[BaseException | Checked]]:
        loop = asyncio.get_running_loop()
        await warm(link, election.actas[0])
        os.kill(pid_of(link), signal.SIGSTOP)  # the group stays in the worker until it goes on
        sent = link.check(election.actas[0])
        waiting = [link.check(data) for data in election.actas[1:20]]  # the only worker is busy
        pipes = [w.fd for w in link._workers]
        closing = loop.run_in_executor(None, link.close)
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)  # refused while the group is out
        assert not sent.done()
        os.kill(pid_of(link), signal.SIGCONT)
        checked = await sent
        await closing
        assert not any(loop.remove_reader(fd) for fd in pipes)  # the loop no longer watches the closed pipes
        with pytest.raises(StorageError, match="stopping"):
            await link.check(election.actas[0])
        return checked, outcomes

    checked, outcomes = run_on_loop(work)
    assert checked.entry is not None
    assert all(isinstance(o, StorageError) and "stopping" in str(o) for o in outcomes)
    assert link.groups == [1, 1]
    assert not any(w.process.is_alive() for w in link._workers)  # the workers ended with the link
    link.close()  # twice: nothing more to do


def test_a_worker_that_dies_with_a_group_is_replaced_and_its_group_checked_here(
    election: Data,
    link_of: Callable[[int], RecordingLink],
    check_here: Callable[[bytes], Checked],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL of a worker holding a group: the group is checked here with the same verdicts, and a new worker
    takes its place; the log says so once however many die."""
    link = link_of(2)
    items = [flip_signature(a) if n % 2 else a for n, a in enumerate(election.actas[:12])]

    async def work() -> tuple[list[Checked], list[Checked]]:
        await warm(link, items[0])
        dead = [w.process for w in link._workers]
        for n in range(2):
            os.kill(pid_of(link, n), signal.SIGSTOP)  # holds its group, so it dies with one
        held = [link.check(data) for data in items]
        for n in range(2):
            os.kill(pid_of(link, n), signal.SIGKILL)
        first = list(await asyncio.gather(*held))
        assert link.here >= 2  # the two held groups, both lost, were checked here
        await until(lambda: all(w.process not in dead and w.alive for w in link._workers))  # replaced
        here, sent = link.here, len(link.groups)
        started = time.monotonic()
        later = list(await asyncio.gather(*(link.check(data) for data in items)))
        assert time.monotonic() - started < 5
        assert link.here == here  # all of them checked by the new workers
        assert sum(link.groups[sent:]) == len(items)
        return first, later

    first, later = run_on_loop(work)
    assert [verdict(r) for r in first] == [verdict(check_here(d)) for d in items]
    assert [verdict(r) for r in later] == [verdict(check_here(d)) for d in items]
    assert link.groups[2:4] == [1, 1]  # the held groups
    assert len([r for r in caplog.records if "check worker failed" in r.message]) == 1


def test_past_its_replacements_a_link_checks_everything_here(
    election: Data,
    link_of: Callable[[int], RecordingLink],
    check_here: Callable[[bytes], Checked],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_link, "RESTARTS_PER_WORKER", 1)
    link = link_of(1)
    items = election.actas[:6]

    async def work() -> list[Checked]:
        await warm(link, items[0])  # the link reads its workers' pipes on this loop from now on
        first = link._workers[0]
        os.kill(pid_of(link), signal.SIGKILL)
        await until(lambda: link._workers[0] is not first and link._workers[0].alive)  # replaced
        await warm(link, items[0])
        second = link._workers[0]
        os.kill(pid_of(link), signal.SIGKILL)
        await until(functools.partial(lambda w: not w.alive, second))  # its pipe ended
        await asyncio.sleep(0.5)
        assert link._workers == [second]  # not replaced again
        assert len(link.started) == 2
        sent = len(link.groups)
        results = list(await asyncio.gather(*(link.check(data) for data in items)))
        assert len(link.groups) == sent  # nothing more went to a worker
        return results

    assert [verdict(r) for r in run_on_loop(work)] == [verdict(check_here(d)) for d in items]


def test_a_stuck_worker_is_ended_after_the_deadline(
    election: Data,
    link_of: Callable[[int], RecordingLink],
    check_here: Callable[[bytes], Checked],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_link, "GROUP_DEADLINE", 0.5)
    link = link_of(1)

    async def work() -> tuple[Checked, float]:
        await warm(link, election.actas[0])
        stuck = link._workers[0].process
        os.kill(pid_of(link), signal.SIGSTOP)
        started = time.monotonic()
        checked = await link.check(flip_signature(election.actas[1]))
        stuck.join(5)
        assert stuck.exitcode == -signal.SIGKILL
        return checked, time.monotonic() - started

    checked, waited = run_on_loop(work)
    assert verdict(checked) == verdict(check_here(flip_signature(election.actas[1])))
    assert 0.4 < waited < 5


def test_ctrl_c_does_not_end_the_workers(election: Data, link_of: Callable[[int], RecordingLink]) -> None:
    """SIGINT reaches a terminal's whole process group; the service ends its workers itself."""
    link = link_of(1)

    async def work() -> Checked:
        await warm(link, election.actas[0])
        os.kill(pid_of(link), signal.SIGINT)
        await asyncio.sleep(0.2)
        return await link.check(election.actas[1])

    worker = link._workers[0]
    assert run_on_loop(work).entry is not None
    assert link._workers == [worker]  # the same worker, never replaced
    assert worker.alive
    assert worker.process.is_alive()


def test_without_workers_or_threads_a_check_says_the_service_stops(
    election: Data,
    link_of: Callable[[int], RecordingLink],
    threads: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_link, "RESTARTS_PER_WORKER", 0)
    link = link_of(1)

    async def work() -> None:
        await warm(link, election.actas[0])
        worker = link._workers[0].process
        os.kill(pid_of(link), signal.SIGKILL)
        worker.join(10)
        threads.shutdown()
        for _ in range(2):  # found dead on the way, then known dead
            with pytest.raises(StorageError, match="stopping"):
                await link.check(election.actas[1])

    run_on_loop(work)


def test_before_start_and_on_another_loop_submissions_are_checked_here(
    election: Data, new_link: Callable[[int], RecordingLink]
) -> None:
    link = new_link(1)

    async def work() -> Checked:
        return await link.check(election.actas[0])

    assert run_on_loop(work).entry is not None  # not started: no worker
    link.start()
    assert run_on_loop(work).entry is not None  # binds to this loop
    assert link.groups == [1]
    assert run_on_loop(work).entry is not None  # a different loop: checked here, never read by the first
    assert link.groups == [1]


# -- a worker that answers wrongly: the link's side of the pipe, with the test at the other end ---------------------


class FakeProcess:
    """Stands in for a worker process: the test writes its answers."""

    pid = 0
    exitcode = None

    def __init__(self) -> None:
        self.killed = False

    def kill(self) -> None:
        self.killed = True

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return not self.killed


@dataclasses.dataclass
class Faked:
    """A link (not started) with one worker whose other end the test holds: it writes the worker's answers."""

    link: RecordingLink
    peer: Connection
    process: FakeProcess


@pytest.fixture
def faked(new_link: Callable[[int], RecordingLink]) -> Iterator[Faked]:
    link = new_link(1)
    ours, peer = multiprocessing.Pipe()
    os.set_blocking(ours.fileno(), False)
    process = FakeProcess()
    link._workers = [check_link._Worker(ours, process)]  # type: ignore[arg-type]
    link._started = True
    yield Faked(link, peer, process)
    peer.close()


@pytest.mark.parametrize(
    "answer",
    [b"not a pickle", pickle.dumps(["not a verdict"]), pickle.dumps([]), pickle.dumps({"a": 1})],
    ids=["garbage", "not verdicts", "too few", "not a list"],
)
def test_an_answer_that_is_not_the_groups_verdicts_ends_the_worker(
    election: Data,
    faked: Faked,
    check_here: Callable[[bytes], Checked],
    answer: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_link, "RESTARTS_PER_WORKER", 0)
    monkeypatch.setattr(check_link, "GROUP_DEADLINE", 600.0)  # ended for its answer, not for being late
    link, peer, process = faked.link, faked.peer, faked.process

    async def work() -> Checked:
        checking = link.check(election.actas[0])
        loop = asyncio.get_running_loop()
        assert pickle.loads(await loop.run_in_executor(None, peer.recv_bytes)) == [election.actas[0]]
        peer.send_bytes(answer)
        return await checking

    assert verdict(run_on_loop(work, timeout=10)) == verdict(check_here(election.actas[0]))
    assert process.killed


def test_a_half_sent_answer_does_not_block_the_loop(
    election: Data,
    faked: Faked,
    check_here: Callable[[bytes], Checked],
) -> None:
    """The worker sends the answer's header, then pauses: the loop goes on; the rest completes the answer."""
    link, peer, process = faked.link, faked.peer, faked.process
    answer = frame(pickle.dumps([check_here(election.actas[0])]))

    async def work() -> Checked:
        checking = link.check(election.actas[0])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, peer.recv_bytes)
        for part in (answer[:3], answer[3:40]):  # a part of the header, then the rest of it and some payload
            os.write(peer.fileno(), part)
            started = time.monotonic()
            await asyncio.sleep(0.05)
            assert time.monotonic() - started < 0.5  # the loop went on
            assert not checking.done()
        os.write(peer.fileno(), answer[40:])
        return await checking

    assert verdict(run_on_loop(work)) == verdict(check_here(election.actas[0]))
    assert not process.killed


def test_a_group_the_worker_could_not_check_is_checked_here(
    election: Data,
    faked: Faked,
    check_here: Callable[[bytes], Checked],
) -> None:
    """A worker whose check failed says so (None): the group is checked here, and the worker keeps its place."""
    link, peer, process = faked.link, faked.peer, faked.process

    async def work() -> list[Checked]:
        loop = asyncio.get_running_loop()
        first = link.check(election.actas[0])
        await loop.run_in_executor(None, peer.recv_bytes)
        peer.send_bytes(pickle.dumps(None))
        second = link.check(election.actas[1])
        await loop.run_in_executor(None, peer.recv_bytes)  # sent to the same worker
        peer.send_bytes(pickle.dumps([check_here(election.actas[1])]))
        return [await first, await second]

    results = run_on_loop(work)
    assert [verdict(r) for r in results] == [verdict(check_here(d)) for d in election.actas[:2]]
    assert not process.killed


def test_a_worker_that_answers_in_time_is_never_ended_by_a_deadline(
    election: Data, link_of: Callable[[int], RecordingLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each group's deadline ends with its answer: groups spread over several deadlines all reach one worker."""
    monkeypatch.setattr(check_link, "GROUP_DEADLINE", 0.3)
    link = link_of(1)

    async def work() -> None:
        await warm(link, election.actas[0])  # loaded within the first deadline (or replaced, and loaded then)
        worker = link._workers[0]
        here = link.here
        for data in election.actas[1:6]:
            assert (await link.check(data)).entry is not None
            await asyncio.sleep(0.25)
        assert link._workers == [worker]
        assert worker.alive
        assert link.here == here

    run_on_loop(work)


def test_closing_while_a_replacement_starts_leaves_no_worker_behind(
    election: Data, link_of: Callable[[int], RecordingLink]
) -> None:
    """A worker lost, its replacement still starting when the service closes: the replacement ends at once."""
    link = link_of(1)
    gate = threading.Event()
    spawn = link._spawn

    def gated() -> Any:  # the replacement starts only once closing has begun
        gate.wait(10)
        return spawn()

    link._spawn = gated  # type: ignore[method-assign]

    async def work() -> float:
        await warm(link, election.actas[0])
        first = link._workers[0]
        os.kill(pid_of(link), signal.SIGKILL)
        await until(lambda: not first.alive)  # lost: its replacement waits at the gate
        closing = asyncio.get_running_loop().run_in_executor(None, functools.partial(link.close, 5))
        await until(lambda: link._closed)
        gate.set()
        started = time.monotonic()
        await closing
        return time.monotonic() - started

    assert run_on_loop(work) < 4  # not the whole timeout: nothing waited for the replacement
    assert len(link.started) == 2
    assert link._workers == [link._workers[0]]
    for process in link.started:
        process.join(5)
        assert not process.is_alive()


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
