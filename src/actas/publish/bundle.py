"""Write the published bundle: a directory of plain files that anyone can serve, mirror and verify.

Layout (docs/formats.md §6)::

    election.json                  the canonical election definition
    keys/authority.vkey            the authority's verifier key (C2SP key string + newline)
    log/checkpoint                 the signed checkpoint the bundle is bound to, with the witnesses' cosignatures
    log/tile/…                     every hash tile and entry bundle of that checkpoint's tree
    results/<contest>/national.json, results/<contest>/<level>.json   totals bound to that checkpoint
    images/<sha256>.<ext>          the witness images the log's observations name, by the SHA-256 of their bytes
    MANIFEST, MANIFEST.note        every file's SHA-256, and the authority's signature over it (core/manifest.py)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from actas.core.keys import Signer
from actas.core.manifest import MANIFEST, MANIFEST_NOTE, manifest_bytes, sign_manifest
from actas.core.note import add_signatures
from actas.core.tiles import tile_path, tiles_for_size
from actas.errors import StorageError
from actas.publish.results import Results, compute_results, observed_images
from actas.publish.site import Progress, SiteWriter, file_sha256, write_site
from actas.publish.site_data import attach_crosscheck, collect_site_data
from actas.storage.blobs import FileBlobStore
from actas.storage.files import write_durable
from actas.storage.layout import DataDir
from actas.storage.log_files import logged_entries
from actas.storage.sqlite import SqliteLogStore


@dataclass(frozen=True)
class PublishSummary:
    """What a publication wrote."""

    out: Path
    size: int
    files: int
    total_bytes: int
    written: int  # files written by this run (the others already held the same bytes)
    results: Results


def publish_bundle(data: DataDir, out: Path, site: bool = True, progress: Progress | None = None) -> PublishSummary:
    """Write the bundle (and, unless ``site`` is False, the results site) of a data directory's latest checkpoint."""
    results = compute_results(data)
    checkpoint = results.checkpoint
    out.mkdir(parents=True, exist_ok=True)
    writer = SiteWriter.open(out)
    writer.put("election.json", results.election.to_canonical())
    writer.put("keys/authority.vkey", (str(results.authority) + "\n").encode())
    for coord in tiles_for_size(checkpoint.size):
        source = data.log / tile_path(coord)
        if not source.exists():
            raise StorageError(f"{source}: missing; run `actas log rebuild` first")
        _copy_immutable(writer, source, "log/" + tile_path(coord))
    images: dict[str, str] = {}
    for digest in observed_images(data.log, checkpoint.size):
        source = FileBlobStore(data.images).path(digest)  # NotFoundError: an observation without its image
        images[digest] = f"images/{source.name}"
        _copy_immutable(writer, source, images[digest])
    for relative, chunks in results.iter_files():
        writer.put(relative, b"".join(chunks))
    checkpoint_note = _with_cosignatures(data, results)
    if site:
        site_data = collect_site_data(results, logged_entries(data.log, checkpoint.size))
        site_data.checkpoint_note = checkpoint_note
        if site_data.observed:
            attach_crosscheck(site_data, logged_entries(data.log, checkpoint.size))
        write_site(site_data, writer, images, progress)
    # The checkpoint goes last: a reader that sees it finds every file it commits to.
    writer.put("log/checkpoint", checkpoint_note)
    _write_manifest(data, out, writer, results)
    _remove_stale(out, writer)
    total = sum(writer.sizes.values())
    return PublishSummary(out, checkpoint.size, len(writer.hashes), total, writer.written, results)


def _copy_immutable(writer: SiteWriter, source: Path, relative: str) -> None:
    """Copy a file whose path fixes its content (a tile, an image named by its hash) unless it is there intact."""
    target = writer.out / relative
    known = writer.previous.get(relative)
    if known is not None and target.exists() and file_sha256(target) == known:  # altered copies are replaced
        writer.keep(relative, known, target.stat().st_size)
        return
    writer.put(relative, source.read_bytes())


def _write_manifest(data: DataDir, out: Path, writer: SiteWriter, results: Results) -> None:
    """MANIFEST (every file's SHA-256) and MANIFEST.note (its hash, signed by the authority), written last."""
    manifest = manifest_bytes(sorted(writer.hashes.items()))
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    note = sign_manifest(
        results.election.origin, hashlib.sha256(manifest).hexdigest(), results.checkpoint.size, authority
    )
    write_durable(out / MANIFEST, manifest)
    write_durable(out / MANIFEST_NOTE, note)


def _remove_stale(out: Path, writer: SiteWriter) -> None:
    """Delete what the previous build listed and this one does not (an earlier checkpoint's partial tiles)."""
    for relative in writer.previous.keys() - writer.hashes.keys():
        (out / relative).unlink(missing_ok=True)


def _with_cosignatures(data: DataDir, results: Results) -> bytes:
    """The checkpoint note with the cosignature lines the service collected for it (verified when received)."""
    store = SqliteLogStore(data.database)
    try:
        lines = store.cosignatures(results.checkpoint.size, results.checkpoint.root_hash)
    finally:
        store.close()
    return add_signatures(results.checkpoint_bytes, lines) if lines else results.checkpoint_bytes
