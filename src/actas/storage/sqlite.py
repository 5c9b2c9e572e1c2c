"""SQLite LogStore (WAL): the embedded default. The only module that imports sqlite3."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from actas.errors import StorageError
from actas.storage.base import Conflict, NewEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_hash ON entries(hash);
CREATE TABLE IF NOT EXISTS actas (
    mesa TEXT NOT NULL,
    contest TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (mesa, contest, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS enrollments (
    idx INTEGER NOT NULL,
    device TEXT NOT NULL,
    mesa TEXT NOT NULL,
    PRIMARY KEY (idx, mesa)
) WITHOUT ROWID;
"""


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _storage_errors(fn: _Fn) -> _Fn:
    """Turn sqlite3 errors raised by a store method into StorageError (the project's own error tree)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise StorageError(f"log database: {exc}") from None

    return cast(_Fn, wrapper)


class SqliteLogStore:
    """A LogStore in one SQLite database file, written by one sequencer."""

    def __init__(self, path: Path | str) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when append() returns, so a receipt may be issued.
            self._db.execute("PRAGMA synchronous=FULL")
            # The hash and mesa indexes take random keys: keep their hot pages in memory (64 MB) at 1 M entries.
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0), COUNT(*) FROM entries").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open log database: {exc}") from None
        if row[0] != row[1]:
            raise StorageError(f"{path}: entry indexes are not contiguous ({row[1]} entries, max {row[0] - 1})")
        self._size = int(row[0])

    def size(self) -> int:
        """Number of entries stored."""
        return self._size

    def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries at the next indexes in one durable transaction."""
        start = self._size
        rows = [(start + i, e.entry_hash, e.kind, e.data) for i, e in enumerate(entries)]
        actas = [
            (e.mesa, e.contest, start + i)
            for i, e in enumerate(entries)
            if e.mesa is not None and e.contest is not None
        ]
        enrollments = [(start + i, e.device, mesa) for i, e in enumerate(entries) if e.device for mesa in e.mesas]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("INSERT INTO actas VALUES (?, ?, ?)", actas)
            self._db.executemany("INSERT INTO enrollments VALUES (?, ?, ?)", enrollments)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StorageError(f"cannot append {len(rows)} entries: {exc}") from None
        self._size = start + len(rows)

    @_storage_errors
    def read(self, start: int, stop: int) -> list[bytes]:
        """Entries with index in [start, stop)."""
        cursor = self._db.execute("SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop))
        return [bytes(row[0]) for row in cursor]

    @_storage_errors
    def find_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Map stored entry hashes to their index."""
        found: dict[bytes, int] = {}
        unique = list(dict.fromkeys(hashes))
        for offset in range(0, len(unique), 500):
            chunk = unique[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            for idx, entry_hash in self._db.execute(f"SELECT idx, hash FROM entries WHERE hash IN ({marks})", chunk):
                found.setdefault(bytes(entry_hash), int(idx))
        return found

    @_storage_errors
    def mesa_indexes(self, mesa: str, contest: str) -> list[int]:
        """Leaf indexes of the actas of a mesa and contest."""
        cursor = self._db.execute("SELECT idx FROM actas WHERE mesa = ? AND contest = ? ORDER BY idx", (mesa, contest))
        return [int(row[0]) for row in cursor]

    @_storage_errors
    def mesa_indexes_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """Leaf indexes of the actas of many mesas and contests (one query per 500 mesas)."""
        wanted = set(keys)
        mesas = sorted({mesa for mesa, _ in wanted})
        found: dict[tuple[str, str], list[int]] = {}
        for offset in range(0, len(mesas), 500):
            chunk = mesas[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            cursor = self._db.execute(
                f"SELECT mesa, contest, idx FROM actas WHERE mesa IN ({marks}) ORDER BY mesa, contest, idx",
                chunk,
            )
            for mesa, contest, idx in cursor:
                key = (str(mesa), str(contest))
                if key in wanted:
                    found.setdefault(key, []).append(int(idx))
        return found

    def enrollments(self) -> Iterator[tuple[str, str]]:
        """Every (device, mesa) enrollment pair in log order."""
        try:
            rows = self._db.execute("SELECT device, mesa FROM enrollments ORDER BY idx, mesa").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"log database: {exc}") from None
        for device, mesa in rows:
            yield str(device), str(mesa)

    @_storage_errors
    def conflicts(self) -> list[Conflict]:
        """Mesas with more than one acta."""
        cursor = self._db.execute(
            "SELECT mesa, contest, group_concat(idx) FROM actas GROUP BY mesa, contest HAVING COUNT(*) > 1 "
            "ORDER BY mesa, contest"
        )
        return [
            Conflict(str(mesa), str(contest), tuple(sorted(int(i) for i in str(idxs).split(","))))
            for mesa, contest, idxs in cursor
        ]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
