"""Ingest: check a submission, store it durably, answer with the authority's receipt.

Stateless checks (canonical form, device signature, arithmetic rules) run in worker processes (a batch of 512 lines
or more here, a single POST in check_link.py) or, without workers, on the caller's threads. Enrollment is checked
against the log's enrollments. Storing goes through one committer thread that gathers whatever submissions are
waiting into one durable transaction (group commit), so concurrent requests share a disk flush and one receipt
signature: the group's leaves form a receipt batch, signed once and stored with them, and each submitter gets its
leaf's receipt only after that commit returns (docs/formats.md §11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, InvalidStateError
from dataclasses import dataclass
from typing import Literal, TypeVar

from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.merkle import leaf_hash
from actas.core.receipt import ReceiptBatch, sign_batch, sign_receipt
from actas.errors import ActasError, ConflictError, EnrollmentError, MalformedError, StorageError
from actas.log.validate import Checked, check_chunk, check_entries, check_one
from actas.storage.base import Stored, Submission, SubmissionStore

log = logging.getLogger("actas.ingest")
Status = Literal["accepted", "duplicate", "conflict"]
COMMIT_MAX = 8192  # submissions per group commit
CHUNK = 256  # submissions per worker task
CHUNKS_PER_WORKER = 2  # worker tasks of one batch queued or running at once, per worker
JOB_MAX = 4096  # submissions of one request committed together at most
BATCH_LEAVES_KEPT = 65_536  # leaves of recent receipt batches kept in memory, for resends


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored submission and its receipt; status says whether it was new, a resend, or a conflicting acta."""

    status: Status
    leaf_hash: bytes  # the submitted entry's RFC 6962 leaf hash
    receipt_json: str  # the receipt's canonical JSON text (formats.md §11), as sent
    conflicts_with: bytes | None = None  # conflict: the leaf hash of the mesa's first acta
    warnings: tuple[str, ...] = ()

    def conflict_error(self) -> ConflictError:
        """The error a conflicting acta is answered with (it is stored and logged all the same)."""
        assert self.conflicts_with is not None
        return ConflictError(
            "this mesa already has a different acta; this one is logged and flagged as a conflict",
            self.leaf_hash,
            self.conflicts_with,
        )


Outcome = Accepted | ActasError
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


def _on_threads(threads: Executor, run: Callable[[], None], done: Future[Outcome]) -> None:
    """Run on one of threads; if they are shut down, or shut down before it ran, done's caller hears we stop."""
    stopping = StorageError("the service is stopping; send it again")
    try:
        task = threads.submit(run)
    except RuntimeError:
        settle(done, None, stopping)
        return
    task.add_done_callback(lambda task: settle(done, None, stopping) if task.cancelled() else None)


@dataclass
class _Job:
    items: list[Checked]
    done: Future[list[Outcome]] | None = None  # answered on the committer thread
    waiter: asyncio.Future[Outcome] | None = None  # one item's: answered on its event loop, with the group's others


