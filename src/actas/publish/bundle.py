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
import shutil
from dataclasses import dataclass
from pathlib import Path

from actas.core.keys import Signer
from actas.core.manifest import MANIFEST, MANIFEST_NOTE, manifest_bytes, sign_manifest
from actas.core.note import add_signatures
from actas.core.tiles import tile_path, tiles_for_size
from actas.errors import StorageError
from actas.publish.results import Results, compute_results, observed_images
from actas.storage.blobs import FileBlobStore
from actas.storage.files import write_chunks, write_durable
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore


@dataclass(frozen=True)
class PublishSummary:
    """What a publication wrote."""

    out: Path
    size: int
    files: int
    total_bytes: int
    results: Results


def publish_bundle(data: DataDir, out: Path) -> PublishSummary:
    """Write the bundle of a data directory's latest checkpoint into ``out``."""
    results = compute_results(data)
    checkpoint = results.checkpoint
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(relative: str, content: bytes) -> None:
        write_durable(out / relative, content)
        written.append(out / relative)

    put("election.json", results.election.to_canonical())
    put("keys/authority.vkey", (str(results.authority) + "\n").encode())
    for coord in tiles_for_size(checkpoint.size):
        source = data.log / tile_path(coord)
        if not source.exists():
            raise StorageError(f"{source}: missing; run `actas log rebuild` first")
        target = out / "log" / tile_path(coord)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    for digest in observed_images(data.log, checkpoint.size):
        source = FileBlobStore(data.images).path(digest)  # NotFoundError: an observation without its image
        target = out / "images" / source.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        written.append(target)
    for relative, chunks in results.iter_files():
        write_chunks(out / relative, chunks)
        written.append(out / relative)
    # The checkpoint goes last: a reader that sees it finds every file it commits to.
    put("log/checkpoint", _with_cosignatures(data, results))
    _write_manifest(data, out, written, results)
    total = sum(p.stat().st_size for p in written)
    return PublishSummary(out, checkpoint.size, len(written), total, results)


def _write_manifest(data: DataDir, out: Path, written: list[Path], results: Results) -> None:
    """MANIFEST (every file's SHA-256) and MANIFEST.note (its hash, signed by the authority), written last."""
    listed = []
    for path in written:
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        listed.append((path.relative_to(out).as_posix(), hasher.hexdigest()))
    manifest = manifest_bytes(listed)
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    note = sign_manifest(
        results.election.origin, hashlib.sha256(manifest).hexdigest(), results.checkpoint.size, authority
    )
    write_durable(out / MANIFEST, manifest)
    write_durable(out / MANIFEST_NOTE, note)
    written += [out / MANIFEST, out / MANIFEST_NOTE]


def _with_cosignatures(data: DataDir, results: Results) -> bytes:
    """The checkpoint note with the cosignature lines the service collected for it (verified when received)."""
    store = SqliteLogStore(data.database)
    try:
        lines = store.cosignatures(results.checkpoint.size, results.checkpoint.root_hash)
    finally:
        store.close()
    return add_signatures(results.checkpoint_bytes, lines) if lines else results.checkpoint_bytes
