"""Where a service's log lives, and how any of its processes opens it: the store, the sequencer's lock, the writer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actas.core.election import Election
from actas.core.keys import Signer
from actas.log.writer import LogWriter
from actas.service.sequencer import Lock
from actas.storage.base import SubmissionStore
from actas.storage.filelock import FileLock
from actas.storage.layout import DataDir
from actas.storage.postgres import PostgresLogStore, SequencerLock
from actas.storage.sqlite import SqliteLogStore


@dataclass(frozen=True)
class LogPlace:
    """A data directory and, when db is set, the PostgreSQL store beside it; plain data, so a helper process gets it."""

    data_dir: Path
    db: str | None = None  # postgresql://…; None: the data directory's SQLite database
    db_schema: str = "public"  # PostgreSQL schema: one per log when a database holds several

    @property
    def data(self) -> DataDir:
        """The data directory's layout."""
        return DataDir(self.data_dir)

    def open_store(self) -> SubmissionStore:
        """A new connection to the store."""
        if self.db is not None:
            return PostgresLogStore(self.db, schema=self.db_schema)
        return SqliteLogStore(self.data.database)

    def sequencer_lock(self) -> Lock:
        """Who may sequence: PostgreSQL's advisory lock, or an flock beside the SQLite database."""
        if self.db is not None:
            return SequencerLock(self.db, schema=self.db_schema)
        return FileLock(self.data.root / "sequencer.lock")

    def open_writer(self, store: SubmissionStore, election: Election, authority: Signer) -> LogWriter:
        """The log writer over store, with whatever a dead sequencer left half done integrated first."""
        writer = LogWriter(store, self.data.log, election, authority)
        writer.bootstrap()
        return writer
