"""The sequencer: the single writer that checks submissions and appends them to the tiled log.

Stateless checks (canonical form, signatures, rules) run in worker processes when a batch is large; what needs
the log's state (deduplication, enrollment, conflicts) is decided here, in order, by the one writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from actas.core.election import Election
from actas.core.entries import election_entry
from actas.core.keys import Signer
from actas.errors import ActasError, EnrollmentError, MalformedError, StorageError
from actas.log.tiled import TiledLog
from actas.log.validate import Checked, check_chunk, check_entries, init_worker
from actas.storage.base import LogStore, NewEntry

Status = Literal["appended", "duplicate", "conflict", "rejected"]
PARALLEL_THRESHOLD = 512  # below this, worker round trips cost more than they save
CHUNK = 256


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What happened to one submission."""

    status: Status
    index: int | None = None
    error: ActasError | None = None
    conflicts_with: tuple[int, ...] = ()
    warnings: tuple[str, ...] = field(default=())


class LogWriter:
    """Appends checked entries to a store and keeps the tiled log and its checkpoint up to date."""

    def __init__(
        self,
        store: LogStore,
        log_dir: Path,
        election: Election,
        authority: Signer,
        *,
        workers: int = 0,
    ) -> None:
        if authority.name != election.origin:
            raise MalformedError(f"authority key name {authority.name!r} must equal the origin {election.origin!r}")
        self._store = store
        self._election = election
        self._authority = authority
        self._executor: Executor | None = None
        if workers > 0:
            self._executor = ProcessPoolExecutor(
                # The workers end with this process even if it is killed: forked, they hold its sequencer lock.
                workers,
                initializer=init_worker,
                initargs=(election.to_canonical(), str(authority.verifier), os.getpid()),
            )
        self._enrolled: dict[str, set[str]] = {}
        for device, mesa in store.enrollments():
            self._enrolled.setdefault(device, set()).add(mesa)
        self._log = TiledLog(store, log_dir, authority)

    # -- appending ------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries integrated into the tiled log."""
        return self._log.size

    def bootstrap(self) -> None:
        """Log the election entry as entry 0 if the log is empty."""
        if self._store.size() == 0:
            result = self.append([election_entry(self._election.origin, self._election.digest, self._authority)])
            if result[0].status != "appended":
                raise StorageError(f"cannot log the election entry: {result[0].error}")

    def _check(self, submissions: Sequence[bytes]) -> list[Checked]:
        if self._executor is None or len(submissions) < PARALLEL_THRESHOLD:
            verifier = self._authority.verifier
            return check_entries(submissions, self._election, verifier)
        chunks = [submissions[i : i + CHUNK] for i in range(0, len(submissions), CHUNK)]
        return [checked for part in self._executor.map(check_chunk, chunks) for checked in part]

    def append(self, submissions: Sequence[bytes], progress: Callable[[int], None] | None = None) -> list[AppendResult]:
        """Check, deduplicate and append submissions; integrate tiles; sign a new checkpoint."""
        results = self.append_checked(self._check(submissions))
        if progress is not None:
            progress(len(submissions))
        return results

    def append_checked(self, checked: Sequence[Checked]) -> list[AppendResult]:
        """Deduplicate and append entries whose stateless checks already passed (at ingest); sign a checkpoint."""
        existing = self._store.find_hashes([c.entry.entry_hash for c in checked if c.entry is not None])
        results: list[AppendResult] = []
        batch: list[NewEntry] = []
        pending_hashes: dict[bytes, int] = {}
        pending_mesas = self._store.mesa_indexes_many(
            [
                (c.entry.mesa, c.entry.contest)
                for c in checked
                if c.entry is not None and c.entry.mesa and c.entry.contest
            ]
        )
        base = self._store.size()
        enrolled: dict[str, set[str]] = {}  # this batch's enrollments, kept only once the batch is stored
        for item in checked:
            entry = item.entry
            if entry is None:
                assert item.error is not None
                results.append(AppendResult("rejected", error=item.error))
                continue
            known = existing.get(entry.entry_hash, pending_hashes.get(entry.entry_hash))
            if known is not None:
                results.append(AppendResult("duplicate", index=known))
                continue
            index = base + len(batch)
            if entry.kind == "election" and index != 0:
                results.append(AppendResult("rejected", error=MalformedError("election entry: only entry 0")))
                continue
            if entry.kind != "election" and index == 0:
                first = MalformedError("log: entry 0 must be the election entry")
                results.append(AppendResult("rejected", error=first))
                continue
            status: Status = "appended"
            others: tuple[int, ...] = ()
            if entry.kind == "acta":
                assert entry.mesa is not None and entry.contest is not None and item.signer is not None
                if entry.mesa not in self._enrolled.get(item.signer, ()) and entry.mesa not in enrolled.get(
                    item.signer, ()
                ):
                    err = EnrollmentError(f"acta for mesa {entry.mesa!r}: device key is not enrolled for it")
                    results.append(AppendResult("rejected", error=err))
                    continue
                key = (entry.mesa, entry.contest)
                before = pending_mesas.setdefault(key, [])
                if before:
                    status, others = "conflict", tuple(before)
                before.append(index)
            elif entry.kind == "enroll":
                assert entry.device is not None
                enrolled.setdefault(entry.device, set()).update(entry.mesas)
            pending_hashes[entry.entry_hash] = index
            batch.append(entry)
            results.append(AppendResult(status, index=index, conflicts_with=others, warnings=item.warnings))
        self._log.append(batch)  # raises StorageError if the batch could not be stored: nothing is taken in
        for device, mesas in enrolled.items():
            self._enrolled.setdefault(device, set()).update(mesas)
        return results

    def checkpoint_bytes(self) -> bytes:
        """The latest signed checkpoint."""
        return self._log.checkpoint_bytes()

    def close(self) -> None:
        """Stop worker processes and close the store."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self._store.close()
