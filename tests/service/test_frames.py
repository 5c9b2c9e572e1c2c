"""Frames as multiprocessing's Connection writes them: read back whole however the bytes arrive."""

from __future__ import annotations

import multiprocessing
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.service.frames import FrameReader, frame

payloads = st.lists(st.binary(max_size=300), max_size=8)


@given(payloads, st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_frames_come_out_whole_however_the_bytes_are_cut(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in items)
    reader = FrameReader(1 << 20)
    got: list[bytes] = []
    start = 0
    for cut in [*sorted(min(c, len(stream)) for c in cuts), len(stream)]:
        got += reader.feed(stream[start:cut])
        start = cut
    assert got == items
    assert reader.pending == 0


@given(st.binary(max_size=20_000))
def test_a_frame_is_what_connection_sends(payload: bytes) -> None:
    """The worker reads and writes with Connection: the bytes must be the same both ways."""
    ours, theirs = multiprocessing.Pipe()
    try:
        ours.send_bytes(payload)
        wanted = frame(payload)
        received = b""
        while len(received) < len(wanted):
            received += os.read(theirs.fileno(), len(wanted) - len(received))
        assert received == wanted
        assert FrameReader(1 << 20).feed(received) == [payload]
    finally:
        ours.close()
        theirs.close()


def test_the_long_form_of_the_header_is_read() -> None:
    """Connection's header for payloads past 2 GiB: -1, then an 8-byte length."""
    assert FrameReader(100).feed(struct.pack("!iQ", -1, 3) + b"abc" + frame(b"d")) == [b"abc", b"d"]


@pytest.mark.parametrize("header", [struct.pack("!i", 101), struct.pack("!i", -2), struct.pack("!iQ", -1, 1 << 40)])
def test_a_frame_past_the_limit_or_of_negative_size_is_refused(header: bytes) -> None:
    with pytest.raises(ValueError, match="frame of"):
        FrameReader(100).feed(header)


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_any_bytes_give_whole_frames_or_a_specific_refusal(data: bytes, step: int) -> None:
    """Fuzz: whatever arrives, the reader hands out only frames within its limit, or refuses with ValueError."""
    reader = FrameReader(100)
    refusal = ""
    try:
        for start in range(0, len(data), step):
            for payload in reader.feed(data[start : start + step]):
                assert len(payload) <= 100
    except ValueError as exc:
        refusal = str(exc)
    assert refusal == "" or refusal.startswith("frame of")
