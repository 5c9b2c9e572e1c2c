"""Content-addressed store of witness images: each file is named by the SHA-256 of its bytes.

Layout: ``<root>/<sha256 hex>.<ext>``, the extension taken from the file's magic bytes (``jpg``, ``png``, ``tif``,
``pdf``, ``heic``) so that any static web server sends a usable media type. The same names are used in the data
directory and in the published bundle; an observation entry names its image by the hash alone.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from actas.errors import MalformedError, NotFoundError
from actas.storage.files import write_durable

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
EXTENSIONS = ("jpg", "png", "tif", "pdf", "heic")
MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "pdf": "application/pdf",
    "heic": "image/heic",
}


def image_extension(data: bytes) -> str:
    """The extension for an image or PDF file, by its magic bytes; MalformedError for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF and BigTIFF
        return "tif"
    if data.startswith(b"%PDF-"):
        return "pdf"
    brands = (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")
    if data[4:8] == b"ftyp" and data[8:12] in brands:
        return "heic"
    raise MalformedError("image: not a JPEG, PNG, TIFF, PDF or HEIC file (by its first bytes)")


class FileBlobStore:
    """Images in one directory, named ``<sha256>.<ext>``; writes are durable and idempotent."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> str:
        """Store an image (once) and return its SHA-256 in lower-case hex."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / f"{digest}.{image_extension(data)}"
        if not path.exists():
            write_durable(path, data)
        return digest

    def path(self, digest: str) -> Path:
        """The file holding the image with this SHA-256; NotFoundError when it is not stored."""
        if not _HEX64.match(digest):
            raise MalformedError(f"image: {digest!r} is not a SHA-256 in lower-case hex")
        for ext in EXTENSIONS:
            candidate = self.root / f"{digest}.{ext}"
            if candidate.exists():
                return candidate
        raise NotFoundError(f"image {digest}: not in the image store")

    def get(self, digest: str) -> bytes:
        """The image's bytes, checked against its name."""
        data = self.path(digest).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise MalformedError(f"image {digest}: stored bytes do not match the name")
        return data
