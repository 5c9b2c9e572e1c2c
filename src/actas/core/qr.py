"""QR payload codecs. The project's own format carries a signed entry exactly.

Own format, version 1: ``ACTAS1:`` followed by Base45 (RFC 9285) of the raw-DEFLATE-compressed (RFC 1951)
canonical entry bytes. Every character is in the QR alphanumeric set, so a 40-ticket acta fits a QR code at
error-correction level M; decoding yields exactly the bytes that were signed. Decoding is strict: any character
outside the alphabet, a Base45 group out of range, a truncated or over-long stream, or trailing data is refused
with its position.
"""

from __future__ import annotations

import re
import struct
import zlib

from actas.core.entries import MAX_ENTRY_SIZE
from actas.errors import MalformedError

PREFIX = "ACTAS1:"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_TO_VALUE = bytes.maketrans(ALPHABET.encode("ascii"), bytes(range(len(ALPHABET))))
_BASE45_TEXT = re.compile("[" + re.escape(ALPHABET) + "]*\\Z")
MAX_PAYLOAD = 4296  # the most alphanumeric characters a QR code (version 40-L) holds


def base45_encode(data: bytes) -> str:
    """RFC 9285 Base45."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def base45_decode(text: str, offset: int = 0) -> bytes:
    """RFC 9285 Base45, strictly; positions in errors are counted from offset."""
    if len(text) % 3 == 1:
        raise MalformedError(f"payload at {offset + len(text) - 1}: Base45 text cannot end with a lone character")
    if not _BASE45_TEXT.match(text):
        for i, char in enumerate(text):
            if char not in _VALUE:
                raise MalformedError(f"payload at {offset + i}: {char!r} is not a Base45 character")
    values = text.encode("ascii").translate(_TO_VALUE)
    whole = len(values) - len(values) % 3
    # One list comprehension and one pack instead of a Python step per character: payloads are read by the
    # thousand when witness copies are cross-checked.
    groups = [
        a + b * 45 + c * 2025 for a, b, c in zip(values[0:whole:3], values[1:whole:3], values[2:whole:3], strict=True)
    ]
    if groups and max(groups) > 0xFFFF:
        at = next(i for i, n in enumerate(groups) if n > 0xFFFF)
        raise MalformedError(f"payload at {offset + 3 * at}: Base45 group above 65535")
    out = struct.pack(f">{len(groups)}H", *groups)
    if whole < len(values):
        n = values[whole] + values[whole + 1] * 45
        if n > 0xFF:
            raise MalformedError(f"payload at {offset + whole}: final Base45 pair above 255")
        out += bytes((n,))
    return out


def encode_payload(entry: bytes) -> str:
    """The own-format QR payload of a signed entry."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return PREFIX + base45_encode(compressor.compress(entry) + compressor.flush())


def decode_payload(text: str) -> bytes:
    """The signed entry bytes carried by an own-format payload (parse them with entries.parse_entry)."""
    if len(text) > MAX_PAYLOAD:
        raise MalformedError(f"payload: {len(text)} characters is more than a QR code holds")
    if not text.startswith(PREFIX):
        raise MalformedError(f"payload at 0: does not start with {PREFIX!r}")
    packed = base45_decode(text[len(PREFIX) :], len(PREFIX))
    inflater = zlib.decompressobj(-15)
    try:
        entry = inflater.decompress(packed, MAX_ENTRY_SIZE + 1)
    except zlib.error as exc:
        raise MalformedError(f"payload: the compressed entry is damaged ({exc})") from None
    if len(entry) > MAX_ENTRY_SIZE or inflater.unconsumed_tail:
        raise MalformedError(f"payload: the entry inflates beyond {MAX_ENTRY_SIZE} bytes")
    if not inflater.eof:
        raise MalformedError("payload: the compressed entry is truncated")
    if inflater.unused_data:
        raise MalformedError("payload: data after the end of the compressed entry")
    return entry
