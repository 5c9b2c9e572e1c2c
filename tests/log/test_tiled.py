"""The tiled log writes C2SP tiles, bundles and checkpoints byte-identical to the golden log, and recovers."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from actas.core.keys import Signer
from actas.core.tiles import TileCoord, decode_bundle
from actas.errors import ActasError
from actas.log.tiled import TiledLog
from actas.storage.base import NewEntry
from actas.storage.memory import MemoryLogStore
from actas.storage.sqlite import SqliteLogStore


def golden_signer(vectors: Path) -> Signer:
    """The golden log's private key from keys.txt."""
    for line in (vectors / "tlog-tiles-golden" / "keys.txt").read_text().split("\n"):
        if line.startswith("private "):
            return Signer.parse(line.split(" ", 1)[1].strip())
    raise AssertionError("no private key in keys.txt")


def golden_entries(vectors: Path) -> list[bytes]:
    """The 15 golden entries, read from the last entry bundle."""
    return decode_bundle((vectors / "tlog-tiles-golden/log/tile/entries/000.p/15").read_bytes())


def raw(data: bytes) -> NewEntry:
    """A stored entry with no index fields."""
    return NewEntry(data, hashlib.sha256(data).digest(), "raw")


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below root by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writer_reproduces_golden_log_byte_for_byte(vectors: Path, tmp_path: Path) -> None:
    """Fed the 15 golden entries one at a time, the writer writes the golden tiles, bundles and checkpoints."""
    golden = vectors / "tlog-tiles-golden" / "log"
    log = TiledLog(MemoryLogStore(), tmp_path, golden_signer(vectors))
    for n, entry in enumerate(golden_entries(vectors), 1):
        log.append([raw(entry)])
        assert log.checkpoint_bytes() == (golden / f"checkpoint.{n}").read_bytes(), f"checkpoint.{n}"
    ours = files_under(tmp_path / "tile")
    theirs = files_under(golden / "tile")
    assert ours == theirs


@pytest.mark.parametrize("split", [[15], [1, 14], [7, 8], [3, 3, 3, 3, 3]])
def test_batch_split_gives_same_final_tiles(vectors: Path, tmp_path: Path, split: list[int]) -> None:
    """However the entries are batched, the final tiles and checkpoint are the golden ones."""
    golden = vectors / "tlog-tiles-golden" / "log"
    entries = golden_entries(vectors)
    log = TiledLog(MemoryLogStore(), tmp_path, golden_signer(vectors))
    start = 0
    for size in split:
        log.append([raw(e) for e in entries[start : start + size]])
        start += size
    assert log.checkpoint_bytes() == (golden / "checkpoint.15").read_bytes()
    for name in ("tile/0/000.p/15", "tile/entries/000.p/15"):
        assert (tmp_path / name).read_bytes() == (golden / name).read_bytes()


def test_reopen_integrates_entries_stored_after_the_last_checkpoint(vectors: Path, tmp_path: Path) -> None:
    """A crash after the store commit but before tiles: reopening finishes the integration."""
    signer = golden_signer(vectors)
    entries = golden_entries(vectors)
    store = SqliteLogStore(tmp_path / "log.db")
    log = TiledLog(store, tmp_path / "log", signer)
    log.append([raw(e) for e in entries[:5]])
    store.append([raw(e) for e in entries[5:]])  # committed, never integrated: the "crash"
    store.close()
    reopened = TiledLog(SqliteLogStore(tmp_path / "log.db"), tmp_path / "log", signer)
    assert reopened.size == 15
    golden = vectors / "tlog-tiles-golden" / "log"
    assert reopened.checkpoint_bytes() == (golden / "checkpoint.15").read_bytes()


def test_rebuild_restores_deleted_tiles(vectors: Path, tmp_path: Path) -> None:
    """Tiles are derived data: deleting them and rebuilding gives the same bytes."""
    log = TiledLog(MemoryLogStore(), tmp_path, golden_signer(vectors))
    log.append([raw(e) for e in golden_entries(vectors)])
    before = files_under(tmp_path)
    shutil.rmtree(tmp_path / "tile")
    (tmp_path / "checkpoint").unlink()
    log.rebuild()
    after = files_under(tmp_path)
    assert after["checkpoint"] == before["checkpoint"]
    assert after["tile/0/000.p/15"] == before["tile/0/000.p/15"]
    assert after["tile/entries/000.p/15"] == before["tile/entries/000.p/15"]


