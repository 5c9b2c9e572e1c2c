"""A witness: follows a log's checkpoints and cosigns each one that extends, append-only, the last it cosigned.

One round (:func:`witness_once`) fetches ``/log/checkpoint``, opens it with the log's key (nothing else is
accepted) and compares it with the last checkpoint this witness cosigned:

* same size and root: nothing new; the cosignature is sent again if the log does not show it (a restart);
* same size, another root: the log forked. Both signed notes are kept as evidence; EquivocationError;
* larger: a consistency proof is computed from the log's hash tiles and verified against both roots, and the
  tiles must give the new root; if not, evidence ``inconsistent-…`` and VerificationFailed; else it is cosigned;
* smaller: never cosigned. If the tiles show the smaller tree is not a prefix of ours it is a fork (evidence
  ``inconsistent-…``, VerificationFailed); otherwise a stale view of the log (evidence ``rollback-…`` once).

The first checkpoint ever seen is trusted on first use, once the log's tiles give its root: a witness vouches
that the log never forks from the point it started watching, not for what came before.
The cosigned note is saved durably before the cosignature is sent (actas.service.witness_state).
:func:`run_witness` runs rounds until stopped; network trouble is logged and retried with backoff, evidence of
a fork stops it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from actas.core import merkle
from actas.core.b64 import b64encode
from actas.core.keys import Signer, Verifier
from actas.core.note import MAX_NOTE_SIZE, Checkpoint, Note, SignedCheckpoint, cosign_checkpoint, open_signed_checkpoint
from actas.core.tiles import TILE_WIDTH, TileCoord, perfect_hash_from_tiles, tile_path
from actas.core.witness_check import check_witnesses
from actas.errors import (
    ActasError,
    EnrollmentError,
    EquivocationError,
    FetchError,
    MalformedError,
    NotFoundError,
    ProofError,
    SignatureError,
    StorageError,
    UnavailableError,
    VerificationFailed,
)
from actas.service.witness_state import WitnessState, default_state_dir

__all__ = ["RoundResult", "WitnessConfig", "default_state_dir", "run_witness", "witness_once"]

log = logging.getLogger("actas.witness")
MAX_BACKOFF = 60.0  # seconds: the longest wait between rounds while the log cannot be reached
_REFUSALS: dict[int, type[ActasError]] = {403: EnrollmentError, 404: NotFoundError, 422: SignatureError}


@dataclass(frozen=True)
class WitnessConfig:
    """Which log to watch (base URL and its key), the witness's own key, and where it keeps its state."""

    log_url: str
    log_key: Verifier
    signer: Signer
    state_dir: Path
    clock: Callable[[], float] = time.time  # the cosignature timestamp and evidence times
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.log_url.startswith(("http://", "https://")):
            raise MalformedError(f"log URL {self.log_url!r}: must be http:// or https://")

    def client(self) -> httpx.Client:
        """An HTTP client for the log (the base URL keeps its path, so a log may live under a prefix)."""
        return httpx.Client(base_url=self.log_url.rstrip("/") + "/", timeout=self.timeout)


@dataclass(frozen=True)
class RoundResult:
    """What a round did: cosigned, unchanged, resubmitted (our cosignature again) or rollback (refused)."""

    status: str
    checkpoint: Checkpoint
    accepted: tuple[str, ...] = ()  # witness names the log accepted cosignatures from
    evidence: Path | None = None


@dataclass
class _Tiles:
    """Reads hash tiles from the log and keeps them, so evidence can carry exactly what was seen."""

    client: httpx.Client
    seen: dict[str, bytes] = field(default_factory=dict)

    def __call__(self, coord: TileCoord) -> bytes:
        path = "log/" + tile_path(coord)
        if path not in self.seen:
            self.seen[path] = _get(self.client, path, 32 * TILE_WIDTH)
        return self.seen[path]


