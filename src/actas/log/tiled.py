"""The tiled log: a store's entries as C2SP tiles and entry bundles, and the signed checkpoint over them.

Order of durability (DESIGN.md §6): entries are committed to the store first; tiles are derived from them and
fsynced; only then is a checkpoint over them signed and renamed into place. Opening a tiled log integrates
whatever the store holds beyond the last checkpoint, so a crash between the steps loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from actas.core import merkle
from actas.core.keys import Signer
from actas.core.note import Checkpoint, open_checkpoint, sign_checkpoint
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileBuilder, TileCoord, encode_bundle, tile_path
from actas.errors import FetchError, MalformedError, StorageError
from actas.storage.base import LogStore, NewEntry
from actas.storage.files import sync_directory, write_durable

REBUILD_STEP = 65536


class TiledLog:
    """Appends entries to a store and keeps the tiles and the checkpoint (origin = signer name) in step."""

    def __init__(self, store: LogStore, log_dir: Path, signer: Signer) -> None:
        self.store = store
        self.dir = log_dir
        self.signer = signer
        self._tiles = self._open_tiles()
        if store.size() > self._tiles.size:
            self._integrate(self._tiles.size, store.size())

    @property
    def origin(self) -> str:
        """The log's origin line (the signer's key name)."""
        return self.signer.name

    @property
    def size(self) -> int:
        """Entries covered by the latest checkpoint."""
        return self._tiles.size

    def _open_tiles(self) -> TileBuilder:
        size = 0
        if (self.dir / "checkpoint").exists():
            size = open_checkpoint((self.dir / "checkpoint").read_bytes(), self.signer.verifier).size
        if size > self.store.size():
            raise StorageError(f"checkpoint covers {size} entries but the store holds {self.store.size()}")
        try:
            return TileBuilder(size, self._read_tile)
        except (FetchError, MalformedError, OSError):
            # The right-edge tiles are missing or damaged: derive them again from the entries.
            builder = TileBuilder(0, self._read_tile)
            for start in range(0, size, REBUILD_STEP):
                builder.append([merkle.leaf_hash(e) for e in self.store.read(start, min(size, start + REBUILD_STEP))])
            return builder

    def _read_tile(self, coord: TileCoord) -> bytes:
        try:
            return (self.dir / tile_path(coord)).read_bytes()
        except FileNotFoundError:
            raise FetchError(f"{tile_path(coord)}: missing") from None

    def append(self, entries: Sequence[NewEntry]) -> int:
        """Store entries durably, integrate them and sign a checkpoint; return the first new index."""
        base = self.store.size()
        if entries:
            self.store.append(entries)
            self._integrate(base, base + len(entries), [e.data for e in entries])
        return base

    def rebuild(self) -> int:
        """Rewrite every tile, bundle and the checkpoint from the stored entries; return the size."""
        self._tiles = TileBuilder(0, self._read_tile)
        for start in range(0, self.store.size(), REBUILD_STEP):
            self._integrate(start, min(self.store.size(), start + REBUILD_STEP))
        if self.store.size() == 0:
            self._sign()
        return self._tiles.size

    def _integrate(self, start: int, stop: int, fresh: list[bytes] | None = None) -> None:
        """Write bundles and tiles for entries [start, stop), then sign and publish a checkpoint."""
        if fresh is None:
            fresh = self.store.read(start, stop)
        first_bundle = start // TILE_WIDTH
        head = self.store.read(first_bundle * TILE_WIDTH, start) if start % TILE_WIDTH else []
        entries = head + fresh
        written: set[Path] = set()
        offset = first_bundle * TILE_WIDTH
        for i in range(0, len(entries), TILE_WIDTH):
            chunk = entries[i : i + TILE_WIDTH]
            coord = TileCoord(ENTRIES, (offset + i) // TILE_WIDTH, len(chunk))
            written.add(self._write(coord, encode_bundle(chunk)))
        for coord, data in self._tiles.append([merkle.leaf_hash(e) for e in fresh]):
            written.add(self._write(coord, data))
        for directory in {p.parent for p in written}:
            sync_directory(directory)
        self._sign()

    def _sign(self) -> None:
        checkpoint = Checkpoint(self.origin, self._tiles.size, self._tiles.root())
        write_durable(self.dir / "checkpoint", sign_checkpoint(checkpoint, self.signer))
        sync_directory(self.dir)  # the rename itself must survive a power loss

    def _write(self, coord: TileCoord, data: bytes) -> Path:
        # A tile's path fixes its content, so rewriting one in place after a crash writes the same bytes.
        path = self.dir / tile_path(coord)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return path

    def checkpoint_bytes(self) -> bytes:
        """The latest signed checkpoint."""
        return (self.dir / "checkpoint").read_bytes()
