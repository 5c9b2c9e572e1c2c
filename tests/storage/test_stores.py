"""The same LogStore suite against every backend: the in-memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from actas.core.keys import Signer
from actas.core.receipt import sign_batch
from actas.errors import StorageError
from actas.storage.base import LogStore, NewEntry, Stored, Submission, SubmissionStore
from actas.storage.memory import MemoryLogStore
from actas.storage.postgres import PostgresLogStore
from actas.storage.sqlite import SCHEMA, SqliteLogStore

# PostgreSQL runs wherever the tests do (here and in CI): an unreachable server fails the tests, never skips them.
POSTGRES_DSN = os.environ.get("ACTAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_schema() -> Iterator[str]:
    """The name of a schema of the test database no other test uses; it is dropped, with its tables, afterwards."""
    name = f"test_{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SubmissionStore]:
    """Each backend in turn."""
    if request.param == "postgres":
        with fresh_schema() as schema:
            postgres = PostgresLogStore(POSTGRES_DSN, schema=schema)
            yield postgres
            postgres.close()
        return
    backend: SubmissionStore = MemoryLogStore() if request.param == "memory" else SqliteLogStore(tmp_path / "log.db")
    yield backend
    backend.close()


def entry(data: bytes, kind: str = "acta", mesa: str | None = "m1", contest: str | None = "c") -> NewEntry:
    """A stored entry with its hash."""
    return NewEntry(data, hashlib.sha256(data).digest(), kind, mesa=mesa, contest=contest)


def test_append_and_read_in_order(store: LogStore) -> None:
    """Entries get consecutive indexes and read back byte for byte."""
    store.append([entry(b"a"), entry(b"b", mesa="m2")])
    store.append([entry(b"c", mesa="m3")])
    assert store.size() == 3
    assert store.read(0, 3) == [b"a", b"b", b"c"]
    assert store.read(1, 2) == [b"b"]


def test_find_hashes(store: LogStore) -> None:
    """Stored hashes map to their index; unknown ones are absent."""
    store.append([entry(b"a"), entry(b"b", mesa="m2")])
    found = store.find_hashes([hashlib.sha256(b"b").digest(), hashlib.sha256(b"zz").digest()])
    assert found == {hashlib.sha256(b"b").digest(): 1}


def test_mesa_index_and_conflicts(store: LogStore) -> None:
    """Two actas of one mesa are both kept and reported as a conflict."""
    store.append([entry(b"a"), entry(b"x", kind="enroll", mesa=None, contest=None), entry(b"b")])
    assert store.mesa_indexes("m1", "c") == [0, 2]
    assert store.mesa_indexes("m1", "other") == []
    conflicts = store.conflicts()
    assert [(c.mesa, c.contest, c.indexes) for c in conflicts] == [("m1", "c", (0, 2))]


def test_enrollments_in_log_order(store: LogStore) -> None:
    """Enrollment pairs come back in log order."""
    store.append(
        [
            NewEntry(b"e1", hashlib.sha256(b"e1").digest(), "enroll", device="k1", mesas=("m1", "m2")),
            NewEntry(b"e2", hashlib.sha256(b"e2").digest(), "enroll", device="k2", mesas=("m3",)),
        ]
    )
    assert list(store.enrollments()) == [("k1", "m1"), ("k1", "m2"), ("k2", "m3")]


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    """A committed append is there after the store is closed and opened again."""
    first = SqliteLogStore(tmp_path / "log.db")
    first.append([entry(b"a"), entry(b"b", mesa="m2")])
    first.close()
    again = SqliteLogStore(tmp_path / "log.db")
    assert again.size() == 2
    assert again.read(0, 2) == [b"a", b"b"]
    again.close()


def test_sqlite_bad_file_is_a_storage_error(tmp_path: Path) -> None:
    """A file that is not a database gives StorageError, not a raw sqlite3 error."""
    path = tmp_path / "log.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        SqliteLogStore(path)


def test_mesa_indexes_many_matches_one_by_one(store: LogStore) -> None:
    """The batched lookup gives what per-mesa lookups give, and leaves out mesas without actas."""
    store.append([entry(b"a"), entry(b"b", mesa="m2"), entry(b"c"), entry(b"d", mesa="m2", contest="d")])
    keys = [("m1", "c"), ("m2", "c"), ("m2", "d"), ("m3", "c"), ("m1", "d")]
    many = store.mesa_indexes_many(keys)
    assert many == {k: store.mesa_indexes(*k) for k in keys if store.mesa_indexes(*k)}
    assert many[("m1", "c")] == [0, 2]


def test_sqlite_errors_after_open_are_storage_errors(tmp_path: Path) -> None:
    """A database broken under a running store gives StorageError, never a raw sqlite3 error."""
    import sqlite3

    store = SqliteLogStore(tmp_path / "log.db")
    store.append([entry(b"a")])
    other = sqlite3.connect(tmp_path / "log.db")
    other.execute("DROP TABLE entries")
    other.execute("DROP TABLE actas")
    other.commit()
    other.close()
    for call in (
        lambda: store.read(0, 1),
        lambda: store.find_hashes([b"x" * 32]),
        lambda: store.mesa_indexes("m1", "c"),
        lambda: store.conflicts(),
    ):
        with pytest.raises(StorageError):
            call()
    store.close()


# -- the submission queue (SubmissionStore) ------------------------------------------------------------------


def submission(data: bytes, received: int = 100, mesa: str | None = "m1", signer: str | None = "dev") -> Submission:
    """An accepted acta submission."""
    return Submission(entry(data, mesa=mesa), received, signer)


def test_submit_is_idempotent_and_keeps_the_first_receipt_time(store: SubmissionStore) -> None:
    """Resubmitting the same leaf stores nothing new and returns the first submission's time."""
    first = store.submit([submission(b"a", received=100), submission(b"b", received=100, mesa="m2")])
    assert first == [Stored(100, True), Stored(100, True)]
    again = store.submit([submission(b"a", received=999), submission(b"c", received=999, mesa="m3")])
    assert again == [Stored(100, False), Stored(999, True)]
    twice = store.submit([submission(b"d", received=5, mesa="m4"), submission(b"d", received=6, mesa="m4")])
    assert twice == [Stored(5, True), Stored(5, False)]
    assert store.submitted([entry(b"a").entry_hash])[entry(b"a").entry_hash].signer == "dev"
    assert store.pending_count() == 4
    assert [p.submission.entry.data for p in store.pending(10)] == [b"a", b"b", b"c", b"d"]


