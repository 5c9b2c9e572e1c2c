"""Single submissions checked in worker processes that the event loop talks to over their own pipes.

Each single POST must be checked (signature, canonical form, rules) away from the service process's GIL. Going
through a process pool costs a request six thread hand-offs (a dispatcher, the pool's management and feeder
threads, a settling thread) before it even reaches the committer, each waiting for the GIL beside a busy event
loop: a POST waited 6-7 ms at four connections. Here the event loop writes a group straight into an idle
worker's pipe and reads the verdicts back when the pipe becomes readable: no thread in between.

Whatever arrives while every worker is busy waits and goes, up to GROUP_MAX at a time, to the next worker that
becomes idle, so the groups grow with the load. A worker that dies (its pipe ends) is not used again; its group,
and everything after it once no worker is left, is checked on the service's threads instead, so a worker fault
costs speed, never an answer. Every method but close() runs on the event loop that first called check().
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from multiprocessing.connection import Connection

from actas.errors import StorageError
from actas.log.validate import Checked, check_chunk, init_worker

log = logging.getLogger("actas.ingest")
GROUP_MAX = 64  # submissions per group at most: a group's answers wait for its slowest check
GROUP_BYTES = 32 * 1024  # … and bytes: a group always fits in an idle worker's empty pipe, so sending never blocks
STOPPING = "the service is stopping; send it again"
Waiting = tuple[bytes, "asyncio.Future[Checked]"]


def serve_checks(conn: Connection, election_json: bytes, authority: str, service: int) -> None:
    """A check worker: load the election, then answer each group of submissions with their verdicts."""
    init_worker(election_json, authority, service)  # ends this process when the service is gone
    while True:
        try:
            group: list[bytes] = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the service closed the pipe: nothing more will come
            return
        verdicts = pickle.dumps(check_chunk(group), pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(verdicts)
        except OSError:  # the service closed the pipe while this group was checked
            return


class _Worker:
    def __init__(self, conn: Connection, process: multiprocessing.process.BaseProcess) -> None:
        self.conn = conn
        self.process = process
        self.group: list[Waiting] | None = None  # sent and not answered yet
        self.alive = True


class CheckLink:
    """Checks single submissions in ``workers`` processes; ``check_here`` on ``threads`` is the fallback."""

    def __init__(
        self,
        workers: int,
        election_json: bytes,
        authority: str,
        check_here: Callable[[bytes], Checked],
        threads: Executor,
    ) -> None:
        self._count = max(workers, 1)
        self._args = (election_json, authority)
        self._workers: list[_Worker] = []  # started by start(): until then everything is checked here
        self._check_here = check_here
        self._threads = threads
        self._waiting: deque[Waiting] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._idle = asyncio.Event()  # set while no group is in a worker (close waits for it)
        self._idle.set()
        self._said_fault = False

    def start(self) -> None:
        """Start the worker processes (once); each loads the election and ends when this process does."""
        if self._workers or self._closed:
            return
        context = multiprocessing.get_context("forkserver")  # not fork: see Runtime (the sequencer's flock)
        for _ in range(self._count):
            parent, child = context.Pipe()
            process = context.Process(
                target=serve_checks, args=(child, *self._args, os.getpid()), name="actas-check", daemon=True
            )
            process.start()
            child.close()
            self._workers.append(_Worker(parent, process))

    def check(self, data: bytes) -> asyncio.Future[Checked]:
        """The stateless checks of one submission (check_one); call on the event loop, await the result."""
        loop = asyncio.get_running_loop()
        if self._loop is None and self._workers and not self._closed:
            self._bind(loop)
        future: asyncio.Future[Checked] = loop.create_future()
        if self._closed:
            future.set_exception(StorageError(STOPPING))
        elif loop is not self._loop or not any(w.alive for w in self._workers):
            self._check_each(loop, [(data, future)])  # another loop (tests) or no worker left: check here
        else:
            self._waiting.append((data, future))
            self._feed()
        return future

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for worker in self._workers:
            loop.add_reader(worker.conn.fileno(), self._answered, worker)

    def _feed(self) -> None:
        """Send what waits to the idle workers, one group each."""
        for worker in self._workers:
            if not self._waiting:
                return
            if worker.alive and worker.group is None:
                self._send(worker)

    def _send(self, worker: _Worker) -> None:
        group: list[Waiting] = []
        size = 0
        while self._waiting and len(group) < GROUP_MAX:
            data, future = self._waiting[0]
            if group and size + len(data) > GROUP_BYTES:
                break
            self._waiting.popleft()
            if not future.done():  # its caller went away: not worth a check
                group.append((data, future))
                size += len(data)
        if not group:
            return
        try:
            worker.conn.send_bytes(pickle.dumps([data for data, _ in group], pickle.HIGHEST_PROTOCOL))
        except OSError as exc:  # the worker is gone
            self._lost(worker, group, exc)
            return
        worker.group = group
        self._idle.clear()

    def _answered(self, worker: _Worker) -> None:
        """The worker's pipe is readable: its verdicts, or its end."""
        group = worker.group or []
        try:
            verdicts: list[Checked] = pickle.loads(worker.conn.recv_bytes())
            if len(verdicts) != len(group):
                raise OSError(f"{len(verdicts)} verdicts for {len(group)} submissions")
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self._lost(worker, group, exc)
            return
        worker.group = None
        for (_, future), verdict in zip(group, verdicts, strict=True):
            if not future.done():
                future.set_result(verdict)
        self._after_group()

    def _lost(self, worker: _Worker, group: list[Waiting], error: BaseException) -> None:
        """A worker died: never use it again; check its group, and all that waits if it was the last, here."""
        worker.alive = False
        worker.group = None
        assert self._loop is not None
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        if not self._said_fault:  # said once: every later group would say it again
            self._said_fault = True
            log.error("a check worker failed (%r); its submissions are checked in this process", error)
        self._check_each(self._loop, group)
        if not any(w.alive for w in self._workers):
            waiting, self._waiting = list(self._waiting), deque()
            self._check_each(self._loop, waiting)
        self._after_group()

    def _after_group(self) -> None:
        if self._closed:  # closing: what was not sent is refused, not checked for nobody
            while self._waiting:
                _, future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(StorageError(STOPPING))
        else:
            self._feed()
        if all(w.group is None for w in self._workers):
            self._idle.set()

    def _check_each(self, loop: asyncio.AbstractEventLoop, group: Sequence[Waiting]) -> None:
        """Check on the threads, one submission at a time: a failure is its own submission's alone."""
        for data, future in group:
            try:
                checked = loop.run_in_executor(self._threads, self._check_here, data)
            except RuntimeError:  # the threads are shut down: the service is stopping
                if not future.done():
                    future.set_exception(StorageError(STOPPING))
                continue
            checked.add_done_callback(functools.partial(_copy, future=future))

    async def _drain(self) -> None:
        self._closed = True
        self._after_group()  # refuse what waits now
        await self._idle.wait()
        for worker in self._workers:
            if worker.alive:
                self._loop.remove_reader(worker.conn.fileno())  # type: ignore[union-attr]

    def close(self, timeout: float = 30) -> None:
        """Refuse new submissions and those not yet sent, wait for the groups in the workers, stop the workers."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and loop.is_running():
            if _on_loop(loop):  # pragma: no cover - the owner closes from another thread or after the loop
                raise RuntimeError("CheckLink.close() must not run on its event loop")
            try:
                asyncio.run_coroutine_threadsafe(self._drain(), loop).result(timeout)
            except Exception as exc:  # a loop stopping meanwhile, or a worker stuck: stop the workers all the same
                log.warning("check workers did not finish their groups: %r", exc)
        else:
            self._closed = True
        for worker in self._workers:
            worker.conn.close()  # an idle worker reads the end and exits
        for worker in self._workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout)


def _copy(done: asyncio.Future[Checked], *, future: asyncio.Future[Checked]) -> None:
    """Give future the outcome of a check made here (the threads' shutdown cancels it: the service is stopping)."""
    if future.done():
        return
    if done.cancelled():
        future.set_exception(StorageError(STOPPING))
    elif done.exception() is not None:
        future.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        future.set_result(done.result())


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
