"""SQLite LogStore (WAL): the embedded default. The only module that imports sqlite3."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from actas.core.receipt import ReceiptBatch
from actas.errors import StorageError
from actas.storage.base import Conflict, NewEntry, Pending, Stored, Submission

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
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    mesa TEXT,
    contest TEXT,
    device TEXT,
    mesas TEXT NOT NULL,
    signer TEXT,
    received INTEGER NOT NULL,
    data BLOB NOT NULL,
    sequenced INTEGER NOT NULL DEFAULT 0,
    batch INTEGER
);
CREATE TABLE IF NOT EXISTS receipt_batches (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    time INTEGER NOT NULL,
    size INTEGER NOT NULL,
    nodes BLOB NOT NULL,
    sig BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_pending ON submissions(seq) WHERE sequenced = 0;
CREATE INDEX IF NOT EXISTS submissions_mesa ON submissions(mesa, contest, seq) WHERE mesa IS NOT NULL;
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, root, witness)
) WITHOUT ROWID;
"""

_SUBMISSION_COLUMNS = "hash, kind, mesa, contest, device, mesas, signer, received, data"


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


WRITER_WAIT = 60.0  # seconds a write waits for the writers' flock before it fails
WRITER_POLL_FIRST = 0.0001  # seconds between tries for the flock, doubling…
WRITER_POLL_MAX = 0.002  # …up to this: a commit behind a sequencer step starts within 2 ms of its end
IN_CHUNK = 500  # parameters per IN (...) list, below SQLite's limit on bound variables


def _rows_in(db: sqlite3.Connection, query: str, values: Sequence[object]) -> Iterator[Any]:
    """Rows of query, whose "{marks}" is an IN list, for every value, IN_CHUNK values at a time."""
    for offset in range(0, len(values), IN_CHUNK):
        chunk = values[offset : offset + IN_CHUNK]
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


