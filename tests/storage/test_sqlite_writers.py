"""SQLite writers queue on an flock beside the database: each write waits its turn there and always gives it back."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

import actas.storage.sqlite as sqlite_module
from actas.errors import StorageError
from actas.storage.base import NewEntry, Stored, Submission
from actas.storage.sqlite import SqliteLogStore
from tests.locks import lock_is_free


def acta(data: bytes, mesa: str = "m1") -> NewEntry:
    """An acta entry with its hash."""
    return NewEntry(data, hashlib.sha256(data).digest(), "acta", mesa=mesa, contest="c")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteLogStore]:
    """A SQLite store, closed afterwards."""
    opened = SqliteLogStore(tmp_path / "log.db")
    yield opened
    opened.close()


def writer_lock(store_path: Path) -> Path:
    """The flock file of a database's writers."""
    return store_path.parent / f"{store_path.name}-writer.lock"


WRITES: dict[str, Callable[[SqliteLogStore], object]] = {
    "submit": lambda s: s.submit([Submission(acta(b"x"), 5, "dev")]),
    "append": lambda s: s.append([acta(b"y", mesa="m2")]),
    "mark_sequenced": lambda s: s.mark_sequenced([1]),
    "add_cosignature": lambda s: s.add_cosignature(1, b"r" * 32, "w", "— w line"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_write_waits_for_the_writers_lock_then_gives_it_back(
    store: SqliteLogStore, tmp_path: Path, write: Callable[[SqliteLogStore], object]
) -> None:
    """While another holds the flock a write blocks (not fails); it runs once the flock is let go, then frees it."""
    path = writer_lock(tmp_path / "log.db")
    holder = os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            write(store)
        except BaseException as exc:
            failed.append(exc)
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert not done.wait(0.3), "the write did not wait for the writers' lock"
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    assert done.wait(10), "the write did not run once the lock was free"
    worker.join()
    assert failed == []
    assert lock_is_free(path)


def test_a_failed_write_rolls_back_and_frees_the_writers_lock(store: SqliteLogStore, tmp_path: Path) -> None:
    """A write that fails inside its transaction stores nothing and leaves the lock free for the next writer."""
    good = Submission(acta(b"good"), 5, "dev")
    unbindable = Submission(acta(b"bad", mesa="m2"), cast(int, object()), "dev")  # fails after good's row
    with pytest.raises(StorageError):
        store.submit([good, unbindable])
    assert store.submitted([good.entry.entry_hash]) == {}
    assert lock_is_free(writer_lock(tmp_path / "log.db"))
    assert store.submit([good]) == [Stored(5, True, None)]


def test_a_store_that_cannot_open_its_writers_lock_says_so(tmp_path: Path) -> None:
    (tmp_path / "log.db-writer.lock").mkdir()  # a directory cannot be opened for writing
    with pytest.raises(StorageError, match="writers' lock"):
        SqliteLogStore(tmp_path / "log.db")


def test_a_write_held_up_past_the_wait_fails_and_stores_nothing(
    store: SqliteLogStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that never lets go (stopped, hung) costs a StorageError after WRITER_WAIT, not a hung request."""
    monkeypatch.setattr(sqlite_module, "WRITER_WAIT", 0.3)
    holder = os.open(writer_lock(tmp_path / "log.db"), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            store.submit([Submission(acta(b"late"), 5, "dev")])
        except BaseException as exc:
            failed.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    try:
        writer.start()
        writer.join(5)  # a write that waits for ever fails the test here instead of hanging it
        assert not writer.is_alive(), "the write still waits for the writers' lock"
    finally:
        os.close(holder)
        writer.join(5)
    (error,) = failed
    assert isinstance(error, StorageError)
    assert "held the database" in str(error)
    assert store.submitted([acta(b"late").entry_hash]) == {}


def test_closing_twice_closes_nothing_else(tmp_path: Path) -> None:
    """A second close() must not close whatever file has taken the lock's descriptor number meanwhile."""
    store = SqliteLogStore(tmp_path / "log.db")
    store.close()
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    try:
        store.close()
        os.fstat(other)  # still open
    finally:
        os.close(other)
