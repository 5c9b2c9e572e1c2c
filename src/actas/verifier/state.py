"""Where verification states are kept between runs (the verifier's own cache, keyed by checkpoint)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from actas.core.election import Election
from actas.core.note import Checkpoint
from actas.core.verify_state import VerifiedState
from actas.errors import MalformedError


def default_state_dir() -> Path:
    """$XDG_CACHE_HOME/actas/verified, or ~/.cache/actas/verified."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "actas" / "verified"


class StateDir:
    """Saved verification states, one file per (origin, size, root)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, origin: str, size: int, root_hash: bytes) -> Path:
        key = hashlib.sha256(f"{origin}\n{size}\n{root_hash.hex()}".encode()).hexdigest()[:32]
        return self.root / f"{key}.state"

    def load(self, checkpoint: Checkpoint, election: Election) -> VerifiedState | None:
        """The state saved when this checkpoint was verified, if any and if it fits the election."""
        path = self._path(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
        try:
            return VerifiedState.from_bytes(path.read_bytes(), election)
        except (OSError, MalformedError):
            return None

    def save(self, state: VerifiedState) -> Path:
        """Save a state after a successful verification."""
        path = self._path(state.election.origin, state.size, state.root_hash)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(state.to_bytes())
        os.replace(tmp, path)
        return path
