"""Strict standard base64: one spelling per byte string, everything else rejected."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.core.b64 import b64decode, b64encode
from actas.errors import MalformedError


@given(st.binary(max_size=100))
def test_round_trip(data: bytes) -> None:
    text = b64encode(data)
    assert text == base64.b64encode(data).decode("ascii")
    assert b64decode(text) == data
    assert b64decode(text.encode("ascii")) == data


def test_known_values() -> None:
    assert b64encode(b"") == ""
    assert b64encode(b"\xfb\xff") == "+/8="
    assert b64decode("+/8=") == b"\xfb\xff"
    assert b64decode("QUJD") == b"ABC"
    assert b64decode("QQ==") == b"A"


@pytest.mark.parametrize(
    "text",
    [
        # whitespace anywhere
        " QUJD",
        "QUJD ",
        "QU JD",
        "QUJD\n",
        "QU\nJD",
        "QUJD\r\n",
        "\tQUJD",
        "QQ== ",
        # missing or wrong padding
        "QQ",
        "QQ=",
        "QUI",
        "QQ===",
        "QUJD=",
        "Q",
        "=",
        "==QQ",
        "QQ==QQ==",
        "Q=Q=",
        # URL-safe alphabet
        "-_8=",
        "-_-_",
        "QUJD_w==",
        # non-zero spare bits
        "QR==",
        "QX==",
        "QUJ=",
        "QUK=",
        "+/9=",
        # non-ASCII
        "QUJ\u0412",
        "QUJ\u00c4",
        "\uff31UJD",
        "QUJD\u2028",
        "QUJD\u00a0",
        # other stray characters
        "QU.D",
        "QUJD\x00",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(MalformedError):
        b64decode(text)
    with pytest.raises(MalformedError):
        b64decode(text.encode("utf-8"))


def test_rejects_invalid_bytes() -> None:
    with pytest.raises(MalformedError):
        b64decode(b"QUJ\xff")
    with pytest.raises(MalformedError):
        b64decode(b"QUJ\x80")


@given(st.binary(min_size=1, max_size=40), st.data())
def test_any_spare_bits_rejected(data: bytes, draw: st.DataObject) -> None:
    text = b64encode(data)
    spare = {1: 4, 2: 2}.get(len(data) % 3, 0)  # 1 byte over a group leaves 4 spare bits, 2 bytes leave 2
    if spare == 0:
        return
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = len(text.rstrip("=")) - 1
    index = alphabet.index(text[last])
    bits = draw.draw(st.integers(1, (1 << spare) - 1), label="spare bits")
    changed = text[:last] + alphabet[index | bits] + text[last + 1 :]
    assert base64.b64decode(changed) == data  # a lenient decoder would accept it as the same bytes
    with pytest.raises(MalformedError, match="non-canonical"):
        b64decode(changed)


def test_size_check_names_the_field() -> None:
    assert b64decode(b64encode(bytes(64)), "sig", 64) == bytes(64)
    with pytest.raises(MalformedError, match=r"sig: expected 64 bytes, got 63"):
        b64decode(b64encode(bytes(63)), "sig", 64)
    with pytest.raises(MalformedError, match=r"^sig: "):
        b64decode("QQ", "sig")