def test_reopen_with_damaged_edge_tile_rebuilds_it(vectors: Path, tmp_path: Path) -> None:
    """A missing right-edge tile is derived again from the entries when the log is opened."""
    signer = golden_signer(vectors)
    entries = golden_entries(vectors)
    store = SqliteLogStore(tmp_path / "log.db")
    TiledLog(store, tmp_path / "log", signer).append([raw(e) for e in entries[:9]])
    (tmp_path / "log/tile/0/000.p/9").unlink()
    log = TiledLog(store, tmp_path / "log", signer)
    log.append([raw(e) for e in entries[9:]])
    golden = vectors / "tlog-tiles-golden" / "log"
    assert log.checkpoint_bytes() == (golden / "checkpoint.15").read_bytes()
    assert (tmp_path / "log/tile/0/000.p/15").read_bytes() == (golden / "tile/0/000.p/15").read_bytes()


def test_failed_tile_write_keeps_the_last_checkpoint_and_is_retried(
    vectors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error while writing tiles loses nothing: the checkpoint stays put and the next append catches up."""
    import errno

    from actas.errors import StorageError

    signer = golden_signer(vectors)
    entries = golden_entries(vectors)
    log = TiledLog(MemoryLogStore(), tmp_path, signer)
    log.append([raw(e) for e in entries[:4]])
    before = log.checkpoint_bytes()
    real_write = TiledLog._write

    def failing(self: TiledLog, coord: object, data: bytes) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TiledLog, "_write", failing)
    with pytest.raises(StorageError, match="No space left"):
        log.append([raw(e) for e in entries[4:9]])
    assert log.checkpoint_bytes() == before
    assert log.size == 4
    monkeypatch.setattr(TiledLog, "_write", real_write)
    log.append([raw(e) for e in entries[9:]])
    golden = vectors / "tlog-tiles-golden" / "log"
    assert log.checkpoint_bytes() == (golden / "checkpoint.15").read_bytes()
    for name in ("tile/0/000.p/15", "tile/entries/000.p/15"):
        assert (tmp_path / name).read_bytes() == (golden / name).read_bytes()


def test_rebuild_repairs_a_damaged_checkpoint(vectors: Path, tmp_path: Path) -> None:
    """A truncated checkpoint cannot be opened, but rebuild derives everything again from the entries."""
    signer = golden_signer(vectors)
    store = SqliteLogStore(tmp_path / "log.db")
    TiledLog(store, tmp_path / "log", signer).append([raw(e) for e in golden_entries(vectors)])
    (tmp_path / "log/checkpoint").write_bytes(b"truncat")
    with pytest.raises(ActasError):
        TiledLog(store, tmp_path / "log", signer)
    assert TiledLog.for_rebuild(store, tmp_path / "log", signer).rebuild() == 15
    golden = vectors / "tlog-tiles-golden" / "log"
    assert (tmp_path / "log/checkpoint").read_bytes() == (golden / "checkpoint.15").read_bytes()


def test_open_with_an_edge_tile_that_disagrees_with_the_checkpoint(vectors: Path, tmp_path: Path) -> None:
    """A damaged right-edge tile is noticed against the checkpoint root and derived again from the entries."""
    signer = golden_signer(vectors)
    entries = golden_entries(vectors)
    store = SqliteLogStore(tmp_path / "log.db")
    TiledLog(store, tmp_path / "log", signer).append([raw(e) for e in entries[:9]])
    tile = tmp_path / "log/tile/0/000.p/9"
    tile.write_bytes(bytes(len(tile.read_bytes())))
    log = TiledLog(store, tmp_path / "log", signer)
    log.append([raw(e) for e in entries[9:]])
    golden = vectors / "tlog-tiles-golden" / "log"
    assert log.checkpoint_bytes() == (golden / "checkpoint.15").read_bytes()


def test_full_tile_lost_to_a_failed_write_is_written_later(
    vectors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while completing a full tile leaves no hole: the retry writes that tile too."""
    import errno

    from actas.errors import StorageError

    signer = golden_signer(vectors)
    entries = [b"entry %d" % i for i in range(300)]
    log = TiledLog(MemoryLogStore(), tmp_path / "failing", signer)
    log.append([raw(e) for e in entries[:250]])
    real_write = TiledLog._write

    def failing_hash_tiles(self: TiledLog, coord: TileCoord, data: bytes) -> Path:
        if coord.level < 0:  # entry bundles are written; the hash tiles after them fail
            return real_write(self, coord, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TiledLog, "_write", failing_hash_tiles)
    with pytest.raises(StorageError):
        log.append([raw(e) for e in entries[250:260]])  # would complete tile 0 and entry bundle 0
    monkeypatch.setattr(TiledLog, "_write", real_write)
    log.append([raw(e) for e in entries[260:]])
    clean = TiledLog(MemoryLogStore(), tmp_path / "clean", signer)
    clean.append([raw(e) for e in entries])
    assert log.checkpoint_bytes() == clean.checkpoint_bytes()
    for name in ("tile/0/000", "tile/entries/000", "tile/0/001.p/44", "tile/entries/001.p/44"):
        assert (tmp_path / "failing" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
