"""The bundle's MANIFEST: the SHA-256 of every published file, bound to the checkpoint by the authority's signature.

Two files at the bundle root (docs/formats.md §6):

* ``MANIFEST`` — one line per file, ``<sha256 hex>  <path>`` (two spaces: the format ``sha256sum -c`` reads),
  sorted by path (code points), UTF-8, ``/``-separated relative paths without whitespace, ``..`` or empty
  segments. It lists every
  file of the publication except these two.
* ``MANIFEST.note`` — a signed note (C2SP signed-note) by the authority key over three lines:
  ``actas-manifest/v1``, the origin, ``<sha256 hex of MANIFEST> <checkpoint size>``.

A mirror is intact when the note verifies, MANIFEST hashes to what it says, and every listed file hashes to its
line; anything else on the mirror is extra. The MANIFEST itself can be large (a line per image and tile), so
only its hash is signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from actas.core.keys import Signer, Verifier
from actas.core.note import open_note, sign_note
from actas.errors import MalformedError

HEADER = "actas-manifest/v1"
MANIFEST, MANIFEST_NOTE = "MANIFEST", "MANIFEST.note"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_SEGMENT = re.compile(r"[^\s/\x00-\x1f\x7f]+\Z")  # level names may be any printable text but whitespace


def check_path(path: str) -> None:
    """Refuse a path a manifest cannot list unambiguously or safely."""
    segments = path.split("/")
    if not path or any(not _SEGMENT.match(s) or s in (".", "..") for s in segments):
        raise MalformedError(f"manifest path {path!r}: not a relative path of segments without whitespace")


def manifest_bytes(files: Iterable[tuple[str, str]]) -> bytes:
    """The MANIFEST of (path, sha256 hex) pairs, sorted by path; refuses duplicates and bad paths or hashes."""
    listed: dict[str, str] = {}
    for path, digest in files:
        check_path(path)
        if not _HEX64.match(digest):
            raise MalformedError(f"manifest {path}: {digest!r} is not a SHA-256 in lower-case hex")
        if path in listed:
            raise MalformedError(f"manifest {path}: listed twice")
        listed[path] = digest
    return "".join(f"{listed[p]}  {p}\n" for p in sorted(listed)).encode("utf-8")


def parse_manifest(data: bytes) -> dict[str, str]:
    """Path → SHA-256 hex of a MANIFEST, strictly (sorted, unique, exact line format)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"MANIFEST: not UTF-8 at byte {exc.start}") from None
    if text and not text.endswith("\n"):
        raise MalformedError("MANIFEST: must end with a newline")
    listed: dict[str, str] = {}
    previous = ""
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        digest, sep, path = line.partition("  ")
        if not sep or not _HEX64.match(digest):
            raise MalformedError(f"MANIFEST line {number}: expected '<sha256 hex>  <path>'")
        check_path(path)
        if path <= previous:
            raise MalformedError(f"MANIFEST line {number}: {path!r} out of order or repeated")
        listed[path] = digest
        previous = path
    return listed


@dataclass(frozen=True, slots=True)
class ManifestNote:
    """What the authority signed about a MANIFEST."""

    origin: str
    digest: str
    size: int


def sign_manifest(origin: str, manifest_digest: str, size: int, authority: Signer) -> bytes:
    """The MANIFEST.note for a MANIFEST's SHA-256 and the checkpoint size it was published with."""
    if not _HEX64.match(manifest_digest):
        raise MalformedError("manifest digest: not a SHA-256 in lower-case hex")
    return sign_note(f"{HEADER}\n{origin}\n{manifest_digest} {size}\n", [authority])


def open_manifest_note(data: bytes, authority: Verifier) -> ManifestNote:
    """Verify a MANIFEST.note under the authority key and parse it."""
    note = open_note(data, [authority])
    lines = note.text.split("\n")
    if len(lines) != 4 or lines[0] != HEADER or lines[3] != "":
        raise MalformedError(f"MANIFEST.note: expected the lines {HEADER!r}, the origin, '<sha256> <size>'")
    digest, _, size = lines[2].partition(" ")
    if not _HEX64.match(digest) or not size.isascii() or not size.isdigit() or (size != "0" and size[0] == "0"):
        raise MalformedError("MANIFEST.note line 3: expected '<sha256 hex> <checkpoint size>'")
    return ManifestNote(lines[1], digest, int(size))
