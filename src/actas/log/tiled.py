"""The tiled log: a store's entries as C2SP tiles and entry bundles, and the signed checkpoint over them.

Order of durability (DESIGN.md §6): entries are committed to the store first; tiles are derived from them and
written atomically (temporary file, fsync, rename); only then is a checkpoint over them signed and renamed
into place. Opening a tiled log integrates whatever the store holds beyond the last checkpoint, so a crash
between the steps loses nothing; a failed tile write leaves the last checkpoint in force and is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actas.core import merkle
from actas.core.keys import Signer
from actas.core.note import Checkpoint, open_checkpoint, parse_note, sign_checkpoint
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileBuilder, TileCoord, encode_bundle, tile_path
from actas.errors import ActasError, FetchError, StorageError
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
        self._catch_up()

    @classmethod
    def for_rebuild(cls, store: LogStore, log_dir: Path, signer: Signer) -> TiledLog:
        """A tiled log that ignores whatever tiles and checkpoint exist (they may be damaged): call rebuild()."""
        log = cls.__new__(cls)
        log.store, log.dir, log.signer = store, log_dir, signer
        log._tiles = TileBuilder(0)
        return log

    @property
    def origin(self) -> str:
        """The log's origin line (the signer's key name)."""
        return self.signer.name

    @property
    def size(self) -> int:
        """Entries covered by the latest checkpoint."""
        return self._tiles.size

    def _open_tiles(self) -> TileBuilder:
        """The tile builder at the last checkpoint, from its right-edge tiles or, failing that, the entries."""
        size, root = 0, merkle.EMPTY_ROOT
        if (self.dir / "checkpoint").exists():
            checkpoint = open_checkpoint((self.dir / "checkpoint").read_bytes(), self.signer.verifier)
            size, root = checkpoint.size, checkpoint.root_hash
        if size > self.store.size():
            raise StorageError(f"checkpoint covers {size} entries but the store holds {self.store.size()}")
        try:
            builder = TileBuilder(size, self._read_tile)
            if builder.root() == root:
                return builder
        except (ActasError, OSError):
            pass
        # The right-edge tiles are missing, damaged or disagree with the checkpoint: derive them again.
        builder = TileBuilder(0)
        for start in range(0, size, REBUILD_STEP):
            builder.append([merkle.leaf_hash(e) for e in self.store.read(start, min(size, start + REBUILD_STEP))])
        if builder.root() != root:
            raise StorageError(f"the signed checkpoint at size {size} does not match the stored entries")
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
        self._catch_up([e.data for e in entries] if self._tiles.size == base else None)
        return base

    def _catch_up(self, fresh: list[bytes] | None = None) -> None:
        """Integrate every stored entry the last checkpoint does not cover, then sign a new checkpoint."""
        start, stop = self._tiles.size, self.store.size()
        if start == stop:
            return
        try:
            self._integrate(start, stop, fresh)
            self._sign()
        except OSError as exc:
            # The entries are stored; the tiles and checkpoint stay at the last signed size until a retry.
            self._tiles = self._open_tiles()
            raise StorageError(f"cannot write the tiled log in {self.dir}: {exc.strerror or exc}") from None

    def rebuild(self) -> int:
        """Rewrite every tile, bundle and the checkpoint from the stored entries; return the size."""
        self._tiles = TileBuilder(0)
        total = self.store.size()
        try:
            for start in range(0, total, REBUILD_STEP):
                self._integrate(start, min(total, start + REBUILD_STEP))
            self._sign(repair=True)  # once, at the end: no smaller checkpoint is published on the way
        except OSError as exc:
            raise StorageError(f"cannot rebuild the tiled log in {self.dir}: {exc.strerror or exc}") from None
        return self._tiles.size

    def _integrate(self, start: int, stop: int, fresh: list[bytes] | None = None) -> None:
        """Write the bundles and tiles for entries [start, stop); the checkpoint is signed separately."""
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
            sync_directory(directory.parent)  # a new tile directory's own entry

    def _sign(self, repair: bool = False) -> None:
        checkpoint = Checkpoint(self.origin, self._tiles.size, self._tiles.root())
        if not repair and self._published_size() > checkpoint.size:
            # Another sequencer took over and signed a larger tree: never put a smaller one back.
            raise StorageError(f"a checkpoint larger than {checkpoint.size} is in place: another sequencer is ahead")
        write_durable(self.dir / "checkpoint", sign_checkpoint(checkpoint, self.signer))
        sync_directory(self.dir)  # the rename itself must survive a power loss

    def _published_size(self) -> int:
        """The size of the checkpoint in place (0 if none or unreadable); its signature is checked on open."""
        try:
            return Checkpoint.from_text(parse_note((self.dir / "checkpoint").read_bytes()).text).size
        except (FileNotFoundError, ActasError):
            return 0

    def _write(self, coord: TileCoord, data: bytes) -> Path:
        """Write a tile atomically: a crash leaves the old file or the new one, never a torn one."""
        path = self.dir / tile_path(coord)
        write_durable(path, data)
        return path

    def checkpoint_bytes(self) -> bytes:
        """The latest signed checkpoint."""
        return (self.dir / "checkpoint").read_bytes()
