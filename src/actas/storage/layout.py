"""Where a log's data directory keeps its parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    """A log's data directory: definition, keys, entry database and the tiled log itself."""

    root: Path

    @property
    def election(self) -> Path:
        """The canonical election definition."""
        return self.root / "election.json"

    @property
    def authority_key(self) -> Path:
        """The authority's private key (never published)."""
        return self.root / "keys" / "authority.key"

    @property
    def authority_vkey(self) -> Path:
        """The authority's public key."""
        return self.root / "keys" / "authority.vkey"

    @property
    def database(self) -> Path:
        """The SQLite database of entries and indexes."""
        return self.root / "log.db"

    @property
    def log(self) -> Path:
        """The tiled log: checkpoint and tile/ (publishable as is)."""
        return self.root / "log"

    @property
    def checkpoint(self) -> Path:
        """The latest signed checkpoint."""
        return self.log / "checkpoint"

    @property
    def images(self) -> Path:
        """Witness images, content-addressed (publishable as is)."""
        return self.root / "images"
