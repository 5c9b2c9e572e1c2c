"""Totals of a data directory's log at its latest checkpoint, as published results files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from actas.core.election import Election
from actas.core.entries import ObservationEntry, parse_entry
from actas.core.keys import Verifier
from actas.core.note import Checkpoint, open_checkpoint
from actas.core.tally import Binding, ConflictRecord, ResultsFile, Tally, iter_results_files, tally_entries
from actas.core.tiles import ENTRIES, decode_bundle, tile_path, tiles_for_size
from actas.errors import StorageError
from actas.storage.layout import DataDir


@dataclass(frozen=True)
class Results:
    """Totals bound to a checkpoint, and the files that publish them."""

    election: Election
    checkpoint: Checkpoint
    checkpoint_bytes: bytes
    authority: Verifier
    tallies: list[Tally]
    conflicts: list[ConflictRecord]

    @property
    def binding(self) -> Binding:
        """The checkpoint the totals are bound to."""
        return Binding(self.checkpoint.origin, self.checkpoint.size, self.checkpoint.root_hash)

    def iter_files(self) -> Iterator[ResultsFile]:
        """The results files as (path, chunks), produced area by area."""
        return iter_results_files(self.tallies, self.binding, self.conflicts)

    @property
    def files(self) -> dict[str, bytes]:
        """The results files whole (fine for display; large elections should use iter_files)."""
        return {path: b"".join(chunks) for path, chunks in self.iter_files()}


def _entries(log_dir: Path, size: int) -> Iterator[bytes]:
    """The entries the checkpoint commits to, read from the entry bundles (the log itself, whatever the store)."""
    for coord in tiles_for_size(size):
        if coord.level == ENTRIES:
            path = log_dir / tile_path(coord)
            try:
                yield from decode_bundle(path.read_bytes(), coord.width)
            except FileNotFoundError:
                raise StorageError(f"{path}: missing; run `actas log rebuild` first") from None


def observed_images(log_dir: Path, size: int) -> list[str]:
    """The SHA-256 of every image named by an observation the checkpoint commits to, in log order, once each."""
    seen: dict[str, None] = {}
    for data in _entries(log_dir, size):
        if b'"type":"observation"' in data:  # skip parsing the (many) actas
            entry = parse_entry(data).entry
            if isinstance(entry, ObservationEntry):
                seen.setdefault(entry.image)
    return list(seen)


def compute_results(data: DataDir) -> Results:
    """Tally every acta up to the latest checkpoint of a data directory."""
    election = Election.from_json(data.election.read_bytes())
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    checkpoint_bytes = data.checkpoint.read_bytes()
    checkpoint = open_checkpoint(checkpoint_bytes, authority)
    tallies, conflicts = tally_entries(election, _entries(data.log, checkpoint.size))
    return Results(election, checkpoint, checkpoint_bytes, authority, tallies, conflicts)
