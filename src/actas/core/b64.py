"""Strict standard base64 (RFC 4648 §4, padded): non-canonical encodings are rejected."""

from __future__ import annotations

import base64
import binascii

from actas.errors import MalformedError


def b64encode(data: bytes) -> str:
    """Encode bytes as padded standard base64."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes, what: str = "base64", size: int | None = None) -> bytes:
    """Decode padded standard base64, rejecting stray characters, bad padding and non-zero spare bits."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what}: not valid base64") from None
    if base64.b64encode(data) != raw:
        raise MalformedError(f"{what}: non-canonical base64")
    if size is not None and len(data) != size:
        raise MalformedError(f"{what}: expected {size} bytes, got {len(data)}")
    return data
