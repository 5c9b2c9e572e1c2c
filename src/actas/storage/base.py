"""The LogStore protocol: durable entries plus the indexes the sequencer needs.

The store keeps entries and their indexes only; tiles and checkpoints are derived from them by ``actas.log``.
Every backend (memory, SQLite, later PostgreSQL) passes the same test suite (tests/storage).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry ready to store, with the index fields the sequencer extracted from it."""

    data: bytes
    entry_hash: bytes  # SHA-256 of data, for deduplication
    kind: str
    mesa: str | None = None  # acta: its mesa
    contest: str | None = None  # acta: its contest
    device: str | None = None  # enroll: the enrolled key
    mesas: tuple[str, ...] = ()  # enroll: the mesas it may sign for


@dataclass(frozen=True, slots=True)
class Conflict:
    """A mesa and contest with more than one different acta in the log, by leaf index."""

    mesa: str
    contest: str
    indexes: tuple[int, ...]


class LogStore(Protocol):
    """Durable storage of log entries; appends are atomic and durable when they return."""

    def size(self) -> int:
        """Number of entries stored."""
        ...

    def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries at indexes size() … size()+len-1 in one durable transaction."""
        ...

    def read(self, start: int, stop: int) -> list[bytes]:
        """Entries with index in [start, stop)."""
        ...

    def find_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Map each already-stored entry hash among hashes to its index."""
        ...

    def mesa_indexes(self, mesa: str, contest: str) -> list[int]:
        """Leaf indexes of every acta stored for a mesa and contest, ascending."""
        ...

    def mesa_indexes_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """mesa_indexes for many (mesa, contest) keys at once; keys without actas are absent."""
        ...

    def enrollments(self) -> Iterator[tuple[str, str]]:
        """Every (device key, mesa) pair enrolled, in log order."""
        ...

    def conflicts(self) -> list[Conflict]:
        """Every mesa and contest with more than one acta."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...
