"""``actas mirror-check``: is a copy of a bundle intact — every file the authority published, unaltered, nothing else?

Steps: the MANIFEST.note verifies under the authority key; MANIFEST hashes to what the note says; every file it
lists is present with that SHA-256 (missing and altered files are named); on a directory, every other file is
named as extra (over HTTP a server cannot be asked what else it holds, so extras are not checkable there); and
the log is verified against its checkpoint with the full verifier (the same nine steps as ``actas verify``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from actas.core.keys import Verifier
from actas.core.manifest import MANIFEST, MANIFEST_NOTE, ManifestNote, open_manifest_note, parse_manifest
from actas.core.verify import Report
from actas.errors import ActasError, FetchError
from actas.verifier.readers import DirectoryReader, HttpReader, open_reader
from actas.verifier.runner import verify


@dataclass
class MirrorReport:
    """What a mirror check found; ``ok`` when nothing is missing, altered or extra and the log verifies."""

    location: str
    manifest: ManifestNote | None = None
    manifest_error: str | None = None
    listed: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    extra_checked: bool = True
    log: Report | None = None

    @property
    def ok(self) -> bool:
        """Whether the mirror is an intact copy of the publication."""
        intact = not (self.manifest_error or self.missing or self.altered or self.extra)
        return intact and self.log is not None and self.log.ok


def _sha256(reader: DirectoryReader | HttpReader, path: str) -> str:
    digest = hashlib.sha256()
    if isinstance(reader, DirectoryReader):
        for chunk in reader.read_chunks(path):
            digest.update(chunk)
    else:
        digest.update(reader.read(path))
    return digest.hexdigest()


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def check_mirror(
    location: str, authority: Verifier, workers: int | None = None, progress: Callable[[int, int], None] | None = None
) -> MirrorReport:
    """Check a bundle directory or URL against its signed MANIFEST, then verify its log."""
    reader = open_reader(location)
    report = MirrorReport(location)
    try:
        note = open_manifest_note(reader.read(MANIFEST_NOTE), authority)
        manifest_bytes = reader.read(MANIFEST)
        if hashlib.sha256(manifest_bytes).hexdigest() != note.digest:
            raise FetchError(f"{MANIFEST}: its SHA-256 differs from the one {MANIFEST_NOTE} signs")
        listed = parse_manifest(manifest_bytes)
    except ActasError as exc:
        report.manifest_error = str(exc)
        return report
    report.manifest, report.listed = note, len(listed)
    for done, (path, digest) in enumerate(listed.items(), start=1):
        try:
            if _sha256(reader, path) != digest:
                report.altered.append(path)
        except FetchError:
            report.missing.append(path)
        if progress is not None:
            progress(done, len(listed))
    if isinstance(reader, DirectoryReader):
        report.extra = sorted(_files_under(reader.root) - set(listed) - {MANIFEST, MANIFEST_NOTE})
    else:
        report.extra_checked = False
    report.log = verify(reader, authority, workers)
    if report.log.size != note.size:
        report.manifest_error = (
            f"{MANIFEST_NOTE} is for checkpoint size {note.size}; log/checkpoint is {report.log.size}"
        )
    return report
