"""Token-bucket rate limits per client address and per device key, so one source cannot crowd out the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from actas.errors import RateLimitedError, TooLargeError

MAX_BUCKETS = 200_000  # beyond this many tracked sources, the idlest half is forgotten (memory stays bounded)


@dataclass(frozen=True)
class Limit:
    """A sustained rate (per second) and a burst; rate 0 means unlimited."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 0 or (self.rate > 0 and self.burst < 1):
            raise ValueError("a rate limit needs rate >= 0 and, when limited, burst >= 1")


class RateLimiter:
    """Buckets keyed by source; take() raises RateLimitedError with the seconds to wait when a bucket is empty."""

    def __init__(self, limit: Limit, what: str, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._what = what
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, last refill time)
        self._lock = threading.Lock()

    def check(self, source: str, cost: float = 1.0) -> None:
        """Raise RateLimitedError if source cannot spend cost tokens now; otherwise spend them."""
        limit = self._limit
        if limit.rate == 0:
            return
        if cost > limit.burst:  # waiting would never help: say so instead of asking for a retry
            raise TooLargeError(f"{cost:.0f} at once is more than the burst of {limit.burst:.0f} per {self._what}")
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(source, (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - last) * limit.rate)
            if tokens < cost:
                wait = (cost - tokens) / limit.rate
                self._buckets[source] = (tokens, now)
                raise RateLimitedError(f"rate limit of {self._what} {source!r}: retry in {wait:.1f} s", wait)
            self._buckets[source] = (tokens - cost, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle()

    def _forget_idle(self) -> None:
        by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
        for source, _ in by_age[: len(by_age) // 2]:
            del self._buckets[source]
