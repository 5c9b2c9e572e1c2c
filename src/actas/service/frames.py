"""Length-prefixed frames as multiprocessing's Connection writes them, read and written without ever blocking.

A worker process talks through a plain ``Connection`` (``send_bytes`` / ``recv_bytes``). The service's event loop
must not wait for a whole message the way ``recv_bytes`` does — a worker paused between a frame's header and its
payload would stall every request — so it reads whatever bytes are there and takes out the frames that are
complete. The format is Connection's own: a 4-byte big-endian signed length, or -1 and then an 8-byte length.
"""

from __future__ import annotations

import struct

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
SHORT_MAX = 0x7FFFFFFF


def frame(payload: bytes) -> bytes:
    """A payload with its length in front, as Connection.send_bytes sends it."""
    if len(payload) > SHORT_MAX:
        return _SHORT.pack(-1) + _LONG.pack(len(payload)) + payload
    return _SHORT.pack(len(payload)) + payload


class FrameReader:
    """Collects bytes as they arrive and hands out each frame's payload once it is complete."""

    def __init__(self, limit: int) -> None:
        self._buffer = bytearray()
        self._limit = limit  # a frame longer than this is refused: the peer is not speaking this protocol

    def feed(self, data: bytes) -> list[bytes]:
        """Take in data; the payloads of every frame it completes, in order (ValueError if one is too long)."""
        self._buffer += data
        payloads: list[bytes] = []
        while True:
            if len(self._buffer) < _SHORT.size:
                return payloads
            (size,) = _SHORT.unpack_from(self._buffer)
            start = _SHORT.size
            if size == -1:
                if len(self._buffer) < _SHORT.size + _LONG.size:
                    return payloads
                (size,) = _LONG.unpack_from(self._buffer, _SHORT.size)
                start += _LONG.size
            if size < 0 or size > self._limit:
                raise ValueError(f"frame of {size} bytes; at most {self._limit} are taken")
            if len(self._buffer) < start + size:
                return payloads
            payloads.append(bytes(self._buffer[start : start + size]))
            del self._buffer[: start + size]

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)
