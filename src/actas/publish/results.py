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
from actas.storage.layout import DataDir
from actas.storage.log_files import logged_entries


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


def observed_images(log_dir: Path, size: int) -> list[str]:
    """The SHA-256 of every image named by an observation the checkpoint commits to, in log order, once each."""
    seen: dict[str, None] = {}
    for data in logged_entries(log_dir, size):
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
    tallies, conflicts = tally_entries(election, logged_entries(data.log, checkpoint.size))
    return Results(election, checkpoint, checkpoint_bytes, authority, tallies, conflicts)