def _runs(ordered: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive integers in an ascending list, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _submission_row(item: Submission) -> tuple[object, ...]:
    entry = item.entry
    mesas = " ".join(entry.mesas)  # mesa codes never hold spaces (entries.py)
    return (
        entry.entry_hash,
        entry.kind,
        entry.mesa,
        entry.contest,
        entry.device,
        mesas,
        item.signer,
        item.received,
        entry.data,
    )


def _submission(row: Sequence[Any]) -> Submission:
    entry_hash, kind, mesa, contest, device, mesas, signer, received, data = row
    entry = NewEntry(
        bytes(data),
        bytes(entry_hash),
        str(kind),
        mesa=mesa,
        contest=contest,
        device=device,
        mesas=tuple(str(mesas).split()),
    )
    return Submission(entry, int(received), signer)


class SqliteLogStore:
    """A SubmissionStore in one SQLite database file: one sequencer and one process (several threads) at a time."""

    def __init__(self, path: Path | str) -> None:
        try:
            # Writers queue on an flock beside the database before they begin (see _writing). Read-only: flock needs
            # no more, and a lock file that root created stays usable by the database's owner.
            self._writer = os.open(f"{path}-writer.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"{path}: cannot open the writers' lock: {exc.strerror}") from None
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            os.close(self._writer)
            raise StorageError(f"{path}: cannot open log database: {exc}") from None
        try:
            self._open(path)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path | str) -> None:
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when append() returns, so a receipt may be issued.
            self._db.execute("PRAGMA synchronous=FULL")
            # The hash and mesa indexes take random keys: keep their hot pages in memory (64 MB) at 1 M entries.
            self._db.execute("PRAGMA cache_size=-65536")
            # Ingest and the sequencer write through separate connections: wait for the other's commit.
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.executescript(SCHEMA)
            self._add_batch_column()
            row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0), COUNT(*) FROM entries").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open log database: {exc}") from None
        if row[0] != row[1]:
            raise StorageError(f"{path}: entry indexes are not contiguous ({row[1]} entries, max {row[0] - 1})")
        self._size = int(row[0])

    def _add_batch_column(self) -> None:
        """A database made before receipt batches gets the column (its older submissions have no batch)."""
        if any(row[1] == "batch" for row in self._db.execute("PRAGMA table_info(submissions)")):
            return
        with self._writing():  # several processes may open it at once: one adds, the others see it
            if not any(row[1] == "batch" for row in self._db.execute("PRAGMA table_info(submissions)")):
                self._db.execute("ALTER TABLE submissions ADD COLUMN batch INTEGER")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, committed at the end of the block (rolled back if it raises).

        Ingest, the sequencer and other service processes write through connections of their own. SQLite makes a
        writer that finds the database locked sleep and try again (1, 2, 5, 10 ms…), so one commit behind a
        sequencer step waited several milliseconds longer than the step held the lock. Waiting on an flock
        instead, with pauses of at most 2 ms, the next writer begins soon after the previous one ends, and gives up
        with a StorageError after WRITER_WAIT (a holder stopped or hung), as SQLite's busy_timeout did. (That timeout
        still guards against writers that do not take the flock.)
        """
        self._lock_writers()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._writer, fcntl.LOCK_UN)

    def _lock_writers(self) -> None:
        """Take the writers' flock, polling with short pauses (flock itself cannot time out) up to WRITER_WAIT."""
        deadline = time.monotonic() + WRITER_WAIT
        pause = WRITER_POLL_FIRST
        while True:
            try:
                fcntl.flock(self._writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StorageError(f"another writer has held the database for over {WRITER_WAIT:.0f} s") from None
            time.sleep(pause)
            pause = min(2 * pause, WRITER_POLL_MAX)

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
            with self._writing():
                self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
                self._db.executemany("INSERT INTO actas VALUES (?, ?, ?)", actas)
                self._db.executemany("INSERT INTO enrollments VALUES (?, ?, ?)", enrollments)
        except sqlite3.Error as exc:
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
        for idx, entry_hash in _rows_in(self._db, "SELECT idx, hash FROM entries WHERE hash IN ({marks})", unique):
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
        query = "SELECT mesa, contest, idx FROM actas WHERE mesa IN ({marks}) ORDER BY mesa, contest, idx"
        for mesa, contest, idx in _rows_in(self._db, query, mesas):
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

    # -- the submission queue -------------------------------------------------------------------------------

    @_storage_errors
    def submit(self, items: Sequence[Submission], batch: ReceiptBatch | None = None) -> list[Stored]:
        """Durably store new submissions (one transaction); say per item when it was first stored."""
        hashes = list(dict.fromkeys(item.entry.entry_hash for item in items))
        with self._writing():
            earlier: dict[bytes, Stored] = {}
            query = "SELECT hash, received, batch FROM submissions WHERE hash IN ({marks})"
            for h, r, b in _rows_in(self._db, query, hashes):
                earlier[bytes(h)] = Stored(int(r), False, b)
            batch_id = None
            if batch is not None and len(earlier) < len(hashes):
                row = (batch.origin, batch.time, len(batch.leaves), batch.nodes(), batch.signature)
                batch_id = self._db.execute("INSERT INTO receipt_batches VALUES (NULL, ?, ?, ?, ?, ?)", row).lastrowid
            out: list[Stored] = []
            rows = []
            for item in items:
                leaf = item.entry.entry_hash
                known = earlier.get(leaf)
                if known is not None:
                    out.append(known)
                    continue
                earlier[leaf] = Stored(item.received, False, batch_id)
                rows.append((*_submission_row(item), batch_id))
                out.append(Stored(item.received, True, batch_id))
            self._db.executemany(
                f"INSERT INTO submissions ({_SUBMISSION_COLUMNS}, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        return out

    @_storage_errors
    def receipt_batch(self, batch: int) -> ReceiptBatch:
        """A stored receipt batch by its id."""
        query = "SELECT origin, time, size, nodes, sig FROM receipt_batches WHERE id = ?"
        row = self._db.execute(query, (batch,)).fetchone()
        if row is None:
            raise StorageError(f"no receipt batch {batch}")
        origin, time, size, nodes, signature = row
        return ReceiptBatch.from_nodes(str(origin), int(time), int(size), bytes(nodes), bytes(signature))

    def _submitted_locked(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        found: dict[bytes, Submission] = {}
        unique = list(dict.fromkeys(hashes))
        query = f"SELECT {_SUBMISSION_COLUMNS} FROM submissions WHERE hash IN ({{marks}})"
        for row in _rows_in(self._db, query, unique):
            found[bytes(row[0])] = _submission(row)
        return found

    @_storage_errors
    def submitted(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        """The stored submission of each leaf hash that was ever submitted."""
        return self._submitted_locked(hashes)

    @_storage_errors
    def submitted_for_mesas(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[bytes]]:
        """Leaf hashes of the submissions for each (mesa, contest), in the order stored (one query per 500)."""
        if len(keys) == 1:  # a mesa page: one range of the (mesa, contest, seq) index, already in order
            mesa, contest = keys[0]
            query = "SELECT hash FROM submissions WHERE mesa = ? AND contest = ? ORDER BY seq"
            leaves = [bytes(row[0]) for row in self._db.execute(query, (mesa, contest))]
            return {keys[0]: leaves} if leaves else {}
        wanted = set(keys)
        mesas = sorted({mesa for mesa, _ in wanted})
        found: dict[tuple[str, str], list[bytes]] = {}
        # In index order: each key's leaves still come in the order stored, and no temporary sort is needed.
        query = "SELECT mesa, contest, hash FROM submissions WHERE mesa IN ({marks}) ORDER BY mesa, contest, seq"
        for mesa, contest, leaf in _rows_in(self._db, query, mesas):
            key = (str(mesa), str(contest))
            if key in wanted:
                found.setdefault(key, []).append(bytes(leaf))
        return found

    @_storage_errors
    def pending(self, limit: int) -> list[Pending]:
        """Up to limit unsequenced submissions, oldest first."""
        cursor = self._db.execute(
            f"SELECT seq, {_SUBMISSION_COLUMNS} FROM submissions WHERE sequenced = 0 ORDER BY seq LIMIT ?", (limit,)
        )
        return [Pending(int(row[0]), _submission(row[1:])) for row in cursor]

    @_storage_errors
    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        """Queue positions and leaf hashes of up to limit unsequenced submissions, oldest first."""
        query = "SELECT seq, hash FROM submissions WHERE sequenced = 0 ORDER BY seq LIMIT ?"
        return [(int(seq), bytes(leaf)) for seq, leaf in self._db.execute(query, (limit,))]

    @_storage_errors
    def mark_sequenced(self, seqs: Sequence[int]) -> None:
        """Take these submissions off the queue."""
        with self._writing():
            # One statement per run of consecutive positions (a sequencer's batch is one run): not one per row.
            query = "UPDATE submissions SET sequenced = 1 WHERE seq BETWEEN ? AND ? AND sequenced = 0"
            self._db.executemany(query, _runs(sorted(set(seqs))))

    @_storage_errors
    def pending_count(self) -> int:
        """How many submissions wait for the sequencer."""
        return int(self._db.execute("SELECT COUNT(*) FROM submissions WHERE sequenced = 0").fetchone()[0])

    @_storage_errors
    def add_cosignature(self, size: int, root: bytes, witness: str, line: str) -> None:
        """Keep a witness's cosignature line for a checkpoint."""
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO cosignatures VALUES (?, ?, ?, ?)", (size, root, witness, line))

    @_storage_errors
    def cosignatures(self, size: int, root: bytes) -> list[str]:
        """Cosignature lines kept for a checkpoint, by witness name."""
        cursor = self._db.execute(
            "SELECT line FROM cosignatures WHERE size = ? AND root = ? ORDER BY witness", (size, root)
        )
        return [str(row[0]) for row in cursor]

    def close(self) -> None:
        """Close the database (again: nothing)."""
        self._db.close()
        if self._writer >= 0:  # never twice: the number may belong to another file by now
            os.close(self._writer)
            self._writer = -1
