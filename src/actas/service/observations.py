"""Witness observations: turn read paper copies into signed log entries, with their images kept by hash.

Two ways in, one set of checks (:func:`actas.core.observation.observed_copy` decides what is a readable copy):

* :func:`observe_images` — ``actas observe DATA_DIR IMAGES…``: scan the images, sign an observation for every
  copy read successfully, store each image in the data directory's image store, append the entries to the log.
  It sequences the log itself, so it refuses to run while a service holds the data directory's sequencer lock
  (the service takes the same observations at ``POST /v1/observations``).
* :func:`check_upload` — an observation entry signed by a witness plus the image it was read from, as the
  service receives them: the witness must be one the service accepts, the image must hash to the entry's
  ``image``, be an image or PDF within the pixel limit, and show a QR code carrying exactly the entry's payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actas.core.election import Election
from actas.core.entries import OBSERVATION_FORMATS, ObservationEntry, observation_entry, parse_entry
from actas.core.keys import Signer, Verifier
from actas.errors import EnrollmentError, MalformedError
from actas.log.open import sequencing
from actas.log.validate import Checked, check_one
from actas.scan.batch import ScanRecord, scan
from actas.scan.images import Source, iter_sources, load_pages
from actas.scan.qr_read import read_qr
from actas.storage.blobs import FileBlobStore, image_extension
from actas.storage.layout import DataDir

APPEND_BATCH = 1024


@dataclass
class ObserveSummary:
    """What ``observe_images`` did: per image, the scan status and what became of its observation."""

    scanned: int = 0
    logged: int = 0  # new observation entries
    already: int = 0  # the same observation was in the log before
    not_read: int = 0  # images that gave no usable copy (their scan status says why)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (image, reason) refused by the log's checks
    records: list[ScanRecord] = field(default_factory=list)


def observe_images(
    data: DataDir,
    paths: Sequence[str | Path],
    witness: Signer,
    jobs: int,
    progress: Callable[[int, int | None], None] | None = None,
) -> ObserveSummary:
    """Scan images and log one signed observation per copy read successfully, storing each image by hash."""
    with sequencing(data) as writer:  # refused at once, before any scanning, while a service sequences
        election = Election.from_json(data.election.read_bytes())
        report = scan(paths, election, jobs, progress)
        summary = ObserveSummary(scanned=len(report.records), records=report.records)
        summary.not_read = sum(1 for r in report.records if r.status not in _READ)
        # Every page read ok becomes an observation of the very bytes that were scanned: records are matched to
        # files by SHA-256, never by name (two zip members may share a name; a file may change meanwhile).
        wanted: dict[str, list[ScanRecord]] = {}
        for record in report.records:
            if record.status != "ok" or record.sha256 is None:
                continue
            if record.format not in OBSERVATION_FORMATS or record.format == "qrbu":
                summary.rejected.append((record.path, f"{record.format} copies are not logged as observations yet"))
                continue
            wanted.setdefault(record.sha256, []).append(record)
        blobs = FileBlobStore(data.images)
        entries: list[tuple[str, bytes]] = []
        for source in iter_sources(paths):
            if not isinstance(source, Source):
                continue
            digest = hashlib.sha256(source.data).hexdigest()
            for record in wanted.pop(digest, []):
                assert record.payload is not None and record.format is not None and record.copy is not None
                try:
                    blobs.put(source.data)  # durable before the entry that names it is logged
                except MalformedError as exc:
                    summary.rejected.append((record.path, str(exc)))
                    continue
                entry = observation_entry(
                    election.origin, record.copy.mesa, record.format, digest, record.payload, witness
                )
                entries.append((record.path, entry))
        for records in wanted.values():
            for record in records:
                summary.rejected.append((record.path, "the file changed or went away after it was scanned"))
        for start in range(0, len(entries), APPEND_BATCH):
            part = entries[start : start + APPEND_BATCH]
            for (name, _), result in zip(part, writer.append([e for _, e in part]), strict=True):
                if result.status == "appended":
                    summary.logged += 1
                elif result.status == "duplicate":
                    summary.already += 1
                else:
                    summary.rejected.append((name, str(result.error)))
        return summary


_READ = ("ok", "duplicate-payload", "duplicate-image")  # statuses of images whose copy was read


def check_upload(
    entry_bytes: bytes, image: bytes, election: Election, authority: Verifier, witnesses: frozenset[str]
) -> Checked:
    """Check an uploaded observation and its image (CPU-bound: run it off the event loop)."""
    checked = check_one(entry_bytes, election, authority)
    if checked.entry is None:
        return checked
    if checked.entry.kind != "observation":
        return Checked(None, MalformedError("entry.type: this endpoint takes observation entries"))
    entry = parse_entry(entry_bytes).entry
    assert isinstance(entry, ObservationEntry)
    if entry.witness not in witnesses:
        return Checked(None, EnrollmentError("observation: the witness key is not one this service accepts"))
    if hashlib.sha256(image).hexdigest() != entry.image:
        return Checked(None, MalformedError("image: its SHA-256 differs from the observation's image field"))
    try:
        image_extension(image)
        pages = load_pages(Source("upload", image))  # refuses decompression bombs before decoding
    except MalformedError as exc:
        return Checked(None, exc)
    wanted = set(entry.payload.split("\n"))
    for page in pages:
        if wanted <= set(read_qr(page, accept=wanted.__contains__).texts):
            return checked
    return Checked(None, MalformedError("image: no QR code in it carries the observation's payload"))