def test_pending_is_ordered_limited_and_drained_by_mark(store: SubmissionStore) -> None:
    """The queue yields oldest first, honours the limit and forgets what is marked sequenced."""
    store.submit([submission(bytes([i]), mesa=f"m{i}") for i in range(5)])
    head = store.pending(2)
    assert [p.submission.entry.data for p in head] == [b"\x00", b"\x01"]
    assert head[0].seq < head[1].seq
    store.mark_sequenced([p.seq for p in head])
    assert [p.submission.entry.data for p in store.pending(10)] == [b"\x02", b"\x03", b"\x04"]
    assert store.pending_count() == 3
    # A sequenced submission is still known, for receipts and proofs.
    assert set(store.submitted([entry(b"\x00").entry_hash, entry(b"zz").entry_hash])) == {entry(b"\x00").entry_hash}


def test_pending_leaves_name_the_queue_pending_reads(store: SubmissionStore) -> None:
    """pending_leaves() gives pending()'s positions and leaf hashes, in its order and limit, and drains with it."""
    store.submit([submission(bytes([i]), mesa=f"m{i}") for i in range(5)])
    assert store.pending_leaves(3) == [(p.seq, p.submission.entry.entry_hash) for p in store.pending(3)]
    assert len(store.pending_leaves(3)) == 3
    store.mark_sequenced([store.pending(1)[0].seq])
    assert store.pending_leaves(10) == [(p.seq, p.submission.entry.entry_hash) for p in store.pending(10)]
    assert [leaf for _, leaf in store.pending_leaves(10)] == [entry(bytes([i])).entry_hash for i in range(1, 5)]


def test_submission_round_trips_every_field(store: SubmissionStore) -> None:
    """What the sequencer reads back is exactly what ingest stored, enrollment fields included."""
    enroll = NewEntry(b"e", entry(b"e").entry_hash, "enroll", device="k1", mesas=("m1", "m2"))
    acta = NewEntry(b"x", entry(b"x").entry_hash, "acta", mesa="m9", contest="c2")
    store.submit([Submission(enroll, 7), Submission(acta, 8, "k1")])
    got = [p.submission for p in store.pending(10)]
    assert got == [Submission(enroll, 7, None), Submission(acta, 8, "k1")]


def test_submitted_for_mesas(store: SubmissionStore) -> None:
    """Every submission of each mesa and contest asked for, in the order stored; others absent."""
    store.submit([submission(b"a"), submission(b"b", mesa="m2"), submission(b"c"), submission(b"d", mesa="m3")])
    found = store.submitted_for_mesas([("m1", "c"), ("m2", "c"), ("m1", "other"), ("m9", "c")])
    assert found == {
        ("m1", "c"): [entry(b"a").entry_hash, entry(b"c").entry_hash],
        ("m2", "c"): [entry(b"b").entry_hash],
    }


