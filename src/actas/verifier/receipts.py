"""Did the log keep its promises? Check a station's receipts against a signed checkpoint.

Steps, for receipts R and a log read through a reader (a bundle directory, a mirror or the service's URL):

1. Read ``log/checkpoint`` and open it with the authority key; note the time it was read.
2. Check each receipt: signed by the authority, for the authority's origin. Those that fail are INVALID.
3. Over HTTP, ask ``v1/proof/<leaf hex>`` for each valid receipt. A tlog-proof whose checkpoint is the one of
   step 1 (same size and root, signed) and whose inclusion proof verifies for the receipt's leaf hash is
   conclusive: INCLUDED. Any other answer (none, another checkpoint, a bad proof) leaves the receipt open.
4. For receipts still open, and always for a directory, read every entry bundle up to the checkpoint's size,
   recompute the Merkle root from the entries' leaf hashes and require it to equal the checkpoint's root; so the
   leaves looked at are exactly the ones the authority signed. A mismatch fails the check (VerificationFailed):
   damaged or altered tiles prove neither inclusion nor omission.
5. An open receipt whose leaf is among them is INCLUDED; otherwise it is PENDING when issued within the grace
   period before step 1, and MISSING after it. A missing receipt's evidence is the receipt (signed by the
   authority: it promised inclusion) and the checkpoint note (signed by the authority: a tree without the leaf).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from actas.core.b64 import b64encode
from actas.core.keys import Verifier
from actas.core.merkle import Frontier, leaf_hash, verify_inclusion
from actas.core.note import Checkpoint, open_checkpoint
from actas.core.proof import TlogProof
from actas.core.receipt import Receipt, parse_receipt
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileCoord, decode_bundle, tile_path
from actas.core.verify import BundleReader
from actas.errors import ActasError, FetchError, MalformedError, VerificationFailed
from actas.verifier.readers import HttpReader

Status = Literal["included", "pending", "missing", "invalid"]
DEFAULT_GRACE = 60.0
LOG = "log/"


@dataclass(frozen=True)
class ReceiptResult:
    """What became of one receipt; index and how (proof or entries) when included."""

    receipt: Receipt
    status: Status
    index: int | None = None
    how: str = ""
    detail: str = ""

    def evidence(self, checkpoint_note: bytes) -> dict[str, Any]:
        """The signed objects that, together, show the authority promised inclusion and signed a tree without it."""
        canonical = self.receipt.to_bytes()
        return {
            "leaf_hash": self.receipt.leaf_hash.hex(),
            "receipt_time": self.receipt.time,
            "receipt": canonical.decode("utf-8"),
            "receipt_base64": b64encode(canonical),
            "checkpoint": checkpoint_note.decode("utf-8"),
        }


@dataclass
class ReceiptsReport:
    """The checkpoint checked against, when it was read, and one result per receipt."""

    checkpoint: Checkpoint
    checkpoint_note: bytes
    fetched_at: float
    grace: float
    results: list[ReceiptResult] = field(default_factory=list)
    entries_read: int = 0  # leaves read from entry bundles (0 when every receipt had a verified proof)

    def of(self, status: Status) -> list[ReceiptResult]:
        """The results with a status."""
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        """Whether no receipt is missing or invalid (pending ones are not yet decided)."""
        return not self.of("missing") and not self.of("invalid")

    def to_value(self) -> dict[str, Any]:
        """The report as a JSON value, with the full evidence of every missing receipt."""
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "checkpoint": {"origin": cp.origin, "size": cp.size, "root": b64encode(cp.root_hash)},
            "fetched_at": self.fetched_at,
            "grace": self.grace,
            "entries_read": self.entries_read,
            "counts": {s: len(self.of(s)) for s in ("included", "pending", "missing", "invalid")},
            "receipts": [
                {"leaf_hash": r.receipt.leaf_hash.hex(), "time": r.receipt.time, "status": r.status}
                | ({"index": r.index, "how": r.how} if r.index is not None else {})
                | ({"detail": r.detail} if r.detail else {})
                for r in self.results
            ],
            "evidence": [r.evidence(self.checkpoint_note) for r in self.of("missing")],
        }


MAX_SKEW = 600  # seconds a receipt may be dated ahead of this machine's clock


def check_receipts(
    receipts: Sequence[Receipt],
    reader: BundleReader,
    authority: Verifier,
    *,
    grace: float = DEFAULT_GRACE,
    now: Callable[[], float] | None = None,
) -> ReceiptsReport:
    """Establish, for each receipt, inclusion in the log's current signed checkpoint (steps in the docstring)."""
    clock = now or time.time
    # Step 1.
    note = reader.read(LOG + "checkpoint")
    fetched_at = clock()
    checkpoint = open_checkpoint(note, authority)
    if checkpoint.origin != authority.name:
        raise VerificationFailed(f"log/checkpoint: origin {checkpoint.origin!r} is not the key's {authority.name!r}")
    report = ReceiptsReport(checkpoint, note, fetched_at, grace)
    # Step 2.
    settled: dict[int, ReceiptResult] = {}
    for n, receipt in enumerate(receipts):
        try:
            receipt.check(authority)
        except ActasError as exc:
            settled[n] = ReceiptResult(receipt, "invalid", detail=str(exc))
            continue
        if receipt.time > fetched_at + MAX_SKEW:
            # A receipt dated in the future would stay "pending" for ever and never become evidence.
            detail = f"dated {receipt.time - fetched_at:.0f} s after the checkpoint was read"
            settled[n] = ReceiptResult(receipt, "invalid", detail=detail)
    open_ = [n for n in range(len(receipts)) if n not in settled]
    # Step 3.
    if isinstance(reader, HttpReader):
        for n in open_:
            found = _by_proof(reader, receipts[n].leaf_hash, checkpoint, authority)
            if found is not None:
                settled[n] = ReceiptResult(receipts[n], "included", found, "proof")
        open_ = [n for n in open_ if n not in settled]
    # Steps 4 and 5.
    if open_:
        wanted = {receipts[n].leaf_hash for n in open_}
        positions, report.entries_read = _scan_entries(reader, checkpoint, wanted)
        for n in open_:
            receipt = receipts[n]
            index = positions.get(receipt.leaf_hash)
            if index is not None:
                settled[n] = ReceiptResult(receipt, "included", index, "entries")
            elif fetched_at - receipt.time <= grace:
                detail = f"issued {fetched_at - receipt.time:.0f} s before the checkpoint was read"
                settled[n] = ReceiptResult(receipt, "pending", detail=detail)
            else:
                detail = f"not among the {checkpoint.size} leaves of the checkpoint read {_age(receipt, fetched_at)}"
                settled[n] = ReceiptResult(receipt, "missing", detail=detail)
    report.results = [settled[n] for n in range(len(receipts))]
    return report


