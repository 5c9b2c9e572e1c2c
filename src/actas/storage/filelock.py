"""The sequencer lock of a data directory whose store is SQLite: an exclusive flock on a file beside it.

Whatever appends to the log — the service's sequencer, ``actas log append``, ``actas observe`` — takes it first,
so exactly one writer sequences a data directory at a time.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FileLock:
    """The lock of a log whose store is a SQLite file: an exclusive flock on a file beside it.

    Every service process on the data directory tries it; the kernel releases it when the holder dies, however.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        """Held until released (a flock cannot be taken away from a live process)."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
