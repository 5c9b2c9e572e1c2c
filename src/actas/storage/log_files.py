"""Reading a tiled log's entries back from its directory of entry bundles (the published bytes themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from actas.core.tiles import ENTRIES, decode_bundle, tile_path, tiles_for_size
from actas.errors import StorageError


def logged_entries(log_dir: Path, size: int) -> Iterator[bytes]:
    """The first ``size`` entries of the log, in order, from its entry bundles (whatever the store)."""
    for coord in tiles_for_size(size):
        if coord.level == ENTRIES:
            path = log_dir / tile_path(coord)
            try:
                yield from decode_bundle(path.read_bytes(), coord.width)
            except FileNotFoundError:
                raise StorageError(f"{path}: missing; run `actas log rebuild` first") from None
