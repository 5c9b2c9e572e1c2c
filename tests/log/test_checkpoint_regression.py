"""A sequencer that fell behind never puts a smaller checkpoint back over a larger one another sequencer signed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from actas.core.keys import Signer
from actas.core.note import open_checkpoint
from actas.errors import StorageError
from actas.log.tiled import TiledLog
from actas.storage.base import NewEntry
from actas.storage.memory import MemoryLogStore
from tests.factories import seed

SIGNER = Signer("log.example/checkpoint-regression", seed("checkpoint-regression"))


def raw(data: bytes) -> NewEntry:
    """A stored entry with no index fields."""
    return NewEntry(data, hashlib.sha256(b"\x00" + data).digest(), "raw")


def entries(first: int, stop: int) -> list[NewEntry]:
    """Entries numbered [first, stop)."""
    return [raw(f"entry {n}".encode()) for n in range(first, stop)]


def size_of(log_dir: Path) -> int:
    """The size of the checkpoint in log_dir, its signature checked."""
    return open_checkpoint((log_dir / "checkpoint").read_bytes(), SIGNER.verifier).size


def test_append_refuses_to_replace_a_larger_checkpoint(tmp_path: Path) -> None:
    """Appending to a log another writer has signed further ahead raises StorageError; its checkpoint stays."""
    log_dir = tmp_path / "log"
    behind = TiledLog(MemoryLogStore(), log_dir, SIGNER)
    behind.append(entries(0, 3))
    assert size_of(log_dir) == 3
    ahead_store = MemoryLogStore()
    ahead_store.append(entries(0, 3))
    ahead = TiledLog(ahead_store, log_dir, SIGNER)  # took over: opens at 3, then signs a larger tree
    ahead.append(entries(3, 10))
    larger = (log_dir / "checkpoint").read_bytes()
    assert size_of(log_dir) == 10

    with pytest.raises(StorageError, match="a checkpoint larger than 4 is in place"):
        behind.append(entries(3, 4))
    assert (log_dir / "checkpoint").read_bytes() == larger
    assert TiledLog(ahead_store, log_dir, SIGNER).size == 10  # the larger log still opens over its tiles

    assert behind.rebuild() == 4  # a deliberate repair may still replace it
    assert size_of(log_dir) == 4
