"""In-memory LogStore: the fast twin of the SQLite store, for tests and simulations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actas.storage.base import Conflict, NewEntry


class MemoryLogStore:
    """A LogStore holding everything in Python containers."""

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self._hashes: dict[bytes, int] = {}
        self._mesas: dict[tuple[str, str], list[int]] = {}
        self._enrollments: list[tuple[str, str]] = []

    def size(self) -> int:
        """Number of entries stored."""
        return len(self._entries)

    def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries at the next indexes."""
        for entry in entries:
            index = len(self._entries)
            self._entries.append(entry.data)
            self._hashes.setdefault(entry.entry_hash, index)
            if entry.mesa is not None and entry.contest is not None:
                self._mesas.setdefault((entry.mesa, entry.contest), []).append(index)
            if entry.device is not None:
                self._enrollments.extend((entry.device, mesa) for mesa in entry.mesas)

    def read(self, start: int, stop: int) -> list[bytes]:
        """Entries with index in [start, stop)."""
        return self._entries[start:stop]

    def find_hashes(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Map stored entry hashes to their index."""
        return {h: self._hashes[h] for h in hashes if h in self._hashes}

    def mesa_indexes(self, mesa: str, contest: str) -> list[int]:
        """Leaf indexes of the actas of a mesa and contest."""
        return list(self._mesas.get((mesa, contest), []))

    def mesa_indexes_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """Leaf indexes of the actas of many mesas and contests."""
        return {key: list(self._mesas[key]) for key in keys if key in self._mesas}

    def enrollments(self) -> Iterator[tuple[str, str]]:
        """Every (device, mesa) enrollment pair in log order."""
        return iter(list(self._enrollments))

    def conflicts(self) -> list[Conflict]:
        """Mesas with more than one acta."""
        return [
            Conflict(mesa, contest, tuple(indexes))
            for (mesa, contest), indexes in sorted(self._mesas.items())
            if len(indexes) > 1
        ]

    def close(self) -> None:
        """Nothing to release."""
