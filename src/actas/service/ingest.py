"""Ingest: check a submission, store it durably, answer with the authority's receipt.

Stateless checks (canonical form, device signature, arithmetic rules) run on the caller's thread, or in worker
processes for a batch. Enrollment is checked against the log's enrollments. Storing goes through one committer
thread that gathers whatever submissions are waiting into one durable transaction (group commit), so concurrent
requests share a disk flush; a receipt is signed only after that commit returns (DESIGN.md §6).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Literal

from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.merkle import leaf_hash
from actas.core.receipt import Receipt, sign_receipt
from actas.errors import ActasError, ConflictError, EnrollmentError, MalformedError, StorageError
from actas.log.validate import Checked, check_chunk, check_one, init_worker
from actas.storage.base import Submission, SubmissionStore

log = logging.getLogger("actas.ingest")
Status = Literal["accepted", "duplicate", "conflict"]
COMMIT_MAX = 8192  # submissions per group commit
CHUNK = 256  # submissions per worker task


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored submission and its receipt; status says whether it was new, a resend, or a conflicting acta."""

    status: Status
    receipt: Receipt
    conflicts_with: bytes | None = None  # conflict: the leaf hash of the mesa's first acta
    warnings: tuple[str, ...] = ()

    @property
    def leaf_hash(self) -> bytes:
        """The submitted entry's RFC 6962 leaf hash."""
        return self.receipt.leaf_hash

    def conflict_error(self) -> ConflictError:
        """The error a conflicting acta is answered with (it is stored and logged all the same)."""
        assert self.conflicts_with is not None
        return ConflictError(
            "this mesa already has a different acta; this one is logged and flagged as a conflict",
            self.leaf_hash,
            self.conflicts_with,
        )


Outcome = Accepted | ActasError


@dataclass
class _Job:
    items: list[Checked]
    done: Future[list[Outcome]]
    presigned: dict[bytes, Receipt]


# Worker-process state for batches: the stateless checks and, in the same pass, the receipt signature. A receipt
# signed in a worker is only sent after the commit; if the leaf turns out to be stored earlier, it is signed again
# with the first time.
_SIGNER: Signer | None = None


def init_ingest_worker(election_json: bytes, authority_key: str) -> None:
    """Load the election and the authority key into a verification worker process."""
    global _SIGNER
    _SIGNER = Signer.parse(authority_key)
    init_worker(election_json, str(_SIGNER.verifier))


def check_and_sign(chunk: Sequence[bytes], now: int) -> list[tuple[Checked, Receipt | None]]:
    """Check a chunk of submissions and sign a receipt, at time now, for each that passed."""
    assert _SIGNER is not None
    return [
        (c, sign_receipt(c.entry.entry_hash, now, _SIGNER) if c.entry is not None else None) for c in check_chunk(chunk)
    ]


class Ingest:
    """Checks and stores submissions of one election and signs their receipts."""

    def __init__(
        self,
        store: SubmissionStore,
        election: Election,
        authority: Signer,
        clock: Callable[[], float],
        pool: Executor | None = None,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._election = election
        self._authority = authority
        self._clock = clock
        self._pool = pool
        self._on_stored = on_stored
        self._enrolled: dict[str, set[str]] = {}
        self._enrolled_lock = threading.Lock()
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

    def check_many(self, items: Sequence[bytes]) -> tuple[list[Checked], dict[bytes, Receipt]]:
        """check() for many, in worker processes when a pool is configured and the batch is large.

        Worker processes also sign the receipts (the costliest step left); they are returned to pass to store().
        """
        presigned: dict[bytes, Receipt] = {}
        if self._pool is None or len(items) < 2 * CHUNK:
            verifier = self._authority.verifier
            checked = [check_one(data, self._election, verifier) for data in items]
        else:
            now = int(self._clock())
            chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
            checked = []
            for part in self._pool.map(check_and_sign, chunks, [now] * len(chunks)):
                for item, receipt in part:
                    checked.append(item)
                    if receipt is not None:
                        presigned[receipt.leaf_hash] = receipt
        return [self._enrollment(c) for c in checked], presigned

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

    def store(self, items: Sequence[Checked], presigned: dict[bytes, Receipt] | None = None) -> Future[list[Outcome]]:
        """Store every checked item (errors pass through); the future gives one outcome per item, in order."""
        done: Future[list[Outcome]] = Future()
        self._queue.put(_Job(list(items), done, presigned or {}))
        return done

    def _commit_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
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
            try:
                self._commit(jobs)
            except Exception as exc:  # never leave a request waiting for ever, whatever went wrong
                log.exception("group commit failed")
                failure = StorageError(f"cannot store the submission: {type(exc).__name__}")
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(failure)

    def _commit(self, jobs: list[_Job]) -> None:
        now = int(self._clock())
        fresh = [
            Submission(item.entry, _time(job, item.entry.entry_hash, now), item.signer)
            for job in jobs
            for item in job.items
            if item.entry is not None
        ]
        try:
            stored = self._store.submit(fresh) if fresh else []
            firsts = self._first_leaves(fresh)
        except ActasError as exc:
            failure = exc if isinstance(exc, StorageError) else StorageError(str(exc))
            for job in jobs:
                job.done.set_exception(failure)
            return
        if any(s.new for s in stored) and self._on_stored is not None:
            self._on_stored()
        kept = iter(stored)
        for job in jobs:
            outcomes: list[Outcome] = []
            for item in job.items:
                if item.entry is None:
                    assert item.error is not None
                    outcomes.append(item.error)
                    continue
                leaf = item.entry.entry_hash
                record = next(kept)
                receipt = job.presigned.get(leaf)
                if receipt is None or receipt.time != record.received:
                    receipt = sign_receipt(leaf, record.received, self._authority)
                first = firsts.get((item.entry.mesa or "", item.entry.contest or ""), leaf)
                if first != leaf:
                    outcomes.append(Accepted("conflict", receipt, first, item.warnings))
                else:
                    outcomes.append(Accepted("accepted" if record.new else "duplicate", receipt, None, item.warnings))
            job.done.set_result(outcomes)

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
        """Finish queued commits and stop the committer."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._store.close()


def _time(job: _Job, leaf: bytes, now: int) -> int:
    """The receipt time of a new submission: the presigned receipt's, else the commit's."""
    receipt = job.presigned.get(leaf)
    return receipt.time if receipt is not None else now
