"""Canonical JSON: round trips, RFC 8785 string escaping, and strict rejection of every non-canonical form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.canonical import MAX_SAFE_INTEGER, decode, encode
from actas.errors import MalformedError, NonCanonicalError

# Any code point except lone surrogates; make the awkward ones (controls, U+2028/9, DEL, quote, backslash,
# non-BMP) frequent rather than leaving them to chance.
_AWKWARD = st.sampled_from(
    [chr(c) for c in range(0x20)] + ["\x7f", "\u2028", "\u2029", '"', "\\", "/", "\ufeff", "\U0001f600"]
)
_CHARS = st.one_of(st.characters(exclude_categories=["Cs"]), _AWKWARD)
_TEXT = st.text(_CHARS, max_size=12)
_INTS = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _TEXT)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_TEXT, children, max_size=5)),
    max_leaves=25,
)


def _reorder(value: Any) -> Any:
    """The same JSON value with every object's insertion order reversed."""
    if isinstance(value, dict):
        return {k: _reorder(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


def _outside_strings(data: bytes) -> list[int]:
    """Byte positions (0..len) where an insertion would fall between tokens, not inside a string."""
    positions = []
    in_string = False
    escaped = False
    for i, byte in enumerate(data):
        if not in_string:
            positions.append(i)
            if byte == ord('"'):
                in_string = True
        elif escaped:
            escaped = False
        elif byte == ord("\\"):
            escaped = True
        elif byte == ord('"'):
            in_string = False
    positions.append(len(data))
    return positions


# --- round trips -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_round_trip_and_stable(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data
    assert encode(value) == data
    assert encode(_reorder(value)) == data


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_encoding_is_what_json_would_write_sorted_and_compact(value: Any) -> None:
    data = encode(value)
    assert json.loads(data) == value
    # No insignificant whitespace: a compact sorted dump of the same value yields the same bytes.
    assert data == json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def test_known_encoding() -> None:
    value = {"b": [1, True, None, False, -5], "a": "é", "": {}, "c": []}
    assert encode(value) == '{"":{},"a":"é","b":[1,true,null,false,-5],"c":[]}'.encode()


def test_keys_sorted_by_code_point() -> None:
    # Code-point order puts U+FFFF before U+10000 (UTF-16 order would not); upper case before lower case.
    value = {"\U00010000": 1, "\uffff": 2, "a": 3, "B": 4, "aa": 5}
    assert encode(value) == '{"B":4,"a":3,"aa":5,"\uffff":2,"\U00010000":1}'.encode()
    assert decode(encode(value)) == value


def test_safe_integer_bounds() -> None:
    assert decode(b"9007199254740991") == MAX_SAFE_INTEGER
    assert decode(b"-9007199254740991") == -MAX_SAFE_INTEGER
    assert encode(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert encode(-MAX_SAFE_INTEGER) == b"-9007199254740991"


# --- RFC 8785 escaping ------------------------------------------------------------------------------------


def test_short_escapes() -> None:
    assert encode("\b\f\n\r\t") == b'"\\b\\f\\n\\r\\t"'
    assert encode('"\\') == b'"\\"\\\\"'
    assert decode(b'"\\b\\f\\n\\r\\t\\"\\\\"') == '\b\f\n\r\t"\\'


@pytest.mark.parametrize("code", [c for c in range(0x20) if chr(c) not in "\b\f\n\r\t"])
def test_other_controls_lower_case_u_escape(code: int) -> None:
    expected = f'"\\u{code:04x}"'.encode()
    assert encode(chr(code)) == expected
    assert decode(expected) == chr(code)
    upper = f'"\\u{code:04X}"'.encode()
    if upper != expected:
        with pytest.raises(NonCanonicalError):
            decode(upper)


@pytest.mark.parametrize("char", ["\x7f", "\u2028", "\u2029", "/", "\u00e9", "\ufeff", "\U0001f600", "\x80"])
def test_literal_characters(char: str) -> None:
    expected = b'"' + char.encode("utf-8") + b'"'
    assert encode(char) == expected
    assert decode(expected) == char
    units = char.encode("utf-16-be")
    escaped = "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
    with pytest.raises(NonCanonicalError):
        decode(f'"{escaped}"'.encode())  # the \\u-escaped spelling is not canonical


# --- rejection --------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES, st.data())
def test_whitespace_between_tokens_rejected(value: Any, data: st.DataObject) -> None:
    encoded = encode(value)
    pos = data.draw(st.sampled_from(_outside_strings(encoded)), label="position")
    ws = data.draw(st.sampled_from([b" ", b"\t", b"\n", b"\r", b"  "]), label="whitespace")
    with pytest.raises(MalformedError):
        decode(encoded[:pos] + ws + encoded[pos:])


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES, st.data())
def test_control_whitespace_anywhere_rejected(value: Any, data: st.DataObject) -> None:
    # Tab, newline and carriage return are never literal in canonical JSON, inside strings or out.
    encoded = encode(value)
    pos = data.draw(st.integers(0, len(encoded)), label="position")
    ws = data.draw(st.sampled_from([b"\t", b"\n", b"\r"]), label="whitespace")
    with pytest.raises(MalformedError):
        decode(encoded[:pos] + ws + encoded[pos:])


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_TEXT, _SCALARS, min_size=2, max_size=6))
def test_keys_out_of_order_rejected(value: dict[str, Any]) -> None:
    reverse = dict(sorted(value.items(), reverse=True))
    text = json.dumps(reverse, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(NonCanonicalError):
        decode(text.encode())


@pytest.mark.parametrize(
    "data",
    [
        # whitespace
        b" 1",
        b"1 ",
        b"1\n",
        b'{"a": 1}',
        b'{"a" :1}',
        b"[1, 2]",
        b"[ ]",
        b"{ }",
        # keys out of order, duplicates
        b'{"b":1,"a":2}',
        b'{"B":1,"A":2}',
        b'{"a":{"d":1,"c":2}}',
        b'{"a":1,"a":1}',
        b'{"a":1,"a":2}',
        b'[{"x":{"k":1,"k":1}}]',
        # numbers
        b"1.0",
        b"1e3",
        b"1E3",
        b"1e+3",
        b"0.5",
        b"-0",
        b"-0.0",
        b"[-0]",
        b'{"n":1.0}',
        b"9007199254740992",
        b"-9007199254740992",
        b"18446744073709551616",
        b"1" * 5000,
        b"-" + b"9" * 5000,
        b"01",
        b"+1",
        # constants
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"[NaN]",
        b"True",
        b"nul",
        # escapes that should be literal, or spelled differently
        b'"\\u0041"',
        b'"\\/"',
        b'"\\u00e9"',
        b'"\\u007f"',
        b'"\\u2028"',
        b'"\\ud83d\\ude00"',
        b'"\\u000a"',
        b'"\\u0008"',
        b'"\\u0022"',
        b'"\\u005c"',
        b'"\\u001F"',
        b'"\\u000B"',
        b'"\\U001f"',
        b'"\\x41"',
        b'"\\a"',
        b'{"\\u0061":1}',
        # literal control characters
        b'"\x00"',
        b'"\x01"',
        b'"\x1f"',
        b'"a\nb"',
        b'"\t"',
        # byte-order mark
        b"\xef\xbb\xbf1",
        b'\xef\xbb\xbf{"a":1}',
        # invalid UTF-8
        b'"\xff"',
        b'"\xc3"',
        b'"\xc0\x80"',
        b'"\xed\xa0\x80"',
        b'"\xf8\x88\x80\x80\x80"',
        b'"\xe2\x82"',
        # lone surrogates
        b'"\\ud800"',
        b'"\\udc00"',
        b'"\\ude00\\ud83d"',
        b'"a\\ud800b"',
        b'{"\\udfff":1}',
        # trailing garbage and truncation
        b"1x",
        b"{}{}",
        b"[]]",
        b"1\x00",
        b'{"a":1}x',
        b"",
        b"[1,]",
        b'{"a":1,}',
        b"[1",
        b'"abc',
        b"'a'",
    ],
)
def test_non_canonical_rejected(data: bytes) -> None:
    with pytest.raises(MalformedError):
        decode(data)


def test_float_rejected_as_non_canonical_with_reason() -> None:
    with pytest.raises(NonCanonicalError, match="integer"):
        decode(b"[1.0]")
    with pytest.raises(NonCanonicalError, match="duplicate"):
        decode(b'{"a":1,"a":2}')


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedError):
        decode(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        float("nan"),
        float("inf"),
        [1.5],
        {"a": 2.0},
        MAX_SAFE_INTEGER + 1,
        -MAX_SAFE_INTEGER - 1,
        2**64,
        "\ud800",
        ["x\udc00"],
        {"\udfff": 1},
        {1: "a"},
        {None: 1},
        b"bytes",
        {1, 2},
        object(),
    ],
)
def test_encode_rejects(value: Any) -> None:
    with pytest.raises(MalformedError):
        encode(value)
