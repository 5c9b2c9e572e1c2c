"""Single submissions checked in the verification worker processes, gathered into small groups.

Checked on threads of the service process, each single POST's checks contend for the GIL with the event loop that
answers every request: two check threads beside a busy event loop spent about 500 µs of CPU per acta whose checks
take about 215 µs alone, and held the loop up while they did. In a worker process the checks cost the service
process only the bytes sent and the result read back. Whatever arrives while every worker is busy goes in the next
group, so the groups grow with the load and one message carries many actas.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future, InvalidStateError

from actas.errors import StorageError
from actas.log.validate import Checked, check_chunk

log = logging.getLogger("actas.ingest")
GROUP_MAX = 64  # submissions per group at most: a group's answers wait for its slowest check


def _settle(future: Future[Checked], result: Checked | None, error: BaseException | None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)
    except InvalidStateError:  # the caller gave up (cancelled): nobody is waiting for this any more
        pass


class CheckGroups:
    """Checks single submissions in a process pool, at most one group in flight per worker."""

    def __init__(self, pool: Executor, workers: int) -> None:
        self._pool = pool
        self._slots = threading.Semaphore(max(workers, 1))
        self._queue: queue.Queue[tuple[bytes, Future[Checked]] | None] = queue.Queue()
        self._closed = False
        self._closing = threading.Lock()  # nothing is queued after the stop marker
        self._thread = threading.Thread(target=self._run, name="actas-check-groups", daemon=True)
        self._thread.start()

    def check(self, data: bytes) -> Future[Checked]:
        """The stateless checks of one submission (check_one), done in a worker; fails once closed."""
        future: Future[Checked] = Future()
        with self._closing:
            if not self._closed:
                self._queue.put((data, future))
                return future
        future.set_exception(StorageError("the service is stopping; send it again"))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            self._slots.acquire()  # while every worker is busy, what arrives waits here and joins this group
            group = [first]
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
            self._send(group)
            if stop:
                break
        self._fail_waiting()

    def _send(self, group: list[tuple[bytes, Future[Checked]]]) -> None:
        try:
            task = self._pool.submit(check_chunk, [data for data, _ in group])
        except BaseException as exc:  # the pool is shut down or broken: answer, never leave a caller waiting
            self._slots.release()
            self._finish(group, None, exc)
            return

        def done(task: Future[list[Checked]]) -> None:
            self._slots.release()
            if task.cancelled():
                self._finish(group, None, StorageError("the service is stopping; send it again"))
            elif task.exception() is not None:
                self._finish(group, None, task.exception())
            else:
                self._finish(group, task.result(), None)

        task.add_done_callback(done)

    @staticmethod
    def _finish(
        group: list[tuple[bytes, Future[Checked]]], results: Sequence[Checked] | None, error: BaseException | None
    ) -> None:
        if results is None:
            log.error("checking %d submissions failed: %r", len(group), error)
            for _, future in group:
                _settle(future, None, error)
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result, None)

    def _fail_waiting(self) -> None:
        stopping = StorageError("the service is stopping; send it again")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _settle(item[1], None, stopping)

    def close(self) -> None:
        """Stop taking submissions; those not yet sent to a worker fail with a storage error (send again)."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)
        self._fail_waiting()
