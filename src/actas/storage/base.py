"""The LogStore protocol: durable entries plus the indexes the sequencer needs.

The store keeps entries and their indexes only; tiles and checkpoints are derived from them by ``actas.log``.
A SubmissionStore adds the queue between the ingest processes, which accept and durably store submissions, and
the one sequencer that appends them to the log; and the witnesses' cosignatures. Every backend (memory, SQLite,
PostgreSQL) passes the same test suite (tests/storage).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from actas.core.receipt import ReceiptBatch


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry ready to store, with the index fields the sequencer extracted from it."""

    data: bytes
    entry_hash: bytes  # the RFC 6962 leaf hash, SHA-256(0x00 ‖ data): deduplication and proof lookups
    kind: str
    mesa: str | None = None  # acta: its mesa
    contest: str | None = None  # acta: its contest
    device: str | None = None  # enroll: the enrolled key
    mesas: tuple[str, ...] = ()  # enroll: the mesas it may sign for

    def __reduce__(self) -> tuple[type[NewEntry], tuple[object, ...]]:
        # Pickled by constructor arguments: dataclasses' generic state copying is several times slower, and
        # batches send every checked entry back from the verification workers.
        return (NewEntry, (self.data, self.entry_hash, self.kind, self.mesa, self.contest, self.device, self.mesas))


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


@dataclass(frozen=True, slots=True)
class Submission:
    """An entry an ingest process checked and accepted: what it stores before answering with a receipt."""

    entry: NewEntry
    received: int  # Unix seconds, as stated in the receipt; a resubmission keeps the first value
    signer: str | None = None  # acta: the device key that signed it, for the sequencer's enrollment check


@dataclass(frozen=True, slots=True)
class Stored:
    """What submit() did with one item: when it was first stored, whether this call stored it, and in which batch."""

    received: int
    new: bool
    batch: int | None = None  # the id of the receipt batch it was first stored with (None: stored without one)


@dataclass(frozen=True, slots=True)
class Pending:
    """A stored submission the sequencer has not yet taken into the log, with its queue position."""

    seq: int
    submission: Submission


class SubmissionStore(LogStore, Protocol):
    """A LogStore that also queues accepted submissions for the sequencer and keeps cosignatures."""

    def submit(self, items: Sequence[Submission], batch: ReceiptBatch | None = None) -> list[Stored]:
        """Durably store submissions not stored before (by leaf hash, in order); say per item when it was stored.

        An item whose leaf was stored earlier, or earlier in the same call, is not new and keeps the first time.
        With a batch (whose leaves include every new item's), the batch is stored too, in the same transaction,
        when any item is new, and new items are recorded as stored with it.
        """
        ...

    def receipt_batch(self, batch: int) -> ReceiptBatch:
        """A stored receipt batch by its id (StorageError if there is none)."""
        ...

    def submitted(self, hashes: Sequence[bytes]) -> dict[bytes, Submission]:
        """The stored submission for each leaf hash among hashes that was ever submitted."""
        ...

    def submitted_for_mesas(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[bytes]]:
        """Leaf hashes of the submissions for each (mesa, contest) key, in the order stored; others absent."""
        ...

    def pending(self, limit: int) -> list[Pending]:
        """Up to limit submissions not yet sequenced, in the order they were stored."""
        ...

    def pending_leaves(self, limit: int) -> list[tuple[int, bytes]]:
        """pending() without the payloads: (queue position, leaf hash) pairs, for a sequencer that holds them."""
        ...

    def mark_sequenced(self, seqs: Sequence[int]) -> None:
        """Record that these queued submissions are in the log (or were found to be already)."""
        ...

    def pending_count(self) -> int:
        """How many submissions wait for the sequencer."""
        ...

    def add_cosignature(self, size: int, root: bytes, witness: str, line: str) -> None:
        """Keep a witness's cosignature line of the checkpoint (size, root); a later one from it replaces it."""
        ...

    def cosignatures(self, size: int, root: bytes) -> list[str]:
        """The cosignature lines kept for the checkpoint (size, root), ordered by witness name."""
        ...
