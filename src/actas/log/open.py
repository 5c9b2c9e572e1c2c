"""Open the sequencer of an existing data directory, or rebuild its tiled log."""

from __future__ import annotations

from actas.core.election import Election
from actas.core.keys import Signer
from actas.errors import StorageError
from actas.log.tiled import TiledLog
from actas.log.writer import LogWriter
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore


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