def _age(receipt: Receipt, fetched_at: float) -> str:
    return f"{fetched_at - receipt.time:.0f} s after the receipt was issued"


def _by_proof(reader: HttpReader, leaf: bytes, checkpoint: Checkpoint, authority: Verifier) -> int | None:
    """The leaf's index if the service's tlog-proof verifies against this very checkpoint, else None."""
    try:
        proof = TlogProof.parse(reader.read(f"v1/proof/{leaf.hex()}"))
        proved = open_checkpoint(proof.checkpoint_note, authority)
        if proved.size != checkpoint.size or proved.root_hash != checkpoint.root_hash:
            return None  # the log moved on since step 1; the entries decide
        verify_inclusion(leaf, proof.index, checkpoint.size, proof.proof_hashes, checkpoint.root_hash)
    except ActasError:
        return None  # not (yet) provable this way: fall back to reading the entries
    return proof.index


def _scan_entries(reader: BundleReader, checkpoint: Checkpoint, wanted: set[bytes]) -> tuple[dict[bytes, int], int]:
    """Where each wanted leaf is among all leaves of the checkpoint, after checking they give its root."""
    frontier = Frontier()
    positions: dict[bytes, int] = {}
    full, width = divmod(checkpoint.size, TILE_WIDTH)
    bundles = [(i, TILE_WIDTH) for i in range(full)] + ([(full, width)] if width else [])
    for index, count in bundles:
        entries = _read_bundle(reader, index, count)
        for offset, entry in enumerate(entries):
            leaf = leaf_hash(entry)
            frontier.append(leaf)
            if leaf in wanted and leaf not in positions:
                positions[leaf] = index * TILE_WIDTH + offset
    if frontier.root() != checkpoint.root_hash:
        raise VerificationFailed(
            f"log/tile/entries: the {checkpoint.size} entries give root {b64encode(frontier.root())}, not the "
            f"checkpoint's {b64encode(checkpoint.root_hash)}: the published log is damaged or altered, so it "
            "shows neither inclusion nor omission"
        )
    return positions, frontier.size


def _read_bundle(reader: BundleReader, index: int, count: int) -> list[bytes]:
    """Entry bundle index holding count entries; a partial one may be read from its full tile (C2SP tlog-tiles)."""
    path = LOG + tile_path(TileCoord(ENTRIES, index, count))
    try:
        data = reader.read(path)
    except FetchError:
        if count == TILE_WIDTH:
            raise
        # The partial bundle may be gone once the log has grown; the full one starts with the same entries.
        path = LOG + tile_path(TileCoord(ENTRIES, index, TILE_WIDTH))
        data = reader.read(path)
        try:
            return decode_bundle(data, TILE_WIDTH)[:count]
        except MalformedError as exc:
            raise VerificationFailed(f"{path}: {exc}") from None
    try:
        return decode_bundle(data, count)
    except MalformedError as exc:
        raise VerificationFailed(f"{path}: {exc}") from None


@dataclass(frozen=True)
class ReceiptFile:
    """A receipt file and what it holds, or why it could not be read."""

    path: Path
    receipt: Receipt | None
    error: str = ""


def load_receipt_files(paths: Iterable[Path]) -> list[ReceiptFile]:
    """Every ``*.receipt`` file named, or found under a named directory, parsed strictly."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.receipt")) if path.is_dir() else [path])
    loaded: list[ReceiptFile] = []
    for path in files:
        try:
            loaded.append(ReceiptFile(path, parse_receipt(path.read_bytes())))
        except ActasError as exc:
            loaded.append(ReceiptFile(path, None, str(exc)))
        except OSError as exc:
            loaded.append(ReceiptFile(path, None, f"cannot be read ({exc.strerror})"))
    return loaded
