"""Open the sequencer of an existing data directory, append to it, or rebuild its tiled log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from actas.core.election import Election
from actas.core.keys import Signer
from actas.errors import StorageError, UnavailableError
from actas.log.tiled import TiledLog
from actas.log.writer import AppendResult, LogWriter
from actas.storage.filelock import FileLock
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore

BATCH = 4096


def _authority(data: DataDir) -> Signer:
    return Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())


def open_writer(data: DataDir, workers: int = 0) -> LogWriter:
    """The writer of a data directory (its definition, authority key and SQLite store)."""
    if not data.database.exists():
        raise StorageError(f"{data.root}: no log database here")
    election = Election.from_json(data.election.read_bytes())
    return LogWriter(SqliteLogStore(data.database), data.log, election, _authority(data), workers=workers)


def rebuild_log(data: DataDir) -> int:
    """Rewrite every tile, bundle and the checkpoint from the stored entries, whatever state they are in."""
    if not data.database.exists():
        raise StorageError(f"{data.root}: no log database here")
    store = SqliteLogStore(data.database)
    try:
        return TiledLog.for_rebuild(store, data.log, _authority(data)).rebuild()
    finally:
        store.close()


@contextmanager
def sequencing(data: DataDir, workers: int = 0) -> Iterator[LogWriter]:
    """The data directory's writer, holding its sequencer lock; refused while a service sequences it."""
    lock = FileLock(data.root / "sequencer.lock")
    if not lock.try_acquire():
        raise UnavailableError(f"{data.root}: a service is sequencing this data directory; submit to it over HTTP")
    try:
        writer = open_writer(data, workers)
        try:
            yield writer
        finally:
            writer.close()
    finally:
        lock.release()


def append_entries(
    data: DataDir,
    entries: Sequence[bytes],
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Counter[str], list[tuple[int, AppendResult]]]:
    """Append signed entries to a data directory's log; counts per status and the (position, result) refused."""
    counts: Counter[str] = Counter()
    refused: list[tuple[int, AppendResult]] = []
    with sequencing(data, workers) as writer:
        for start in range(0, len(entries), BATCH):
            for offset, result in enumerate(writer.append(entries[start : start + BATCH])):
                counts[result.status] += 1
                if result.status == "rejected":
                    refused.append((start + offset, result))
            if progress is not None:
                progress(min(start + BATCH, len(entries)), len(entries))
    return counts, refused
