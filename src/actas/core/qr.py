"""QR payload codecs. The project's own format carries a signed entry exactly.

Own format, version 1: ``ACTAS1:`` followed by Base45 (RFC 9285) of the raw-DEFLATE-compressed (RFC 1951)
canonical entry bytes. Every character is in the QR alphanumeric set, so a 40-ticket acta fits a QR code at
error-correction level M; decoding yields exactly the bytes that were signed. Decoding is strict: any character
outside the alphabet, a Base45 group out of range, a truncated or over-long stream, or trailing data is refused
with its position.
"""

from __future__ import annotations

import zlib

from actas.core.entries import MAX_ENTRY_SIZE
from actas.errors import MalformedError

PREFIX = "ACTAS1:"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
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
    values: list[int] = []
    for i, char in enumerate(text):
        value = _VALUE.get(char)
        if value is None:
            raise MalformedError(f"payload at {offset + i}: {char!r} is not a Base45 character")
        values.append(value)
    out = bytearray()
    for i in range(0, len(values), 3):
        group = values[i : i + 3]
        if len(group) == 3:
            n = group[0] + group[1] * 45 + group[2] * 2025
            if n > 0xFFFF:
                raise MalformedError(f"payload at {offset + i}: Base45 group above 65535")
            out += n.to_bytes(2, "big")
        else:
            n = group[0] + group[1] * 45
            if n > 0xFF:
                raise MalformedError(f"payload at {offset + i}: final Base45 pair above 255")
            out.append(n)
    return bytes(out)


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
