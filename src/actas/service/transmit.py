"""Store-and-forward from a polling station: drain the outbox into the results service, keep verified receipts.

Network errors, 408, 429 and 5xx are retried with exponential backoff and full jitter (AWS Architecture Blog,
"Exponential Backoff and Jitter"), never sooner than a ``Retry-After`` the service sent. A receipt is stored only
after it parses strictly, verifies under the authority key and names the leaf that was sent; a bad receipt is
retried like a network error. Submitting is idempotent (the service answers a resend with the same receipt), so
an interrupted run is simply run again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from actas.core.keys import Verifier
from actas.core.receipt import receipt_from_value
from actas.errors import ActasError, FetchError, KeyFormatError, MalformedError
from actas.service.outbox import Outbox

PERMANENT = frozenset({400, 403, 413, 422})  # the acta itself is refused: sending it again cannot help
MAX_RETRY_AFTER = 3600.0  # a longer Retry-After is taken as this (the deadline still applies)
USER_AGENT = "actas-transmit/1"
Item = tuple[bytes, bytes]  # (leaf hash, entry)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: after n failures in a row, wait uniform(0, min(cap, base·2**(n-1)))."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before the next attempt (at least the service's Retry-After)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(failures - 1, 62))
        jittered = rng() * ceiling
        return jittered if retry_after is None else max(min(retry_after, MAX_RETRY_AFTER), jittered)


@dataclass(frozen=True)
class Event:
    """Something transmit did: accepted, duplicate, conflict, rejected, bad-receipt or retry."""

    kind: str
    leaf_hash: bytes | None = None
    detail: str = ""
    delay: float = 0.0


@dataclass
class Summary:
    """What a transmit run did, and what it left pending."""

    sent: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: int = 0
    pending: int = 0
    requests: int = 0
    retries: int = 0
    bad_receipts: int = 0
    stopped: str | None = None  # why the run ended with actas still pending

    def to_value(self) -> dict[str, Any]:
        """The summary as a JSON value."""
        return asdict(self)


class _Retry(Exception):
    """A failure worth retrying after a pause (internal: never leaves this module)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def fetch_authority(url: str, timeout: float = 10.0) -> Verifier:
    """The service's own authority key (trust on first use: pin it, and prefer a key obtained independently)."""
    base = _base(url)
    try:
        response = httpx.get(base + "/keys/authority.vkey", timeout=timeout, headers={"user-agent": USER_AGENT})
    except httpx.TransportError as exc:
        raise FetchError(f"{base}/keys/authority.vkey: cannot fetch ({type(exc).__name__}: {exc})") from None
    if response.status_code != 200:
        raise FetchError(f"{base}/keys/authority.vkey: HTTP {response.status_code}")
    try:
        return Verifier.parse(response.content.decode("utf-8").strip())
    except (UnicodeDecodeError, KeyFormatError) as exc:
        raise KeyFormatError(f"{base}/keys/authority.vkey: not a key string ({exc})") from None


MAX_SKEW = 600  # seconds a new receipt's time may differ from this machine's clock


def transmit(
    outbox: Outbox,
    url: str,
    authority: Verifier,
    *,
    batch: int = 0,
    max_attempts: int | None = None,
    deadline: float | None = None,
    backoff: Backoff = Backoff(),
    timeout: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_event: Callable[[Event], None] | None = None,
) -> Summary:
    """Send every pending acta (batch > 0: that many per NDJSON request) until none is left or it must stop.

    It stops early after max_attempts failed attempts in a row, or when the next wait would pass deadline
    (seconds from the start); what is left stays pending for the next run.
    """
    base = _base(url)
    sender = _Sender(outbox, base, authority, on_event or (lambda event: None))
    started = clock()
    failures = 0
    with outbox.lock(), httpx.Client(base_url=base, timeout=timeout, headers={"user-agent": USER_AGENT}) as client:
        sender.client = client
        items = outbox.pending()
        position = 0
        while position < len(items):
            chunk = items[position : position + max(1, batch)]
            try:
                if batch > 0:
                    sender.send_batch(chunk)
                else:
                    sender.send_one(*chunk[0])
            except _Retry as retry:
                failures += 1
                if max_attempts is not None and failures >= max_attempts:
                    sender.summary.stopped = f"gave up after {failures} failed attempts in a row: {retry.reason}"
                    break
                delay = backoff.delay(failures, retry.retry_after, rng)
                if deadline is not None and clock() - started + delay > deadline:
                    sender.summary.stopped = f"deadline of {deadline:g} s reached: {retry.reason}"
                    break
                sender.summary.retries += 1
                sender.emit(Event("retry", None, retry.reason, delay))
                sleep(delay)
                items, position = outbox.pending(), 0  # whatever was settled meanwhile has left the queue
                continue
            failures = 0
            position += len(chunk)
    sender.summary.pending = len(outbox.pending())
    return sender.summary


