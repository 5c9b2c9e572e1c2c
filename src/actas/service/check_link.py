"""Single submissions checked in worker processes that the event loop talks to over their own pipes.

Each single POST must be checked (signature, canonical form, rules) away from the service process's GIL. Going
through a process pool costs a request six thread hand-offs (a dispatcher, the pool's management and feeder
threads, a settling thread) before it even reaches the committer, each waiting for the GIL beside a busy event
loop: a POST waited 6-7 ms at four connections. Here the event loop writes a group straight into an idle
worker's pipe and reads the verdicts back as the pipe becomes readable: no thread in between, and no read or
write that can block the loop (frames.py).

Whatever arrives while every worker is busy waits and goes, up to GROUP_MAX at a time, to the next worker that
becomes idle, so the groups grow with the load. A worker that dies, answers nonsense or takes longer than
GROUP_DEADLINE over a group is killed and replaced (a few times at most); its group is checked on the service's
threads instead, as is everything once no worker is left, so a worker fault costs speed, never an answer.
start() and close() may be called from any thread; everything else runs on the event loop that first called
check() after start().
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from actas.errors import StorageError
from actas.log.validate import Checked, check_chunk, init_worker
from actas.service.frames import FrameReader, frame

log = logging.getLogger("actas.ingest")
GROUP_MAX = 64  # submissions per group at most: a group's answers wait for its slowest check
GROUP_BYTES = 32 * 1024  # … and bytes (but for a group of one): groups stay small beside the pipe's buffer
GROUP_DEADLINE = 10.0  # seconds a worker may take over a group (a few milliseconds) before it counts as stuck
RESTARTS_PER_WORKER = 3  # replacements of a failed worker, per worker slot, for the service's life
READ_SIZE = 64 * 1024  # bytes read from a pipe at a time: an answer is a few kilobytes
VERDICTS_MAX = 256 * 1024 * 1024  # bytes of one answer from a worker at most
STOPPING = "the service is stopping; send it again"
Waiting = tuple[bytes, "asyncio.Future[Checked]"]


def serve_checks(conn: Connection, election_json: bytes, authority: str, service: int) -> None:
    """A check worker: load the election, then answer each group of submissions with their verdicts."""
    # Ctrl-C in a terminal reaches the whole process group: the service ends its workers by closing their pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(election_json, authority, service)  # ends this process when the service is gone
    while True:
        try:
            group: list[bytes] = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the service closed the pipe: nothing more will come
            return
        try:
            answer = pickle.dumps(check_chunk(group), pickle.HIGHEST_PROTOCOL)
        except Exception:  # not this group's fault alone, perhaps: the service checks it, one at a time
            answer = pickle.dumps(None)
        try:
            conn.send_bytes(answer)
        except OSError:  # the service closed the pipe while this group was checked
            return


@dataclass(eq=False)
class _Worker:
    conn: Connection  # this end, non-blocking
    process: BaseProcess
    restarts: int = 0  # replacements this worker's slot has had
    reader: FrameReader = field(default_factory=lambda: FrameReader(VERDICTS_MAX))
    unsent: bytearray = field(default_factory=bytearray)  # of the group's frame, what the pipe did not take yet
    group: list[Waiting] | None = None  # sent (or being sent) and not answered yet
    deadline: asyncio.TimerHandle | None = None
    alive: bool = True

    def __post_init__(self) -> None:
        self.fd = self.conn.fileno()  # kept: a closed Connection no longer says it


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
        self._args = (election_json, authority)  # kept for replacements
        self._check_here = check_here
        self._threads = threads
        self._workers: list[_Worker] = []
        self._retired: list[_Worker] = []  # failed workers, reaped on close
        self._spawning: list[threading.Thread] = []  # replacements being started, off the loop
        self._waiting: deque[Waiting] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # start, the first check's binding and close: never two at once
        self._started = False
        self._closed = False
        self._idle = asyncio.Event()  # set while no group is in a worker (closing waits for it)
        self._idle.set()
        self._said: set[str] = set()  # faults said once in the log

    def start(self) -> None:
        """Start the worker processes (once); each loads the election and ends when this process does."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            for _ in range(self._count):
                self._workers.append(self._spawn())

    def _spawn(self) -> _Worker:
        context = multiprocessing.get_context("forkserver")  # not fork: see Runtime (the sequencer's flock)
        conn, child = context.Pipe()
        try:
            process = context.Process(
                target=serve_checks, args=(child, *self._args, os.getpid()), name="actas-check", daemon=True
            )
            process.start()
        except BaseException:
            conn.close()
            raise
        finally:
            child.close()
        os.set_blocking(conn.fileno(), False)
        return _Worker(conn, process)

    def check(self, data: bytes) -> asyncio.Future[Checked]:
        """The stateless checks of one submission (check_one); call on the event loop, await the result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Checked] = loop.create_future()
        with self._lock:
            closed = self._closed
            if not closed and self._loop is None and self._workers:
                self._loop = loop
                for worker in self._workers:
                    loop.add_reader(worker.fd, self._readable, worker)
        if closed:
            future.set_exception(StorageError(STOPPING))
        elif loop is not self._loop or not any(w.alive for w in self._workers):
            if self._loop is not None and loop is not self._loop:
                self._say("loop", "single POSTs from a second event loop are checked in this process")
            self._check_each(loop, [(data, future)])
        else:
            self._waiting.append((data, future))
            self._feed()
        return future

    def _feed(self) -> None:
        """Send what waits to the idle workers, one group each."""
        for worker in self._workers:
            if not self._waiting:
                return
            if worker.alive and worker.group is None:
                self._send(worker)

    def _send(self, worker: _Worker) -> None:
        assert self._loop is not None
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
        worker.group = group
        worker.unsent += frame(pickle.dumps([data for data, _ in group], pickle.HIGHEST_PROTOCOL))
        worker.deadline = self._loop.call_later(GROUP_DEADLINE, self._overdue, worker)
        self._idle.clear()
        self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        """Write what the pipe takes now; the loop calls again when it takes more."""
        assert self._loop is not None
        if not worker.alive:
            return
        try:
            while worker.unsent:
                del worker.unsent[: os.write(worker.fd, worker.unsent)]
        except BlockingIOError:
            self._loop.add_writer(worker.fd, self._flush, worker)
            return
        except OSError as exc:  # the worker is gone
            self._lost(worker, exc)
            return
        self._loop.remove_writer(worker.fd)

    def _readable(self, worker: _Worker) -> None:
        """The worker's pipe has bytes, or has ended: take every complete answer in them."""
        if not worker.alive:
            return
        try:
            data = os.read(worker.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(worker, exc)
            return
        if not data:
            self._lost(worker, EOFError("the worker's pipe ended"))
            return
        try:
            for payload in worker.reader.feed(data):
                self._answered(worker, payload)
        except Exception as exc:  # anything but verdicts for its group: the worker is not to be trusted
            self._lost(worker, exc)

    def _answered(self, worker: _Worker, payload: bytes) -> None:
        assert self._loop is not None
        group = worker.group
        if group is None:
            raise ValueError("an answer from a worker that was sent nothing")
        verdicts = pickle.loads(payload)
        if verdicts is None:  # the worker could not check this group: check each here
            self._say("group", "a check worker failed a group; it is checked in this process")
        elif not (isinstance(verdicts, list) and len(verdicts) == len(group)):
            raise ValueError(f"{type(verdicts).__name__} for a group of {len(group)}")
        elif not all(isinstance(v, Checked) for v in verdicts):
            raise ValueError("an answer that is not verdicts")
        self._end_group(worker)
        if verdicts is None:
            self._check_each(self._loop, group)
        else:
            for (_, future), verdict in zip(group, verdicts, strict=True):
                if not future.done():
                    future.set_result(verdict)
        self._after_group()

    def _end_group(self, worker: _Worker) -> list[Waiting]:
        group, worker.group = worker.group or [], None
        if worker.deadline is not None:
            worker.deadline.cancel()
            worker.deadline = None
        return group

    def _overdue(self, worker: _Worker) -> None:
        worker.deadline = None
        self._lost(worker, TimeoutError(f"a group took over {GROUP_DEADLINE:.0f} s"))

    def _lost(self, worker: _Worker, error: BaseException) -> None:
        """A worker failed: end it, check its group here, and start another in its place while allowed."""
        assert self._loop is not None
        if not worker.alive:
            return
        worker.alive = False
        group = self._end_group(worker)
        self._loop.remove_reader(worker.fd)  # before the close: a new pipe may get the same descriptor number
        self._loop.remove_writer(worker.fd)
        worker.conn.close()
        if worker.process.exitcode is None:  # not reaped yet: its pid is still its own
            worker.process.kill()
        self._retired.append(worker)
        self._say("lost", f"a check worker failed ({error!r}); its submissions are checked in this process")
        self._check_each(self._loop, group)
        if not self._closed and worker.restarts < RESTARTS_PER_WORKER:
            # Started on a thread: starting a process sends it the election, which would hold up the loop.
            starting = threading.Thread(target=self._replace, args=(worker,), name="actas-check-start", daemon=True)
            self._spawning.append(starting)
            starting.start()
        elif not any(w.alive for w in self._workers) and not any(t.is_alive() for t in self._spawning):
            log.error("no check worker is left: single submissions are checked in this process until a restart")
        if not any(w.alive for w in self._workers):
            waiting, self._waiting = list(self._waiting), deque()
            self._check_each(self._loop, waiting)
        self._after_group()

    def _replace(self, lost: _Worker) -> None:
        """On its own thread: start a worker for a lost one's slot, and hand it to the loop (or end it, if closed)."""
        try:
            replacement = self._spawn()
        except Exception as exc:
            log.error("cannot start a check worker: %r", exc)
            return
        replacement.restarts = lost.restarts + 1
        with self._lock:  # close() sets _closed under this lock: after it, nothing more is handed to the loop
            if not self._closed and self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._install, lost, replacement)
                    return
                except RuntimeError:  # the loop is closed
                    pass
        replacement.conn.close()
        replacement.process.kill()
        replacement.process.join(5)

    def _install(self, lost: _Worker, replacement: _Worker) -> None:
        assert self._loop is not None
        if self._closed:  # closing began after the hand-over: _shut did not see this one
            replacement.conn.close()
            replacement.process.kill()
            self._retired.append(replacement)
            return
        self._workers[self._workers.index(lost)] = replacement
        self._loop.add_reader(replacement.fd, self._readable, replacement)
        self._feed()

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
            if future.done():
                continue
            try:
                checked = loop.run_in_executor(self._threads, self._check_here, data)
            except RuntimeError:  # the threads are shut down: the service is stopping
                future.set_exception(StorageError(STOPPING))
                continue
            checked.add_done_callback(functools.partial(_copy, future=future))

    def _say(self, fault: str, message: str) -> None:
        if fault not in self._said:  # said once: every later group would say it again
            self._said.add(fault)
            log.error(message)

    async def _shut(self, timeout: float) -> None:
        """On the loop: refuse what waits, wait for the groups in the workers, then close every pipe."""
        assert self._loop is not None
        try:
            self._after_group()
            await asyncio.wait_for(self._idle.wait(), timeout)
        finally:
            for worker in self._workers:
                for _, future in self._end_group(worker):  # only if a worker did not finish in time
                    if not future.done():
                        future.set_exception(StorageError(STOPPING))
                if worker.alive:
                    worker.alive = False
                    self._loop.remove_reader(worker.fd)
                    self._loop.remove_writer(worker.fd)
                    worker.conn.close()  # an idle worker reads the end and exits

    def close(self, timeout: float = 30) -> None:
        """Refuse new submissions and those not yet sent, wait for the groups in the workers, end the workers."""
        loop = self._loop
        if loop is not None and _on_loop(loop):
            raise RuntimeError("CheckLink.close() must not run on its own event loop")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop = self._loop
        deadline = time.monotonic() + timeout
        shut = loop is None or not loop.is_running()
        if not shut:
            assert loop is not None
            try:
                asyncio.run_coroutine_threadsafe(self._shut(timeout), loop).result(timeout + 5)
                shut = True
            except Exception as exc:  # a worker stuck past the timeout, or the loop stopped or is blocked
                log.warning("check workers did not finish their groups: %r", exc)
                shut = not loop.is_running()
        for starting in self._spawning:  # a replacement being started ends itself, now that we are closed
            starting.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            # Closed here only if no loop can touch them any more; else ending the process is enough.
            if shut and not worker.conn.closed:
                worker.alive = False
                worker.conn.close()
        for worker in self._workers + self._retired:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)


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
