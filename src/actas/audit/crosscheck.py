"""Cross-check a data directory's log, up to its signed checkpoint, against the witnesses' paper copies.

The entries are read from the tiled log itself (the entry bundles the checkpoint commits to), as the published
results are; the checkpoint is opened with the authority key of the data directory, and the report is bound to
it (:attr:`CrosscheckReport.checkpoint`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from actas.core.crosscheck import CrosscheckReport, crosscheck
from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.note import open_checkpoint
from actas.core.tally import Binding
from actas.storage.layout import DataDir
from actas.storage.log_files import logged_entries


def crosscheck_data_dir(path: Path, contest: str | None = None) -> CrosscheckReport:
    """Cross-check every mesa of a data directory's log at its latest checkpoint (one contest, or all)."""
    data = DataDir(path)
    election = Election.from_json(data.election.read_bytes())
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    checkpoint = open_checkpoint(data.checkpoint.read_bytes(), authority)
    report = crosscheck(election, logged_entries(data.log, checkpoint.size), contest)
    binding = Binding(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
    return dataclasses.replace(report, checkpoint=binding)