class _Sender:
    """The requests of one transmit run and what it does with each answer."""

    def __init__(self, outbox: Outbox, url: str, authority: Verifier, emit: Callable[[Event], None]) -> None:
        self.outbox = outbox
        self.url = url
        self.authority = authority
        self.emit = emit
        self.summary = Summary()
        self.client: httpx.Client | None = None
        self.wall_clock: Callable[[], float] = time.time

    def _post(self, path: str, body: bytes, media: str) -> httpx.Response:
        assert self.client is not None
        self.summary.requests += 1
        try:
            return self.client.post(path, content=body, headers={"content-type": media})
        except httpx.TransportError as exc:
            raise _Retry(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None

    def send_one(self, leaf: bytes, entry: bytes) -> None:
        """POST one acta and settle it (receipt or rejection), or raise _Retry."""
        response = self._post("/v1/actas", entry, "application/json")
        status = response.status_code
        if status in (200, 201, 409):
            self._settle(leaf, entry, _json(response))
        elif status in PERMANENT:
            self._reject(leaf, entry, _problem(response))
        else:
            self._unexpected(response)

    def send_batch(self, chunk: Sequence[Item]) -> None:
        """POST actas as NDJSON and settle each line; lines worth retrying make it raise _Retry at the end."""
        body = b"".join(entry + b"\n" for _, entry in chunk)
        response = self._post("/v1/actas:batch", body, "application/x-ndjson")
        if response.status_code in (400, 413):  # the batch as a whole (size, lines): fall back to one by one
            for leaf, entry in chunk:
                self.send_one(leaf, entry)
            return
        if response.status_code != 200:
            self._unexpected(response)
        value = _json(response)
        results = value.get("results") if isinstance(value, dict) else None
        if not isinstance(results, list) or len(results) != len(chunk):
            raise _Retry(f"{self.url}/v1/actas:batch: the answer does not have one result per line")
        failed: list[str] = []
        waits: list[float] = []
        for n, ((leaf, entry), result) in enumerate(zip(chunk, results, strict=True)):
            try:
                if not isinstance(result, dict) or result.get("line") != n + 1:
                    raise _Retry(f"batch result {n + 1}: not the result of line {n + 1}")
                problem = result.get("problem")
                if result.get("status") != "rejected":
                    self._settle(leaf, entry, result)
                elif isinstance(problem, dict) and problem.get("status") in PERMANENT:
                    self._reject(leaf, entry, problem)
                else:
                    wait = problem.get("retry_after") if isinstance(problem, dict) else None
                    code = problem.get("code") if isinstance(problem, dict) else None
                    raise _Retry(f"line {n + 1}: {code or 'rejected'}", _seconds(wait))
            except _Retry as retry:
                failed.append(retry.reason)
                if retry.retry_after is not None:
                    waits.append(retry.retry_after)
        if failed:
            raise _Retry(f"{len(failed)} of {len(chunk)} actas to retry ({failed[0]})", max(waits, default=None))

    def _settle(self, leaf: bytes, entry: bytes, value: object) -> None:
        """Check the service's answer and its receipt; store it, or raise _Retry."""
        try:
            if not isinstance(value, dict):
                raise MalformedError("the answer is not a JSON object")
            status = value.get("status")
            if status == 409 and value.get("code") == "conflict":  # a problem+json 409: logged, and flagged
                status = "conflict"
            if status not in ("accepted", "duplicate", "conflict"):
                raise MalformedError(f"unexpected status {status!r}")
            if value.get("leaf_hash") != leaf.hex():
                raise MalformedError(f"the answer names leaf {value.get('leaf_hash')!r}, not {leaf.hex()}")
            receipt = receipt_from_value(value.get("receipt"), "receipt")
            receipt.check(self.authority)
            skew = receipt.time - self.wall_clock()
            if skew > MAX_SKEW or (status == "accepted" and skew < -MAX_SKEW):
                # Misdated, it could never show an omission (receipts check treats young receipts as pending).
                raise MalformedError(f"the receipt is dated {skew:+.0f} s from this machine's clock")
            if receipt.leaf_hash != leaf:
                raise MalformedError(f"the receipt is for leaf {receipt.leaf_hash.hex()}, not {leaf.hex()}")
            existing = None
            if status == "conflict":
                existing = _hex32(value.get("existing_leaf_hash"))
        except ActasError as exc:
            self.summary.bad_receipts += 1
            self.emit(Event("bad-receipt", leaf, str(exc)))
            raise _Retry(f"bad receipt for {leaf.hex()[:16]}…: {exc}") from None
        self.outbox.store_receipt(entry, receipt, status, self.url, existing)
        if status == "accepted":
            self.summary.sent += 1
        elif status == "duplicate":
            self.summary.duplicate += 1
        else:
            self.summary.conflict += 1
        self.emit(Event(status, leaf))

    def _reject(self, leaf: bytes, entry: bytes, problem: dict[str, Any]) -> None:
        self.outbox.reject(entry, problem, self.url)
        self.summary.rejected += 1
        self.emit(Event("rejected", leaf, f"{problem.get('code')}: {problem.get('detail')}"))

    def _unexpected(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            value = _json_or_none(response)
            code = value.get("code") if isinstance(value, dict) else None
            reason = f"HTTP {status}" + (f" ({code})" if code else "")
            raise _Retry(f"{response.request.url}: {reason}", _retry_after(response))
        raise FetchError(f"{response.request.url}: unexpected HTTP {status}; is this an actas results service?")


def _base(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"{url}: not an http(s) URL")
    return url.rstrip("/")


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _json(response: httpx.Response) -> object:
    value = _json_or_none(response)
    if value is None:
        raise _Retry(f"{response.request.url}: HTTP {response.status_code} with a body that is not JSON")
    return value


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json of a permanent refusal; without one, the answer is not from the service (a proxy?)."""
    value = _json_or_none(response)
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        raise FetchError(f"{response.request.url}: HTTP {response.status_code} without a problem+json body")
    return value


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in delta-seconds (the form the service sends); any other form counts as absent."""
    raw = response.headers.get("retry-after", "").strip()
    return float(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_RETRY_AFTER:
        return None
    return float(value)


def _hex32(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise MalformedError(f"existing_leaf_hash {value!r}: expected 64 lowercase hex digits")
    return bytes.fromhex(value)