def test_cosignatures_one_per_witness_and_checkpoint(store: SubmissionStore) -> None:
    """A witness's later cosignature of the same checkpoint replaces its earlier one; others are kept apart."""
    root, other = b"r" * 32, b"s" * 32
    store.add_cosignature(5, root, "w2", "— w2 AAAA")
    store.add_cosignature(5, root, "w1", "— w1 BBBB")
    store.add_cosignature(5, root, "w1", "— w1 CCCC")
    store.add_cosignature(5, other, "w1", "— w1 DDDD")
    assert store.cosignatures(5, root) == ["— w1 CCCC", "— w2 AAAA"]
    assert store.cosignatures(5, other) == ["— w1 DDDD"]
    assert store.cosignatures(6, root) == []


def test_a_receipt_batch_is_stored_with_its_new_submissions(store: SubmissionStore) -> None:
    """submit() keeps the signed batch with what it stores; a resend later names the batch it was first stored in."""
    signer = Signer.from_seed("results.example.org/stores", b"\x03" * 32)
    a, b, c = submission(b"a", 100), submission(b"b", 100, mesa="m2"), submission(b"c", 200, mesa="m3")
    first = sign_batch([a.entry.entry_hash, b.entry.entry_hash], 100, signer)
    stored = store.submit([a, b, a], first)
    assert [(s.new, s.received) for s in stored] == [(True, 100), (True, 100), (False, 100)]
    batch_id = stored[0].batch
    assert batch_id is not None
    assert {s.batch for s in stored} == {batch_id}
    kept = store.receipt_batch(batch_id)
    assert kept == first
    assert kept.receipt(b.entry.entry_hash).to_bytes() == first.receipt(b.entry.entry_hash).to_bytes()
    # Only resends: nothing new to promise, so no batch is kept, and each names the batch it was first stored in.
    again = store.submit([submission(b"b", 300, mesa="m2")], sign_batch([b.entry.entry_hash], 300, signer))
    assert again == [Stored(100, False, batch_id)]
    later = store.submit([c, submission(b"a", 200)], sign_batch([c.entry.entry_hash, a.entry.entry_hash], 200, signer))
    assert later[0].new
    assert later[0].batch not in (None, batch_id)
    assert later[1] == Stored(100, False, batch_id)
    if not isinstance(store, PostgresLogStore):  # PostgreSQL's identity skips the id of a batch rolled back
        assert later[0].batch == batch_id + 1  # no batch was kept for the call that stored nothing new
    assert store.receipt_batch(later[0].batch or 0).leaves == (c.entry.entry_hash, a.entry.entry_hash)
    with pytest.raises(StorageError):
        store.receipt_batch(10_000)


def test_marking_scattered_positions_leaves_the_others_queued(store: SubmissionStore) -> None:
    """Marking positions with gaps between them takes exactly those off the queue (runs are not over-extended)."""
    store.submit([submission(bytes([i]), mesa=f"m{i}") for i in range(7)])
    queued = store.pending(10)
    store.mark_sequenced([queued[i].seq for i in (0, 2, 3, 6)])
    assert [p.submission.entry.data for p in store.pending(10)] == [b"\x01", b"\x04", b"\x05"]
    store.mark_sequenced([queued[i].seq for i in (1, 2, 4)])  # an already marked one among them
    assert [p.submission.entry.data for p in store.pending(10)] == [b"\x05"]


def test_an_old_sqlite_database_gains_the_batch_column_once_when_another_opener_adds_it_meanwhile(
    tmp_path: Path,
) -> None:
    """Opening a pre-batch database while another process is adding the column waits for it and succeeds."""
    path = tmp_path / "log.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(SCHEMA.replace(",\n    batch INTEGER\n", "\n"))
    old.execute(
        "INSERT INTO submissions (hash, kind, mesa, contest, device, mesas, signer, received, data) "
        "VALUES (?, 'acta', 'm1', 'c', NULL, '', 'dev', 100, ?)",
        (hashlib.sha256(b"old").digest(), b"old"),
    )
    # Another opener is half way: it holds the write lock and has added the column, not yet committed.
    old.execute("BEGIN IMMEDIATE")
    old.execute("ALTER TABLE submissions ADD COLUMN batch INTEGER")
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            SqliteLogStore(path).close()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    opener = threading.Thread(target=open_store)
    opener.start()
    time.sleep(0.5)  # the opener has seen no column and waits for the write lock
    old.execute("COMMIT")
    old.close()
    opener.join()
    assert errors == []
    store = SqliteLogStore(path)
    try:
        assert store.submit([submission(b"old", 200)]) == [Stored(100, False, None)]
    finally:
        store.close()
