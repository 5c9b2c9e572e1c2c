"""In-memory LogStore: the fast twin of the SQLite store, for tests and simulations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actas.core.receipt import ReceiptBatch
from actas.errors import StorageError
from actas.storage.base import Conflict, NewEntry, Pending, Stored, Submission


class MemoryLogStore:
    """A SubmissionStore holding everything in Python containers."""

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self._hashes: dict[bytes, int] = {}
        self._mesas: dict[tuple[str, str], list[int]] = {}
        self._enrollments: list[tuple[str, str]] = []
        self._submissions: dict[bytes, tuple[int, Submission]] = {}
        self._queue: dict[int, Submission] = {}
        self._batches: list[ReceiptBatch] = []
        self._batch_of: dict[bytes, int | None] = {}
        self._cosignatures: dict[tuple[int, bytes], dict[str, str]] = {}

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

    def submit(self, items: Sequence[Submission], batch: ReceiptBatch | None = None) -> list[Stored]:
        """Store new submissions; say per item when it was first stored and whether this call did."""
        out: list[Stored] = []
        batch_id = len(self._batches) if batch is not None else None
        for item in items:
            known = self._submissions.get(item.entry.entry_hash)
            if known is None:
                seq = len(self._submissions) + 1
                self._submissions[item.entry.entry_hash] = (seq, item)
                self._batch_of[item.entry.entry_hash] = batch_id
                self._queue[seq] = item
                out.append(Stored(item.received, True, batch_id))
            else:
                out.append(Stored(known[1].received, False, self._batch_of[item.entry.entry_hash]))
        if batch is not None and any(s.new for s in out):
            self._batches.append(batch)
        return out

    def receipt_batch(self, batch: int) -> ReceiptBatch:
        """A stored receipt batch by its id."""
        if not 0 <= batch < len(self._batches):
            raise StorageError(f"no receipt batch {batch}")
        return self._batches[batch]

    def submitted(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        """The stored submission of each leaf hash that was ever submitted."""
        return {h: self._submissions[h][1] for h in hashes if h in self._submissions}

    def submitted_for_mesas(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[bytes]]:
        """Leaf hashes of the submissions for each (mesa, contest), in the order stored."""
        wanted = set(keys)
        found: dict[tuple[str, str], list[bytes]] = {}
        for leaf, (_, item) in self._submissions.items():  # dicts keep insertion order: the order stored
            key = (item.entry.mesa or "", item.entry.contest or "")
            if key in wanted:
                found.setdefault(key, []).append(leaf)
        return found

    def pending(self, limit: int) -> list[Pending]:
        """Up to limit unsequenced submissions, oldest first."""
        return [Pending(seq, self._queue[seq]) for seq in sorted(self._queue)[:limit]]

    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        """Queue positions and leaf hashes of up to limit unsequenced submissions, oldest first."""
        return [(p.seq, p.submission.entry.entry_hash) for p in self.pending(limit)]

    def mark_sequenced(self, seqs: Sequence[int]) -> None:
        """Take these submissions off the queue."""
        for seq in seqs:
            self._queue.pop(seq, None)

    def pending_count(self) -> int:
        """How many submissions wait for the sequencer."""
        return len(self._queue)

    def add_cosignature(self, size: int, root: bytes, witness: str, line: str) -> None:
        """Keep a witness's cosignature line for a checkpoint."""
        self._cosignatures.setdefault((size, root), {})[witness] = line

    def cosignatures(self, size: int, root: bytes) -> list[str]:
        """Cosignature lines kept for a checkpoint, by witness name."""
        kept = self._cosignatures.get((size, root), {})
        return [kept[name] for name in sorted(kept)]

    def close(self) -> None:
        """Nothing to release."""