def _get(client: httpx.Client, path: str, limit: int) -> bytes:
    """GET a file of the log, refusing an answer above limit bytes; FetchError for any HTTP or network trouble."""
    data = bytearray()
    try:
        with client.stream("GET", path) as response:
            if response.status_code != 200:
                raise FetchError(f"{path}: HTTP {response.status_code} from {response.url}")
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise FetchError(f"{path}: larger than {limit} bytes")
    except httpx.HTTPError as exc:
        raise FetchError(f"{path}: cannot fetch from {client.base_url} ({exc.__class__.__name__}: {exc})") from None
    return bytes(data)


def _submit(client: httpx.Client, note: bytes) -> tuple[str, ...]:
    """POST a cosigned checkpoint to the log; the names it accepted, or the log's refusal as an ActasError."""
    try:
        response = client.post("v1/cosignatures", content=note, headers={"Content-Type": "text/plain; charset=utf-8"})
    except httpx.HTTPError as exc:
        raise FetchError(f"v1/cosignatures: cannot reach {client.base_url} ({exc.__class__.__name__}: {exc})") from None
    try:
        value = response.json()
    except ValueError:
        value = None
    if response.status_code == 200 and isinstance(value, dict) and isinstance(value.get("accepted"), list):
        return tuple(str(name) for name in value["accepted"])
    detail = value.get("detail") if isinstance(value, dict) else None
    message = f"the log refused the cosignature: HTTP {response.status_code}" + (f": {detail}" if detail else "")
    if response.status_code == 429 or response.status_code >= 500:
        raise UnavailableError(message)
    raise _REFUSALS.get(response.status_code, FetchError)(message)


def _check_tiles(tiles: _Tiles, old: Checkpoint | None, new: Checkpoint) -> str | None:
    """None when the tiles give new's root and prove it extends old append-only, else what does not hold."""
    perfect = perfect_hash_from_tiles(tiles, new.size)
    try:
        root = merkle.root_from_perfect(new.size, perfect)
    except ProofError as exc:
        return f"the log's tiles do not give a tree of size {new.size}: {exc}"
    if root != new.root_hash:
        return f"the root the log's tiles give for size {new.size} differs from the signed checkpoint's"
    if old is None or old.size == 0:
        return None if old is None or old.root_hash == merkle.EMPTY_ROOT else "a size-0 checkpoint with a root"
    try:
        proof = merkle.consistency_proof(old.size, new.size, perfect)
        merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except ProofError as exc:
        return f"size {new.size} is not an append-only extension of size {old.size}: {exc}"
    return None


def _cosigned_by_us(signed: SignedCheckpoint, signer: Signer) -> bool:
    return check_witnesses(signed.note, [signer.verifier]).ok


def _cosign(config: WitnessConfig, client: httpx.Client, state: WitnessState, signed: SignedCheckpoint) -> RoundResult:
    line = cosign_checkpoint(signed.checkpoint, config.signer, int(config.clock()))
    # Only the log's own signature and ours: another witness's bad line must not make the log refuse this one.
    note = Note(signed.note.text, (*signed.note.verified, line)).to_bytes()
    state.save(note)  # durably, before the cosignature leaves this machine
    return RoundResult("cosigned", signed.checkpoint, _submit(client, note))


