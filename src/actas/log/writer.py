"""The sequencer: the single writer that appends entries, integrates tiles and signs checkpoints.

Order of durability (DESIGN.md §6): entries are committed to the store first; tiles are derived from them and
fsynced; only then is a checkpoint over them signed and renamed into place. After a crash, opening the writer
integrates whatever the store holds beyond the last checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from actas.core import merkle
from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.note import Checkpoint, open_checkpoint, sign_checkpoint
from actas.core.tiles import TILE_WIDTH, TileBuilder, TileCoord, encode_bundle, tile_path
from actas.errors import ActasError, EnrollmentError, FetchError, MalformedError, StorageError
from actas.storage.files import sync_directory, write_durable
from actas.log.validate import Checked, check_chunk, check_one, init_worker
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
        self._dir = log_dir
        self._election = election
        self._authority = authority
        self._executor: Executor | None = None
        if workers > 0:
            self._executor = ProcessPoolExecutor(
                workers, initializer=init_worker, initargs=(election.to_canonical(), str(authority.verifier))
            )
        self._enrolled: dict[str, set[str]] = {}
        for device, mesa in store.enrollments():
            self._enrolled.setdefault(device, set()).add(mesa)
        self._tiles = self._open_tiles()
        if store.size() > self._tiles.size:
            self._integrate(self._tiles.size, store.size())

    # -- opening and recovery -------------------------------------------------------------------------------

    def _open_tiles(self) -> TileBuilder:
        size = 0
        if (self._dir / "checkpoint").exists():
            size = open_checkpoint((self._dir / "checkpoint").read_bytes(), self._authority.verifier).size
        if size > self._store.size():
            raise StorageError(f"checkpoint covers {size} entries but the store holds {self._store.size()}")
        try:
            return TileBuilder(size, self._read_tile)
        except (FetchError, OSError, MalformedError):
            return self._rebuild_builder(size)

    def _rebuild_builder(self, size: int) -> TileBuilder:
        builder = TileBuilder(0, self._read_tile)
        for start in range(0, size, 65536):
            hashes = [merkle.leaf_hash(e) for e in self._store.read(start, min(size, start + 65536))]
            builder.append(hashes)
        return builder

    def _read_tile(self, coord: TileCoord) -> bytes:
        try:
            return (self._dir / tile_path(coord)).read_bytes()
        except FileNotFoundError:
            raise FetchError(f"{tile_path(coord)}: missing") from None

    def rebuild(self) -> int:
        """Rewrite every tile, bundle and the checkpoint from the stored entries; return the size."""
        self._tiles = TileBuilder(0, self._read_tile)
        self._integrate(0, self._store.size())
        return self._tiles.size

    # -- appending ------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries integrated into the tiled log."""
        return self._tiles.size

    def bootstrap(self) -> None:
        """Log the election entry as entry 0 if the log is empty."""
        from actas.core.entries import election_entry

        if self._store.size() == 0:
            result = self.append([election_entry(self._election.origin, self._election.digest, self._authority)])
            if result[0].status != "appended":
                raise StorageError(f"cannot log the election entry: {result[0].error}")

    def _check(self, submissions: Sequence[bytes]) -> list[Checked]:
        if self._executor is None or len(submissions) < PARALLEL_THRESHOLD:
            verifier = self._authority.verifier
            return [check_one(data, self._election, verifier) for data in submissions]
        chunks = [submissions[i : i + CHUNK] for i in range(0, len(submissions), CHUNK)]
        return [checked for part in self._executor.map(check_chunk, chunks) for checked in part]

    def append(self, submissions: Sequence[bytes], progress: Callable[[int], None] | None = None) -> list[AppendResult]:
        """Check, deduplicate and append submissions; integrate tiles; sign a new checkpoint."""
        checked = self._check(submissions)
        existing = self._store.find_hashes([c.entry.entry_hash for c in checked if c.entry is not None])
        results: list[AppendResult] = []
        batch: list[NewEntry] = []
        pending_hashes: dict[bytes, int] = {}
        pending_mesas: dict[tuple[str, str], list[int]] = {}
        base = self._store.size()
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
                err = MalformedError("log: entry 0 must be the election entry")
                results.append(AppendResult("rejected", error=err))
                continue
            status: Status = "appended"
            others: tuple[int, ...] = ()
            if entry.kind == "acta":
                assert entry.mesa is not None and entry.contest is not None and item.signer is not None
                if entry.mesa not in self._enrolled.get(item.signer, ()):
                    err = EnrollmentError(f"acta for mesa {entry.mesa!r}: device key is not enrolled for it")
                    results.append(AppendResult("rejected", error=err))
                    continue
                key = (entry.mesa, entry.contest)
                before = pending_mesas.get(key)
                if before is None:
                    before = self._store.mesa_indexes(entry.mesa, entry.contest)
                    pending_mesas[key] = before
                if before:
                    status, others = "conflict", tuple(before)
                before.append(index)
            elif entry.kind == "enroll":
                assert entry.device is not None
                self._enrolled.setdefault(entry.device, set()).update(entry.mesas)
            pending_hashes[entry.entry_hash] = index
            batch.append(entry)
            results.append(AppendResult(status, index=index, conflicts_with=others, warnings=item.warnings))
        if batch:
            self._store.append(batch)
            self._integrate(base, base + len(batch), [e.data for e in batch])
        if progress is not None:
            progress(len(submissions))
        return results

    # -- integration ----------------------------------------------------------------------------------------

    def _integrate(self, start: int, stop: int, fresh: list[bytes] | None = None) -> None:
        """Write bundles and tiles for entries [start, stop), then sign and publish a checkpoint."""
        if fresh is None:
            fresh = self._store.read(start, stop)
        first_bundle = start // TILE_WIDTH
        head = self._store.read(first_bundle * TILE_WIDTH, start) if start % TILE_WIDTH else []
        entries = head + fresh
        written: list[Path] = []
        offset = first_bundle * TILE_WIDTH
        for i in range(0, len(entries), TILE_WIDTH):
            chunk = entries[i : i + TILE_WIDTH]
            coord = TileCoord(-1, (offset + i) // TILE_WIDTH, len(chunk))
            written.append(self._write(coord, encode_bundle(chunk)))
        for coord, data in self._tiles.append([merkle.leaf_hash(e) for e in fresh]):
            written.append(self._write(coord, data))
        for directory in {p.parent for p in written}:
            sync_directory(directory)
        checkpoint = Checkpoint(self._election.origin, self._tiles.size, self._tiles.root())
        write_durable(self._dir / "checkpoint", sign_checkpoint(checkpoint, self._authority))

    def _write(self, coord: TileCoord, data: bytes) -> Path:
        path = self._dir / tile_path(coord)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return path

    def checkpoint_bytes(self) -> bytes:
        """The latest signed checkpoint."""
        return (self._dir / "checkpoint").read_bytes()

    def close(self) -> None:
        """Stop worker processes and close the store."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self._store.close()
