"""Single submissions checked in the verification worker processes, gathered into small groups.

Checked on threads of the service process, each single POST's checks contend for the GIL with the event loop that
answers every request: two check threads beside a busy event loop spent 430-540 µs of CPU per acta on checks that
take about 215 µs alone. In a worker process the checks cost the service process only the bytes sent and the
result read back. Whatever arrives while every worker is busy goes in the next group, so the groups grow with the
load and one message carries many actas.

What the workers cannot do is done here instead: a group the pool refuses (a worker died, the pool is broken) or
that fails there is checked on this process's threads, one submission at a time, so a pool fault costs speed,
never an answer. Results are settled on those threads too, never on the pool's own management thread, whose
only job is to feed the workers and collect their results.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from typing import TypeVar

from actas.errors import StorageError
from actas.log.validate import Checked, check_chunk

log = logging.getLogger("actas.ingest")
GROUP_MAX = 64  # submissions per group at most: a group's answers wait for its slowest check
STOPPING = "the service is stopping; send it again"
Group = list[tuple[bytes, "Future[Checked]"]]
T = TypeVar("T")


def settle(future: Future[T], result: T | None, error: BaseException | None = None) -> None:
    """Give future its result (or error), unless its caller already gave up on it (cancelled)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)
    except InvalidStateError:  # nobody is waiting for this any more
        pass


class CheckGroups:
    """Checks single submissions in a process pool, at most one group in flight per worker.

    ``check_here`` makes the same checks in this process (the fallback); ``threads`` run it and settle results.
    """

    def __init__(self, pool: Executor, workers: int, check_here: Callable[[bytes], Checked], threads: Executor) -> None:
        self._pool = pool
        self._workers = max(workers, 1)
        self._slots = threading.Semaphore(self._workers)
        self._check_here = check_here
        self._threads = threads
        self._queue: queue.Queue[tuple[bytes, Future[Checked]] | None] = queue.Queue()
        self._closed = False
        self._closing = threading.Lock()  # nothing is queued after the stop marker
        self._pool_failed = False
        self._thread = threading.Thread(target=self._run, name="actas-check-groups", daemon=True)
        self._thread.start()

    def check(self, data: bytes) -> Future[Checked]:
        """The stateless checks of one submission (check_one), in a worker; fails with a storage error once closed."""
        future: Future[Checked] = Future()
        with self._closing:
            if not self._closed:
                self._queue.put((data, future))
                return future
        future.set_exception(StorageError(STOPPING))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._slots.acquire()  # while every worker is busy, what arrives waits here and joins this group
            group: Group = [first]
            stop = False
            while len(group) < GROUP_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            if self._closed:  # closing: what was not sent yet is refused, not checked for nobody
                self._slots.release()
                for _, future in group:
                    settle(future, None, StorageError(STOPPING))
            else:
                self._send(group)
            if stop:
                return

    def _send(self, group: Group) -> None:
        try:
            task = self._pool.submit(check_chunk, [data for data, _ in group])
        except Exception as exc:  # the pool is broken or shut down: check here instead
            self._slots.release()
            self._pool_fault(exc)
            self._on_threads(self._check_each, group)
            return

        def done(task: Future[list[Checked]]) -> None:  # on the pool's management thread: hand over, nothing more
            self._slots.release()
            self._on_threads(self._finish, group, task)

        task.add_done_callback(done)

    def _on_threads(self, work: Callable[..., None], group: Group, *args: object) -> None:
        """Run work(group, *args) on the threads; if they are shut down, the group's callers hear that we stop."""
        try:
            ran = self._threads.submit(work, group, *args)
        except RuntimeError:
            ran = None
        if ran is None:
            for _, future in group:
                settle(future, None, StorageError(STOPPING))
            return

        def unfinished(ran: Future[None]) -> None:  # cancelled by the threads' shutdown, or failed: still answered
            if ran.cancelled() or ran.exception() is not None:
                for _, future in group:
                    settle(future, None, StorageError(STOPPING))

        ran.add_done_callback(unfinished)

    def _finish(self, group: Group, task: Future[list[Checked]]) -> None:
        if task.cancelled():  # the pool was shut down with the group still queued
            for _, future in group:
                settle(future, None, StorageError(STOPPING))
            return
        error = task.exception()
        if error is not None:
            self._pool_fault(error)
            self._check_each(group)
            return
        for (_, future), result in zip(group, task.result(), strict=True):
            settle(future, result)

    def _check_each(self, group: Group) -> None:
        for data, future in group:  # one at a time: an unexpected failure is its own submission's alone
            try:
                settle(future, self._check_here(data))
            except BaseException as exc:
                settle(future, None, exc)

    def _pool_fault(self, error: BaseException) -> None:
        if not self._pool_failed:  # said once: every later group would say it again
            self._pool_failed = True
            log.error("the check workers failed (%r); single submissions are checked in this process", error)

    def close(self, timeout: float = 30) -> None:
        """Refuse new submissions, refuse those not yet sent, and wait for the groups in the workers to finish."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        for _ in range(self._workers):  # every slot back: no group is left in a worker
            if not self._slots.acquire(timeout=timeout):
                break
        while True:  # only if the dispatcher did not finish in time
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                settle(item[1], None, StorageError(STOPPING))
