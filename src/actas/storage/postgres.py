"""PostgreSQL SubmissionStore and sequencer lock, for scale-out. The only module that imports psycopg.

Ingest processes on several hosts submit and read at once; one sequencer, holding the SequencerLock, appends. size()
always asks the database, and append() stores only where this instance expects the log to end, so a sequencer that
lost the lock cannot interleave its entries with the new sequencer's.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeGuard, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actas.core.receipt import ReceiptBatch
from actas.errors import StorageError
from actas.storage.base import Conflict, NewEntry, Pending, Stored, Submission

# COLLATE "C": text sorts by code point, as in SQLite and Python, whatever the database's locale.
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx BIGINT PRIMARY KEY, hash BYTEA NOT NULL, kind TEXT NOT NULL, data BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS entries_hash ON entries(hash);
CREATE TABLE IF NOT EXISTS actas (
    mesa TEXT COLLATE "C", contest TEXT COLLATE "C", idx BIGINT, PRIMARY KEY (mesa, contest, idx));
CREATE TABLE IF NOT EXISTS enrollments (
    idx BIGINT, device TEXT COLLATE "C" NOT NULL, mesa TEXT COLLATE "C", PRIMARY KEY (idx, mesa));
CREATE TABLE IF NOT EXISTS submissions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, hash BYTEA NOT NULL UNIQUE, kind TEXT NOT NULL,
    mesa TEXT COLLATE "C", contest TEXT COLLATE "C", device TEXT COLLATE "C", mesas TEXT NOT NULL, signer TEXT,
    received BIGINT NOT NULL, data BYTEA NOT NULL, sequenced BOOLEAN NOT NULL DEFAULT FALSE, batch BIGINT);
CREATE TABLE IF NOT EXISTS receipt_batches (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, origin TEXT NOT NULL, time BIGINT NOT NULL,
    size BIGINT NOT NULL, nodes BYTEA NOT NULL, sig BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS submissions_pending ON submissions(seq) WHERE NOT sequenced;
CREATE INDEX IF NOT EXISTS submissions_mesa ON submissions(mesa, contest, seq) WHERE mesa IS NOT NULL;
CREATE TABLE IF NOT EXISTS cosignatures (
    size BIGINT, root BYTEA, witness TEXT COLLATE "C", line TEXT NOT NULL, PRIMARY KEY (size, root, witness));
"""
TABLES = ("entries", "actas", "enrollments", "submissions", "receipt_batches", "cosignatures")

_SIZE = "SELECT COALESCE(MAX(idx) + 1, 0) FROM entries"  # one descent of the primary key
# The guard stores nothing unless the log still ends at the first index given.
_INSERT_ENTRIES = (
    "INSERT INTO entries (idx, hash, kind, data) SELECT %s + o - 1, h, k, d FROM unnest(%b::bytea[], %s::text[], "
    f"%b::bytea[]) WITH ORDINALITY AS t(h, k, d, o) WHERE ({_SIZE}) = %s"
)
_INSERT_ACTAS = "INSERT INTO actas SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
_INSERT_ENROLLMENTS = "INSERT INTO enrollments SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])"
_COLUMNS = "hash, kind, mesa, contest, device, mesas, signer, received, data"
# ORDER BY o: queue positions follow the order of the items, as in the other stores.
_INSERT_SUBMISSIONS = (
    f"INSERT INTO submissions ({_COLUMNS}, batch) SELECT {_COLUMNS}, %s FROM unnest(%b::bytea[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %b::bytea[]) "
    f"WITH ORDINALITY AS t({_COLUMNS}, o) ORDER BY o ON CONFLICT (hash) DO NOTHING RETURNING hash"
)
_INSERT_BATCH = "INSERT INTO receipt_batches (origin, time, size, nodes, sig) VALUES (%s, %s, %s, %b, %b) RETURNING id"
_BY_MESA = "FROM {} WHERE mesa = ANY(%s::text[]) AND contest = ANY(%s::text[]) ORDER BY {}"

_STORE_DEFAULTS = "application_name=actas connect_timeout=10"
# Keepalives and a TCP timeout: a dead link to the server shows up in seconds rather than hours.
_LOCK_DEFAULTS = (
    "application_name=actas-sequencer connect_timeout=10 keepalives_idle=5 keepalives_interval=2 keepalives_count=3 "
    "tcp_user_timeout=10000"
)
_ATTEMPTS = 3  # a lost connection is retried once, a deadlock twice

