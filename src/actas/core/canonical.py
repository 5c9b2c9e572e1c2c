"""Canonical JSON: the byte encoding of every log entry.

Rules (docs/formats.md §1): UTF-8; object keys sorted by code point; no insignificant whitespace; integers only,
within ±(2**53 - 1); strings escaped as RFC 8785 (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other controls as
lower-case ``\\u00xx``, everything else literal). Decoding is strict: input whose re-encoding differs, duplicate
keys, floats, ``NaN``, lone surrogates and a byte-order mark are all rejected.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from actas.errors import MalformedError, NonCanonicalError

MAX_SAFE_INTEGER = 2**53 - 1

_encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_value(value: Any, path: str) -> None:
    """Reject values canonical JSON cannot hold (floats, big integers, non-string keys)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise MalformedError(f"{path}: integer {value} is outside ±(2**53-1)")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedError(f"{path}: object key {key!r} is not a string")
            _check_value(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]")
        return
    raise MalformedError(f"{path}: {type(value).__name__} is not allowed in canonical JSON")


def encode(value: Any) -> bytes:
    """Encode a JSON value as canonical bytes."""
    _check_value(value, "$")
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedError(f"$: string holds a lone surrogate at position {exc.start}") from None


def _reject_float(text: str) -> NoReturn:
    raise NonCanonicalError(f"number {text!r} is not an integer; canonical JSON has integers only")


def _reject_constant(text: str) -> NoReturn:
    raise NonCanonicalError(f"{text} is not allowed in canonical JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise NonCanonicalError(f"duplicate object key {key!r}")
            seen.add(key)
    return result


_decoder = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=_reject_float, parse_constant=_reject_constant
)
# Without the pairs hook objects are built in C. A duplicate key cannot survive that way: the dict keeps one
# member, so the re-encoding differs from the input and the strict decoder is run to name the problem.
_fast_decoder = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)
# Only input with a run of 16 or more digits can hold an integer beyond ±(2**53-1); only then are
# integers walked, which keeps the common case at C speed.
_LONG_DIGITS = re.compile(rb"[0-9]{16}")


def _check_ranges(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonicalError(f"integer {value} is outside ±(2**53-1)")
    elif isinstance(value, dict):
        for item in value.values():
            _check_ranges(item)
    elif isinstance(value, list):
        for item in value:
            _check_ranges(item)


def encode_decoded(value: Any) -> bytes:
    """Encode a value known to hold only canonical types (decoded, or built of str/int/list/dict) unchecked."""
    return _encoder.encode(value).encode("utf-8")


def decode(data: bytes, check_ranges: bool = True) -> Any:
    """Decode canonical bytes strictly: anything whose re-encoding differs is rejected.

    ``check_ranges=False`` leaves the ±(2**53-1) check of integers to a caller that checks every integer
    field itself (entry parsing does, and saves a scan of every entry).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        value = _fast_decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedError(f"invalid JSON at byte {_byte_offset(text, exc.pos)}: {exc.msg}") from None
    except RecursionError:
        raise MalformedError("JSON nested too deeply") from None
    except ValueError:  # int() refuses integers of over 4300 digits
        raise NonCanonicalError("integer far outside ±(2**53-1)") from None
    if check_ranges and _LONG_DIGITS.search(data):
        _check_ranges(value)
    # json.loads yields only str, int (range-checked above), bool, None, list and dict, so the fast encoder
    # can be used directly. Compare as text: the input decoded as valid UTF-8, so equal text means equal
    # bytes; a lone surrogate (from a \ud800 escape) makes the texts differ and is named below.
    again = _encoder.encode(value)
    if again != text:
        _decoder.decode(text)  # raises for a duplicate key, the likeliest specific cause
        raise NonCanonicalError(f"not canonical JSON (first difference at byte {_first_difference(value, data)})")
    return value


def _byte_offset(text: str, char_pos: int) -> int:
    return len(text[:char_pos].encode("utf-8", "surrogatepass"))


def _first_difference(value: Any, data: bytes) -> int:
    expected = encode(value)
    for i, (a, b) in enumerate(zip(expected, data, strict=False)):
        if a != b:
            return i
    return min(len(expected), len(data))
