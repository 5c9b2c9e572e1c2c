"""Durable file writes for tiles and checkpoints."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_durable(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file, fsync it, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """Like write_durable, for content produced piece by piece."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def sync_directory(path: Path) -> None:
    """Fsync a directory so renames inside it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
