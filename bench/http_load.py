"""A small loopback HTTP/1.1 load generator: keep-alive connections, fixed requests, latency per request.

Written on asyncio streams because a general client (httpx) costs more CPU per request than the server under
test, which on a two-core machine would measure the client. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass


def get(path: str) -> bytes:
    """A GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def post(path: str, body: bytes, media: str = "application/json") -> bytes:
    """A POST request with a body."""
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {media}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass(frozen=True)
class LoadResult:
    """Requests done, seconds taken, latencies (seconds) and status counts."""

    count: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """A latency percentile in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _run(
    port: int, requests: Sequence[bytes], concurrency: int, duration: float | None, pace: float | None
) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cursor = 0
    started = time.perf_counter()
    stop = started + duration if duration else float("inf")

    async def worker() -> None:
        nonlocal cursor
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                if duration is None and cursor >= len(requests):
                    return
                request = requests[cursor % len(requests)]
                cursor += 1
                sent = time.perf_counter()
                status = await _one(reader, writer, request)
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1
                if pace is not None:
                    await asyncio.sleep(max(0.0, pace - (time.perf_counter() - sent)))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies, statuses)


def run_load(
    port: int, requests: Sequence[bytes], concurrency: int, duration: float | None = None, pace: float | None = None
) -> LoadResult:
    """Send requests (each once, or round-robin for duration seconds) over concurrency connections.

    With pace, each connection sends at most one request per pace seconds (a steady load, not a flood).
    """
    return asyncio.run(_run(port, requests, concurrency, duration, pace))
