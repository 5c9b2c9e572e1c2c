"""Checks of one entry bundle on its own: its level-0 tile, every entry, every signature and acta rule.

Bundles are independent of each other, so these checks run in any process and in any order; what needs the
log's history is left to :class:`actas.core.verify.Verification`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from actas.core import merkle
from actas.core.acta import check_rules, errors_of
from actas.core.election import Election
from actas.core.entries import (
    ActaEntry,
    ElectionEntry,
    EnrollEntry,
    ObservationEntry,
    ParsedEntry,
    parse_entry,
    signatures_valid,
)
from actas.core.keys import Verifier
from actas.core.observation import observed_copy
from actas.core.tiles import TILE_WIDTH, TileCoord, decode_bundle, decode_tile, tile_path
from actas.core.verify_report import S_ACTAS, S_ELECTION_ENTRY, S_ENROLL, S_ENTRIES, S_TILES, Failure
from actas.core.verify_state import PREFIX, device_digest
from actas.errors import ActasError

_KIND = {ElectionEntry: "election", EnrollEntry: "enroll", ActaEntry: "acta", ObservationEntry: "observation"}
LOG = "log/"  # the tiled log's place inside a bundle


class BundleReader(Protocol):
    """Reads one published file by its path relative to the bundle root."""

    def read(self, path: str) -> bytes:
        """The file's bytes; raises FetchError when it cannot be read."""
        ...


@dataclass(slots=True)
class BundleResult:
    """What one entry bundle contributed; small and picklable."""

    index: int
    width: int
    leaf_hashes: bytes = b""
    failures: list[Failure] = field(default_factory=list)
    election_digest: bytes | None = None
    first_type: str | None = None
    # (leaf, device digest, mesas)
    enrollments: list[tuple[int, bytes, tuple[int, ...]]] = field(default_factory=list)
    # (leaf, mesa index, contest index, device digest, options, null, blank, registered, entry hash prefix)
    actas: list[tuple[int, int, int, bytes, tuple[int, ...], int, int, int, bytes]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class BundleChecker:
    """Checks entry bundles independently of each other."""

    def __init__(self, reader: BundleReader, election: Election, authority: Verifier) -> None:
        self.reader = reader
        self.election = election
        self.authority = authority
        self._contests = {c.id: i for i, c in enumerate(election.contests)}

    def check(self, index: int, width: int, start: int = 0) -> BundleResult:
        """Check entry bundle ``index`` of ``width`` entries against its level-0 tile (entries < start: hash only)."""
        result = BundleResult(index, width)
        bundle_path = LOG + tile_path(TileCoord(-1, index, width))
        level0_path = LOG + tile_path(TileCoord(0, index, width))
        try:
            entries = decode_bundle(self.reader.read(bundle_path), width)
        except ActasError as exc:
            result.failures.append(Failure(S_TILES, bundle_path, str(exc)))
            return result
        hashes = [merkle.leaf_hash(e) for e in entries]
        result.leaf_hashes = b"".join(hashes)
        try:
            tile = self.reader.read(level0_path)
            published = decode_tile(tile, width)
            for i, (want, got) in enumerate(zip(hashes, published, strict=True)):
                if want != got:
                    message = f"hash {i} differs from entry {index * TILE_WIDTH + i} of {bundle_path}"
                    result.failures.append(Failure(S_TILES, level0_path, message))
                    break
        except ActasError as exc:
            result.failures.append(Failure(S_TILES, level0_path, str(exc)))
        first = max(start - index * TILE_WIDTH, 0)
        parsed: list[ParsedEntry | ActasError] = []
        for data in entries[first:]:
            try:
                parsed.append(parse_entry(data))
            except ActasError as exc:
                parsed.append(exc)
        # Every signature of the bundle in one run: verification is fastest back to back (signatures_valid).
        valid = iter(signatures_valid([p for p in parsed if not isinstance(p, ActasError)], self.authority))
        for offset, item in enumerate(parsed, start=first):
            leaf = index * TILE_WIDTH + offset
            if isinstance(item, ActasError):
                result.failures.append(Failure(S_ENTRIES, f"entry {leaf}", str(item)))
            else:
                self._entry(result, leaf, item, next(valid), hashes[offset])
        return result

    def _entry(self, result: BundleResult, leaf: int, parsed: ParsedEntry, signed: bool, leaf_hash: bytes) -> None:
        where = f"entry {leaf}"
        entry = parsed.entry
        kind = _KIND[type(entry)]
        result.counts[kind] = result.counts.get(kind, 0) + 1
        if leaf == 0:
            result.first_type = kind
        if isinstance(entry, ElectionEntry):
            if not signed:
                result.failures.append(Failure(S_ELECTION_ENTRY, where, "authority signature does not verify"))
            elif entry.origin != self.election.origin:
                result.failures.append(Failure(S_ELECTION_ENTRY, where, f"for another election {entry.origin!r}"))
            elif leaf == 0:
                result.election_digest = entry.digest
            else:
                result.failures.append(Failure(S_ELECTION_ENTRY, where, "election entry other than entry 0"))
        elif isinstance(entry, EnrollEntry):
            mesas = [self.election.mesa_index(m) for m in entry.mesas]
            if not signed:
                result.failures.append(Failure(S_ENROLL, where, "authority signature does not verify"))
            elif entry.election != self.election.origin:
                result.failures.append(Failure(S_ENROLL, where, f"for another election {entry.election!r}"))
            elif any(m is None for m in mesas):
                result.failures.append(Failure(S_ENROLL, where, "names a mesa not in the definition"))
            else:
                known = tuple(m for m in mesas if m is not None)
                result.enrollments.append((leaf, device_digest(entry.device), known))
        elif isinstance(entry, ObservationEntry):
            if not signed:
                message = f"observation of mesa {entry.mesa!r}: witness signature does not verify"
                result.failures.append(Failure(S_ACTAS, where, message))
                return
            try:
                observed_copy(entry, self.election)
            except ActasError as exc:
                result.failures.append(Failure(S_ACTAS, where, f"observation of mesa {entry.mesa!r}: {exc}"))
        else:
            assert isinstance(entry, ActaEntry)
            acta = entry.acta
            if not signed:
                message = f"acta for mesa {acta.mesa!r}: device signature does not verify"
                result.failures.append(Failure(S_ACTAS, where, message))
                return
            mesa = self.election.mesa_index(acta.mesa)
            broken = errors_of(check_rules(acta, self.election, mesa))
            if broken:
                rules = "; ".join(f"{f.rule}: {f.message}" for f in broken)
                result.failures.append(Failure(S_ACTAS, where, f"acta for mesa {acta.mesa!r} breaks {rules}"))
                return
            assert mesa is not None  # the known-mesa rule passed
            record = (
                leaf,
                mesa,
                self._contests[acta.contest],
                device_digest(acta.device),
                acta.options,
                acta.null,
                acta.blank,
                acta.registered,
                leaf_hash[:PREFIX],
            )
            result.actas.append(record)