_T = TypeVar("_T")
_Conn = psycopg.Connection[tuple[Any, ...]]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key derived from a name (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


SEQUENCER_KEY = lock_key("actas/sequencer")


def sequencer_key(schema: str = "public") -> int:
    """The sequencer lock key of a schema: SEQUENCER_KEY for public, else one derived from the schema name."""
    # Advisory locks are per database, not per schema: logs in different schemas must not share a key.
    return SEQUENCER_KEY if schema == "public" else lock_key(f"actas/sequencer/{schema}")


def _connect(dsn: str, defaults: str) -> _Conn:
    """An autocommit connection; defaults (a conninfo string) fill only the parameters the DSN leaves out."""
    return psycopg.connect(make_conninfo(defaults, **conninfo_to_dict(dsn)), autocommit=True)


def _one(conn: _Conn, query: Any, params: Sequence[Any] = ()) -> Any:
    return conn.execute(query, params).fetchall()[0][0]


def _alive(conn: _Conn | None) -> TypeGuard[_Conn]:
    return conn is not None and not conn.closed and not conn.broken


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the parameters of unnest()."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _submission_row(item: Submission) -> tuple[Any, ...]:
    e = item.entry
    mesas = " ".join(e.mesas)  # mesa codes never hold spaces (entries.py)
    return (e.entry_hash, e.kind, e.mesa, e.contest, e.device, mesas, item.signer, item.received, e.data)


def _submission(row: Sequence[Any]) -> Submission:
    entry_hash, kind, mesa, contest, device, mesas, signer, received, data = row
    entry = NewEntry(data, entry_hash, kind, mesa=mesa, contest=contest, device=device, mesas=tuple(mesas.split()))
    return Submission(entry, received, signer)


class PostgresLogStore:
    """A SubmissionStore in a PostgreSQL schema, shared by ingest processes on several hosts and one sequencer."""

    def __init__(self, dsn: str, *, schema: str = "public") -> None:
        self._dsn = dsn
        self._schema = schema
        self._submit_key = lock_key(f"actas/submit/{schema}")
        self._where = f"PostgreSQL schema {schema}"  # the database and host are added once connected
        self._lock = threading.Lock()  # one connection, several threads: one statement or transaction at a time
        self._conn: _Conn | None = None
        self._closed = False
        self._next = 0  # where append() must start: the end of its last append, else the last size() read
        self._own = False  # _next comes from this instance's own append
        try:
            conn = self._connection()
            with conn.transaction():
                # Several processes may start at once: one creates the schema and tables, the others wait for it.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"actas/schema/{schema}"),))
                if not _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)):
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                query = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)"
                # Only when tables are missing: IF NOT EXISTS still needs the CREATE privilege on the schema.
                if _one(conn, query, (schema, list(TABLES))) != len(TABLES):
                    conn.execute(SCHEMA)
                query = "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = %s AND column_name = %s"
                if not _one(conn, query + " AND table_name = 'submissions'", (schema, "batch")):
                    # A store made before receipt batches: older submissions have none.
                    conn.execute("ALTER TABLE submissions ADD COLUMN batch BIGINT")
            size, count = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0), COUNT(*) FROM entries").fetchall()[0]
        except psycopg.Error as exc:
            self.close()
            raise StorageError(f"{self._where}: cannot open log store: {str(exc).strip()}") from None
        if size != count:
            self.close()
            raise StorageError(f"{self._where}: entry indexes are not contiguous ({count} entries, max {size - 1})")
        self._next = size

    def _connection(self) -> _Conn:
        """The open connection, made again if it was lost."""
        if _alive(self._conn):
            return self._conn
        if self._closed:
            raise psycopg.InterfaceError("the store is closed")
        if self._conn is not None:
            self._conn.close()
        conn = _connect(self._dsn, _STORE_DEFAULTS)
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            # A receipt promises durability: never run with the server's synchronous_commit turned off.
            if _one(conn, "SELECT current_setting('synchronous_commit')") == "off":
                conn.execute("SET synchronous_commit TO on")
        except psycopg.Error:
            conn.close()
            raise
        self._conn = conn
        self._where = f"PostgreSQL {conn.info.dbname}@{conn.info.host}, schema {self._schema}"
        return conn

    def _run(self, what: str, body: Callable[[_Conn], _T], *, write: bool = False) -> _T:
        """Run body on the connection (in one transaction if write); psycopg errors become StorageError."""
        with self._lock:
            for attempt in range(_ATTEMPTS):
                conn: _Conn | None = None
                committing = False
                try:
                    conn = self._connection()
                    if not write:
                        return body(conn)
                    with conn.transaction():
                        result = body(conn)
                        committing = True
                    return result
                except psycopg.Error as exc:
                    if committing and not _alive(conn):
                        what += ": connection lost while committing, outcome unknown"
                        raise StorageError(f"{self._where}: {what}: {str(exc).strip()}") from None
                    # Nothing was committed: a stale connection gets one retry, a deadlock (two ingest batches
                    # sharing leaves in different orders) two.
                    stale = conn is not None and not _alive(conn) and attempt == 0
                    if not (stale or isinstance(exc, psycopg.errors.DeadlockDetected)) or attempt == _ATTEMPTS - 1:
                        raise StorageError(f"{self._where}: {what}: {str(exc).strip()}") from None
            raise AssertionError("unreachable")

    def _rows(self, what: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(what, lambda conn: conn.execute(query, params).fetchall())

    def size(self) -> int:
        """Number of entries stored, read from the database (other processes may have appended)."""
        size = int(self._run("size", lambda conn: _one(conn, _SIZE)))
        with self._lock:
            if not self._own:
                self._next = size
        return size

    def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries where this instance expects the log to end, in one durable transaction, or raise."""
        if not entries:
            return

        def body(conn: _Conn) -> int:
            start = self._next
            fenced = StorageError(f"{self._where}: cannot append at index {start}: another sequencer appended")
            try:
                rows = [(e.entry_hash, e.kind, e.data) for e in entries]
                stored = conn.execute(_INSERT_ENTRIES, (start, *_columns(rows, 3), start)).rowcount
            except psycopg.errors.UniqueViolation:
                raise fenced from None  # it committed while this transaction waited on the same indexes
            if stored != len(entries):
                raise fenced
            actas = [(e.mesa, e.contest, start + i) for i, e in enumerate(entries) if None not in (e.mesa, e.contest)]
            if actas:
                conn.execute(_INSERT_ACTAS, _columns(actas, 3))
            enrolled = [(start + i, e.device, m) for i, e in enumerate(entries) if e.device for m in e.mesas]
            if enrolled:
                conn.execute(_INSERT_ENROLLMENTS, _columns(enrolled, 3))
            return start

        try:
            start = self._run(f"cannot append {len(entries)} entries", body, write=True)
        except StorageError:
            with self._lock:
                self._own = False  # the caller's next size() sets where the next append starts
            raise
        with self._lock:
            self._next, self._own = start + len(entries), True

    def read(self, start: int, stop: int) -> list[bytes]:
        """Entries with index in [start, stop)."""
        query = "SELECT data FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx"
        return [row[0] for row in self._rows("read", query, (start, stop))]

    def find_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Map stored entry hashes to their (first) index."""
        query = "SELECT hash, MIN(idx) FROM entries WHERE hash = ANY(%b) GROUP BY hash"
        return dict(self._rows("find_hashes", query, (list(dict.fromkeys(hashes)),)))

    def mesa_indexes(self, mesa: str, contest: str) -> list[int]:
        """Leaf indexes of the actas of a mesa and contest."""
        query = "SELECT idx FROM actas WHERE mesa = %s AND contest = %s ORDER BY idx"
        return [row[0] for row in self._rows("mesa_indexes", query, (mesa, contest))]

    def _by_mesa(self, what: str, query: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        """The (mesa, contest, value) rows of a query over ANY(mesas) and ANY(contests), by the keys asked for."""
        wanted = set(keys)
        params = (sorted({mesa for mesa, _ in wanted}), sorted({contest for _, contest in wanted}))
        found: dict[tuple[str, str], list[Any]] = {}
        for mesa, contest, value in self._rows(what, query, params):
            if (mesa, contest) in wanted:  # the query also matches one key's mesa with another key's contest
                found.setdefault((mesa, contest), []).append(value)
        return found

    def mesa_indexes_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """Leaf indexes of the actas of many mesas and contests, in one query."""
        return self._by_mesa("mesa_indexes_many", "SELECT mesa, contest, idx " + _BY_MESA.format("actas", "idx"), keys)

    def enrollments(self) -> Iterator[tuple[str, str]]:
        """Every (device, mesa) enrollment pair in log order."""
        return iter(self._rows("enrollments", "SELECT device, mesa FROM enrollments ORDER BY idx, mesa"))

    def conflicts(self) -> list[Conflict]:
        """Mesas with more than one acta."""
        query = "SELECT mesa, contest, array_agg(idx ORDER BY idx) FROM actas GROUP BY mesa, contest"
        rows = self._rows("conflicts", query + " HAVING COUNT(*) > 1 ORDER BY mesa, contest")
        return [Conflict(mesa, contest, tuple(indexes)) for mesa, contest, indexes in rows]

    def submit(self, items: Sequence[Submission], batch: ReceiptBatch | None = None) -> list[Stored]:
        """Durably store new submissions (one transaction); say per item when it was first stored."""
        if not items:
            return []
        first: dict[bytes, Submission] = {}
        for item in items:
            first.setdefault(item.entry.entry_hash, item)

        def body(conn: _Conn) -> tuple[set[bytes], dict[bytes, Stored], int | None]:
            # One submitting transaction at a time, across processes: then queue order (seq) is commit order, and
            # the first acta a mesa's submitters are told about is the one the sequencer logs first.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._submit_key,))
            batch_id = None
            if batch is not None:
                row = (batch.origin, batch.time, len(batch.leaves), batch.nodes(), batch.signature)
                batch_id = int(_one(conn, _INSERT_BATCH, row))
            rows = _columns([_submission_row(item) for item in first.values()], 9)
            inserted = {bytes(row[0]) for row in conn.execute(_INSERT_SUBMISSIONS, (batch_id, *rows)).fetchall()}
            if batch_id is not None and not inserted:  # nothing new: the batch would promise nothing of its own
                conn.execute("DELETE FROM receipt_batches WHERE id = %s", (batch_id,))
                batch_id = None
            others = [h for h in first if h not in inserted]
            # A second statement, so it sees a row another process committed while the insert waited on it.
            query = "SELECT hash, received, batch FROM submissions WHERE hash = ANY(%b)"
            found = conn.execute(query, (others,)).fetchall() if others else []
            earlier = {bytes(h): Stored(int(r), False, b) for h, r, b in found}
            return inserted, earlier, batch_id

        inserted, earlier, batch_id = self._run(f"cannot store {len(items)} submissions", body, write=True)
        out: list[Stored] = []
        answered: set[bytes] = set()
        for item in items:
            leaf = item.entry.entry_hash
            if leaf in inserted and leaf not in answered:
                out.append(Stored(item.received, True, batch_id))
            elif leaf in inserted:
                out.append(Stored(first[leaf].received, False, batch_id))
            else:
                out.append(earlier.get(leaf, Stored(first[leaf].received, False)))
            answered.add(leaf)
        return out

    def receipt_batch(self, batch: int) -> ReceiptBatch:
        """A stored receipt batch by its id."""
        query = "SELECT origin, time, size, nodes, sig FROM receipt_batches WHERE id = %s"
        rows = self._rows("receipt_batch", query, (batch,))
        if not rows:
            raise StorageError(f"{self._where}: no receipt batch {batch}")
        origin, time, size, nodes, signature = rows[0]
        return ReceiptBatch.from_nodes(origin, int(time), int(size), bytes(nodes), bytes(signature))

    @staticmethod
    def _submitted(conn: _Conn, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        query = f"SELECT {_COLUMNS} FROM submissions WHERE hash = ANY(%b)"
        return {row[0]: _submission(row) for row in conn.execute(query, (list(dict.fromkeys(hashes)),))}

    def submitted(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        """The stored submission of each leaf hash that was ever submitted."""
        return self._run("submitted", lambda conn: self._submitted(conn, hashes))

    def submitted_for_mesas(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[bytes]]:
        """Leaf hashes of the submissions for each (mesa, contest), in the order stored, in one query."""
        query = "SELECT mesa, contest, hash " + _BY_MESA.format("submissions", "seq")
        return self._by_mesa("submitted_for_mesas", query, keys)

    def pending(self, limit: int) -> list[Pending]:
        """Up to limit unsequenced submissions, oldest first."""
        query = f"SELECT seq, {_COLUMNS} FROM submissions WHERE NOT sequenced ORDER BY seq LIMIT %s"
        return [Pending(row[0], _submission(row[1:])) for row in self._rows("pending", query, (limit,))]

    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        """Queue positions and leaf hashes of up to limit unsequenced submissions, oldest first."""
        query = "SELECT seq, hash FROM submissions WHERE NOT sequenced ORDER BY seq LIMIT %s"
        return [(int(seq), bytes(leaf)) for seq, leaf in self._rows("pending_leaves", query, (limit,))]

    def mark_sequenced(self, seqs: Sequence[int]) -> None:
        """Take these submissions off the queue."""
        query = "UPDATE submissions SET sequenced = TRUE WHERE seq = ANY(%s::bigint[]) AND NOT sequenced"
        self._run("mark_sequenced", lambda conn: conn.execute(query, (list(seqs),)), write=True)

    def pending_count(self) -> int:
        """How many submissions wait for the sequencer."""
        return int(self._rows("pending_count", "SELECT COUNT(*) FROM submissions WHERE NOT sequenced")[0][0])

    def add_cosignature(self, size: int, root: bytes, witness: str, line: str) -> None:
        """Keep a witness's cosignature line for a checkpoint."""
        query = "INSERT INTO cosignatures VALUES (%s, %s, %s, %s) ON CONFLICT (size, root, witness) DO UPDATE"
        params = (size, root, witness, line)
        self._run("add_cosignature", lambda conn: conn.execute(query + " SET line = EXCLUDED.line", params), write=True)

    def cosignatures(self, size: int, root: bytes) -> list[str]:
        """Cosignature lines kept for a checkpoint, by witness name."""
        query = "SELECT line FROM cosignatures WHERE size = %s AND root = %s ORDER BY witness"
        return [row[0] for row in self._rows("cosignatures", query, (size, root))]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()


class SequencerLock:
    """Exactly one sequencer at a time: a session advisory lock held on a dedicated connection."""

    # A bigint advisory lock shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
    _HELD = (
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1 AND granted)"
    )

    def __init__(self, dsn: str, key: int | None = None, *, schema: str = "public") -> None:
        self._dsn = dsn
        self.key = sequencer_key(schema) if key is None else key
        self._mutex = threading.Lock()
        self._conn: _Conn | None = None
        self._acquired = False

    def _drop(self) -> None:  # the server releases whatever lock the connection held
        if self._conn is not None:
            self._conn.close()
        self._conn, self._acquired = None, False

    def _held(self) -> bool:
        if not self._acquired:
            return False
        try:
            halves = ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF)
            held = _alive(self._conn) and bool(_one(self._conn, self._HELD, halves))
        except psycopg.Error:
            held = False
        if not held:
            self._drop()
        return held

    def try_acquire(self) -> bool:
        """Take the lock if no other session holds it; True if this instance holds it now."""
        with self._mutex:
            if self._held():
                return True  # session locks stack: taking it again would need two releases
            try:
                self._conn = self._conn if _alive(self._conn) else _connect(self._dsn, _LOCK_DEFAULTS)
                self._acquired = bool(_one(self._conn, "SELECT pg_try_advisory_lock(%s)", (self.key,)))
            except psycopg.Error as exc:
                self._drop()
                raise StorageError(f"PostgreSQL sequencer lock: {str(exc).strip()}") from None
            return self._acquired

    def held(self) -> bool:
        """Whether the connection is alive and its session still holds the lock."""
        with self._mutex:
            return self._held()

    def release(self) -> None:
        """Give the lock up (closing the connection if the server cannot be told)."""
        with self._mutex:
            try:
                if self._acquired and _alive(self._conn):
                    _one(self._conn, "SELECT pg_advisory_unlock(%s)", (self.key,))
                self._acquired = False
            except psycopg.Error:
                self._drop()

    def close(self) -> None:
        """Close the connection, which releases the lock."""
        with self._mutex:
            self._drop()
