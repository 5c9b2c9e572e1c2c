"""Durable file writes for tiles and checkpoints."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


def write_durable(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file, fsync it, then rename into place."""
    write_chunks(path, (data,))


def write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """Write content produced piece by piece through a temporary file, fsync it, then rename into place."""
    with replacing(path) as handle:
        for chunk in chunks:
            handle.write(chunk)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``path``, fsynced and renamed onto it (mode 644) only if the block succeeds.

    The temporary file's name is unique, so two writers of one path (a sequencer that lost its lock and the
    one that took over) never write into each other's file: the last rename wins with a whole file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a published file is world-readable
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sync_directory(path: Path) -> None:
    """Fsync a directory so renames inside it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
