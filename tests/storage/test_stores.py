"""The same LogStore suite against every backend: the in-memory twin and SQLite."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from actas.errors import StorageError
from actas.storage.base import LogStore, NewEntry
from actas.storage.memory import MemoryLogStore
from actas.storage.sqlite import SqliteLogStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    """Each backend in turn."""
    backend: LogStore = MemoryLogStore() if request.param == "memory" else SqliteLogStore(tmp_path / "log.db")
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
