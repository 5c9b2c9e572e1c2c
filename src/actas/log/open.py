"""Open the sequencer of an existing data directory."""

from __future__ import annotations

from actas.core.election import Election
from actas.core.keys import Signer
from actas.errors import StorageError
from actas.log.writer import LogWriter
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore


def open_writer(data: DataDir, workers: int = 0) -> LogWriter:
    """The writer of a data directory (its definition, authority key and SQLite store)."""
    if not data.database.exists():
        raise StorageError(f"{data.root}: no log database here")
    election = Election.from_json(data.election.read_bytes())
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    return LogWriter(SqliteLogStore(data.database), data.log, election, authority, workers=workers)
