"""Whether an flock is free: the SQLite writers' lock and the sequencer's lock are both checked from outside."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_is_free(path: Path) -> bool:
    """Whether an exclusive flock on path can be taken now (then it is released at once)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