def _round(config: WitnessConfig, client: httpx.Client, state: WitnessState) -> RoundResult:
    served = _get(client, "log/checkpoint", MAX_NOTE_SIZE)
    signed = open_signed_checkpoint(served, config.log_key)
    new = signed.checkpoint
    if new.origin != config.log_key.name:
        raise SignatureError(f"checkpoint origin {new.origin!r} is not the log key's name {config.log_key.name!r}")
    saved = state.load()
    tiles = _Tiles(client)
    details: dict[str, object] = {
        "log": config.log_url,
        "log_key": str(config.log_key),
        "witness_key": str(config.signer.verifier),
    }
    if saved is None:  # trust on first use: only the tiles are checked
        problem = _check_tiles(tiles, None, new)
        if problem is not None:
            where = state.evidence("inconsistent", None, (new, served), problem, details, config.clock(), tiles.seen)
            raise VerificationFailed(f"refused the first checkpoint, size {new.size}: {problem}; evidence in {where}")
        return _cosign(config, client, state, signed)
    try:
        old = open_signed_checkpoint(saved, config.log_key).checkpoint
    except ActasError as exc:
        message = f"{state.checkpoint_path}: not a checkpoint of this log ({exc}); move it away to start over"
        raise StorageError(message) from None
    if old.origin != new.origin:
        raise StorageError(f"{state.checkpoint_path}: a checkpoint of {old.origin!r}, not of {new.origin!r}")
    pair = ((old, saved), (new, served))
    if new.size == old.size and new.root_hash == old.root_hash:
        if _cosigned_by_us(signed, config.signer):
            return RoundResult("unchanged", new)
        return RoundResult("resubmitted", new, _submit(client, saved))
    if new.size == old.size:
        reason = f"two signed checkpoints of size {new.size} with different roots"
        where = state.evidence("equivocation", *pair, reason, details, config.clock())
        raise EquivocationError(f"the log equivocated: {reason}; refused to cosign; evidence in {where}")
    if new.size > old.size:
        problem = _check_tiles(tiles, old, new)
        if problem is not None:
            where = state.evidence("inconsistent", *pair, problem, details, config.clock(), tiles.seen)
            raise VerificationFailed(f"refused to cosign size {new.size}: {problem}; evidence in {where}")
        return _cosign(config, client, state, signed)
    # Smaller than what we cosigned: never cosigned. Whether it is a fork or a stale view is up to the tiles.
    unchecked = ""
    try:
        problem = _check_tiles(tiles, new, old)
    except (FetchError, MalformedError) as exc:  # a log that lost entries may not serve our tree's tiles
        problem, unchecked = None, f"; whether it is a prefix of the cosigned tree could not be checked: {exc}"
    if problem is not None:
        where = state.evidence("inconsistent", *pair, problem, details, config.clock(), tiles.seen)
        raise VerificationFailed(f"refused to cosign size {new.size}: {problem}; evidence in {where}")
    if state.has_evidence("rollback", new):  # a stale server serves it every round: one record is enough
        return RoundResult("rollback", new)
    reason = f"served size {new.size}, smaller than the cosigned size {old.size}{unchecked}"
    return RoundResult("rollback", new, evidence=state.evidence("rollback", *pair, reason, details, config.clock()))


def witness_once(
    config: WitnessConfig, client: httpx.Client | None = None, state: WitnessState | None = None
) -> RoundResult:
    """Run one round; raises EquivocationError or VerificationFailed (with evidence written) on a fork."""
    own_client, own_state = client is None, state is None
    http = client if client is not None else config.client()
    try:
        held = state if state is not None else WitnessState(config.state_dir)
        try:
            return _round(config, http, held)
        finally:
            if own_state:
                held.close()
    finally:
        if own_client:
            http.close()


def run_witness(
    config: WitnessConfig,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
) -> None:
    """Run a round every interval seconds until stop is set; returns only then, or raises on a fork or state trouble.

    Anything else (network, the log refusing or serving junk) is logged and retried with exponential backoff up
    to MAX_BACKOFF seconds; only evidence of a fork (VerificationFailed) or an unusable state directory
    (StorageError) ends the loop, since cosigning without durable state would make the witness unreliable.
    """
    stop = stop if stop is not None else threading.Event()
    state = WitnessState(config.state_dir)
    try:
        with config.client() as client:
            delay = interval
            while not stop.is_set():
                try:
                    result = _round(config, client, state)
                except (VerificationFailed, StorageError):
                    raise
                except ActasError as exc:
                    log.warning("witness round failed (%s): %s; next try in %.1f s", exc.code, exc, delay)
                    stop.wait(delay)
                    delay = min(2 * delay, max(MAX_BACKOFF, interval))
                    continue
                delay = interval
                cp = result.checkpoint
                level = logging.WARNING if result.status == "rollback" else logging.INFO
                log.log(level, "%s: size %d root %s", result.status, cp.size, b64encode(cp.root_hash))
                if on_round is not None:
                    on_round(result)
                stop.wait(interval)
    finally:
        state.close()