def _settle_waiters(answers: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    """On an event loop: give each waiting request its outcome (one call for a whole group commit)."""
    for waiter, answer in answers:
        if not waiter.done():  # else its request was cancelled (the client went away)
            waiter.set_result(answer)


class Ingest:
    """Checks and stores submissions of one election and signs their receipts."""

    def __init__(
        self,
        store: SubmissionStore,
        election: Election,
        authority: Signer,
        clock: Callable[[], float],
        pool: Executor | None = None,
        on_stored: Callable[[Sequence[Submission]], None] | None = None,
        workers: int = 1,
    ) -> None:
        self._store = store
        self._election = election
        self._authority = authority
        self._clock = clock
        self._pool = pool
        self._on_stored = on_stored
        self._workers = max(workers, 1)  # the pool's size
        self._pool_failed = False  # said once in the log
        self._enrolled: dict[str, set[str]] = {}
        self._enrolled_lock = threading.Lock()
        self._batches: OrderedDict[int, ReceiptBatch] = OrderedDict()  # the committer thread's recent batches
        self._kept_leaves = 0  # leaves of the batches in _batches
        self._closed = False
        self._closing = threading.Lock()  # no job is queued after the committer's stop marker
        for device, mesa in store.enrollments():
            self._enrolled.setdefault(device, set()).add(mesa)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._commit_loop, name="actas-committer", daemon=True)
        self._thread.start()

    # -- stateless and enrollment checks --------------------------------------------------------------------

    def add_enrollment(self, device: str, mesas: Sequence[str]) -> None:
        """Take in an enrollment the log has just covered (the live view calls this for every new one)."""
        with self._enrolled_lock:
            self._enrolled.setdefault(device, set()).update(mesas)

    def _is_enrolled(self, device: str, mesa: str) -> bool:
        # Read when the service started and kept current from the log as it grows: a flood of unenrolled keys
        # costs a dictionary lookup each, never a scan of the enrollment table.
        return mesa in self._enrolled.get(device, ())

    def check(self, data: bytes) -> Checked:
        """Stateless checks plus enrollment for one submitted acta."""
        return self._enrollment(check_one(data, self._election, self._authority.verifier))

    def check_and_store(
        self, data: bytes, threads: Executor, admit: Callable[[Checked], None] | None = None
    ) -> Future[Outcome]:
        """check() on one of threads, then admit_and_store(): one future for the whole way.

        The caller waits once; the checked submission goes straight to the committer, without a turn of the
        caller's event loop in between.
        """
        done: Future[Outcome] = Future()
        _on_threads(threads, lambda: self._admit_and_store(lambda: self.check(data), admit, done), done)
        return done

    def admit_and_store(
        self, checked: Checked, admit: Callable[[Checked], None] | None = None, threads: Executor | None = None
    ) -> Future[Outcome]:
        """Enrollment, admit() (which may raise) and store() for one submission a worker has checked.

        With threads, admit() runs on one of them: the device limit reads the store, which the event loop must
        not wait for.
        """
        done: Future[Outcome] = Future()

        def run() -> None:
            self._admit_and_store(lambda: self._enrollment(checked), admit, done)

        if admit is None or threads is None:
            run()
        else:
            _on_threads(threads, run, done)
        return done

    def store_one(self, checked: Checked) -> asyncio.Future[Outcome]:
        """Enrollment and store() for one submission a worker has checked; call on an event loop, await there.

        The committer answers every such request of a group commit with one call on their loop: through
        concurrent futures, each request cost the loop a wake-up and about 40 µs of its own.
        """
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            checked = self._enrollment(checked)
            if checked.entry is None:  # rejected: nothing to store
                assert checked.error is not None
                waiter.set_result(checked.error)
                return waiter
            self._enqueue([_Job([checked], waiter=waiter)])
        except BaseException as exc:  # never leave the caller waiting
            waiter.set_exception(exc)
        return waiter

    def _admit_and_store(
        self, checking: Callable[[], Checked], admit: Callable[[Checked], None] | None, done: Future[Outcome]
    ) -> None:
        """checking() (the checks still to make), admit() and store(); whatever happens, done is settled."""
        try:
            checked = checking()
            if checked.entry is None:  # rejected: nothing to store
                assert checked.error is not None
                settle(done, checked.error)
                return
            if admit is not None:
                admit(checked)
        except ActasError as exc:
            settle(done, exc)
            return
        except BaseException as exc:  # never leave the caller waiting
            settle(done, None, exc)
            return

        def stored(future: Future[list[Outcome]]) -> None:
            error = future.exception()
            if error is not None:
                settle(done, None, error)
            else:
                settle(done, future.result()[0])

        self.store([checked]).add_done_callback(stored)

    def check_many(self, items: Sequence[bytes]) -> list[Checked]:
        """check() for many, in worker processes when a pool is configured and the batch is large."""
        checked: list[Checked] | None = None
        if self._pool is not None and len(items) >= 2 * CHUNK:
            try:
                checked = self._in_workers(self._pool, items)
            except Exception as exc:  # a worker died (the pool is broken) or failed: check here instead
                if not self._pool_failed:
                    self._pool_failed = True
                    log.error("the check workers failed (%r); batches are checked in this process", exc)
        if checked is None:
            checked = check_entries(items, self._election, self._authority.verifier)
        return [self._enrollment(c) for c in checked]

    def _in_workers(self, pool: Executor, items: Sequence[bytes]) -> list[Checked]:
        checked: list[Checked] = []
        window: deque[Future[list[Checked]]] = deque()
        # A few chunks per worker at a time, not the whole batch at once: the workers stay busy, and a second
        # upload's chunks wait behind a few of the first's, not behind a collection centre's whole upload.
        for start in range(0, len(items), CHUNK):
            if len(window) >= CHUNKS_PER_WORKER * self._workers:
                checked.extend(window.popleft().result())
            window.append(pool.submit(check_chunk, items[start : start + CHUNK]))
        while window:
            checked.extend(window.popleft().result())
        return checked

    def _enrollment(self, checked: Checked) -> Checked:
        entry = checked.entry
        if entry is None:
            return checked
        if entry.kind != "acta":
            return Checked(None, MalformedError(f"entry.type: {entry.kind!r}; this endpoint takes acta entries"))
        assert checked.signer is not None and entry.mesa is not None
        if not self._is_enrolled(checked.signer, entry.mesa):
            error = EnrollmentError(f"acta for mesa {entry.mesa!r}: the device key is not enrolled for this mesa")
            return Checked(None, error)
        return checked

    # -- storing ------------------------------------------------------------------------------------------

    def store(self, items: Sequence[Checked]) -> Future[list[Outcome]]:
        """Store every checked item (errors pass through); the future gives one outcome per item, in order.

        A long list goes to the committer in parts of at most JOB_MAX, so no receipt batch grows past
        COMMIT_MAX + JOB_MAX leaves (a resend's receipt is read from its stored batch).
        """
        futures: list[Future[list[Outcome]]] = []
        jobs = []
        for start in range(0, max(len(items), 1), JOB_MAX):
            futures.append(Future())
            jobs.append(_Job(list(items[start : start + JOB_MAX]), futures[-1]))
        try:
            self._enqueue(jobs)
        except StorageError as exc:  # stopping
            failed: Future[list[Outcome]] = Future()
            failed.set_exception(exc)
            return failed
        if len(futures) == 1:
            return futures[0]
        done: Future[list[Outcome]] = Future()

        def finish(_: Future[list[Outcome]]) -> None:  # every part is finished by the one committer thread
            if done.done() or not all(f.done() for f in futures):
                return
            failed = [f.exception() for f in futures if f.exception() is not None]
            if failed:
                done.set_exception(failed[0])
            else:
                done.set_result([outcome for f in futures for outcome in f.result()])

        for future in futures:
            future.add_done_callback(finish)
        return done

    def _enqueue(self, jobs: list[_Job]) -> None:
        """Queue jobs for the committer, or raise StorageError if it has stopped (nobody would commit them)."""
        with self._closing:
            if self._closed:
                raise StorageError("the service is stopping; send it again")
            for job in jobs:
                self._queue.put(job)

    def _commit_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            # Whatever is queued now goes in this group, without waiting for more: what arrives during a commit
            # makes the next group (a wait of 2 ms for more added latency and no throughput, with or without -j).
            jobs = [job]
            count = len(job.items)
            while count < COMMIT_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                jobs.append(more)
                count += len(more.items)
            answers: list[list[Outcome]] | StorageError
            try:
                answers = self._commit(jobs)
            except Exception as exc:  # never leave a request waiting for ever, whatever went wrong
                log.exception("group commit failed")
                answers = StorageError(f"cannot store the submission: {type(exc).__name__}")
            try:
                self._answer(jobs, answers)
            except Exception:  # the committer must outlive it: every later request would wait for ever
                log.exception("answering a group commit failed")

    def _answer(self, jobs: list[_Job], answers: list[list[Outcome]] | StorageError) -> None:
        """Give each job its outcomes (or the group's failure): waiters on an event loop in one call per loop."""
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
        failure = answers if isinstance(answers, StorageError) else None
        for n, job in enumerate(jobs):
            outcomes: list[Outcome] = [] if isinstance(answers, StorageError) else answers[n]
            if job.waiter is not None:
                answer: Outcome = failure if failure is not None else outcomes[0]
                on_loops.setdefault(job.waiter.get_loop(), []).append((job.waiter, answer))
            elif job.done is not None:
                settle(job.done, outcomes, failure)
        for loop, waiting in on_loops.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                loop.call_soon_threadsafe(_settle_waiters, waiting)

    def _commit(self, jobs: list[_Job]) -> list[list[Outcome]] | StorageError:
        """Store a group in one transaction; each job's outcomes, or the failure of them all."""
        now = int(self._clock())
        items = [item for job in jobs for item in job.items]
        fresh = [Submission(item.entry, now, item.signer) for item in items if item.entry is not None]
        try:
            leaves = list(dict.fromkeys(s.entry.entry_hash for s in fresh))
            # Signed before the commit but sent only after it: one signature for every leaf of the group.
            batch = sign_batch(leaves, now, self._authority) if leaves else None
            stored = self._store.submit(fresh, batch) if fresh else []
        except ActasError as exc:
            return exc if isinstance(exc, StorageError) else StorageError(str(exc))
        new = [item for item, record in zip(fresh, stored, strict=True) if record.new]
        if new and self._on_stored is not None:  # to the sequencer, which then need not read them back
            self._on_stored(new)
        receipts = [self._receipt(s.entry.entry_hash, record, batch) for s, record in zip(fresh, stored, strict=True)]
        try:
            firsts = self._first_leaves(fresh)
        except ActasError as exc:  # stored all the same: a resend gets the receipt
            return exc if isinstance(exc, StorageError) else StorageError(str(exc))
        kept = iter(zip(stored, receipts, strict=True))
        answers: list[list[Outcome]] = []
        for job in jobs:
            outcomes: list[Outcome] = []
            for item in job.items:
                if item.entry is None:
                    assert item.error is not None
                    outcomes.append(item.error)
                    continue
                leaf = item.entry.entry_hash
                record, receipt = next(kept)
                first = firsts.get((item.entry.mesa or "", item.entry.contest or ""), leaf)
                if isinstance(receipt, ActasError):
                    outcomes.append(receipt)
                elif first != leaf:
                    outcomes.append(Accepted("conflict", leaf, receipt, first, item.warnings))
                else:
                    status: Status = "accepted" if record.new else "duplicate"
                    outcomes.append(Accepted(status, leaf, receipt, None, item.warnings))
            answers.append(outcomes)
        return answers

    def _keep_batch(self, batch_id: int, batch: ReceiptBatch) -> None:
        if batch_id in self._batches:
            self._batches.move_to_end(batch_id)
            return
        self._batches[batch_id] = batch
        self._kept_leaves += len(batch.leaves)
        # Bounded by leaves, not batches: a batch keeps its whole tree (and its text once answered). A running
        # count: small groups make thousands of batches, too many to add up on every commit.
        while self._kept_leaves > BATCH_LEAVES_KEPT and len(self._batches) > 1:
            self._kept_leaves -= len(self._batches.popitem(last=False)[1].leaves)

    def _receipt(self, leaf: bytes, record: Stored, batch: ReceiptBatch | None) -> str | ActasError:
        """A stored leaf's receipt text, from the batch it was first stored with: a resend gets the same bytes."""
        try:
            if record.batch is None:  # stored without a batch: a batch of one, the same for every resend
                return sign_receipt(leaf, record.received, self._authority).to_bytes().decode()
            if record.new and batch is not None:
                if record.batch not in self._batches:
                    self._keep_batch(record.batch, batch)
                return batch.receipt_json(leaf)  # the text of every node is made once for the whole group
            earlier = self._batches.get(record.batch)
            if earlier is None:
                earlier = self._store.receipt_batch(record.batch)  # its stored nodes: no hashing again
                self._keep_batch(record.batch, earlier)
            return earlier.receipt(leaf).to_bytes().decode()
        except (ActasError, KeyError) as exc:  # only this item: the rest of the group is answered
            log.error("no receipt for stored leaf %s: %s", leaf.hex(), exc)
            return StorageError(f"stored, but the receipt cannot be made now ({type(exc).__name__}); send it again")

    def _first_leaves(self, stored: Sequence[Submission]) -> dict[tuple[str, str], bytes]:
        """The leaf hash of the first acta of each mesa and contest: logged before the service, else submitted."""
        keys = list({(s.entry.mesa, s.entry.contest) for s in stored if s.entry.mesa and s.entry.contest})
        if not keys:
            return {}
        firsts: dict[tuple[str, str], bytes] = {}
        logged = self._store.mesa_indexes_many(keys)
        for key, indexes in logged.items():
            first = indexes[0]
            firsts[key] = leaf_hash(self._store.read(first, first + 1)[0])
        submitted = self._store.submitted_for_mesas([k for k in keys if k not in firsts])
        for key, leaves in submitted.items():
            firsts[key] = leaves[0]
        return firsts

    def close(self) -> None:
        """Finish queued commits and stop the committer; later stores fail at once."""
        with self._closing:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)
        self._store.close()
