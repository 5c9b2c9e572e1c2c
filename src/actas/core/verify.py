"""Verification of a published bundle as numbered steps (docs/verification.md), over an abstract reader.

The work splits in two. :class:`BundleChecker` checks one entry bundle on its own (its level-0 tile, every entry
canonical and of a known type, every signature, every acta's rules) and can run in any process.
:class:`Verification` consumes those results in log order and checks what needs history: higher tiles and the
root, the election entry, enrollment of each acta's key, conflicts, and the recomputed totals. Memory stays
bounded by the size of the election definition, not by the number of entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from actas.core import merkle
from actas.core.acta import check_rules, errors_of
from actas.core.b64 import b64encode
from actas.core.election import Election
from actas.core.entries import ActaEntry, ElectionEntry, EnrollEntry, parse_entry, signature_valid
from actas.core.keys import Verifier
from actas.core.note import Checkpoint, open_checkpoint
from actas.core.tally import Binding, ConflictRecord, Tally, results_files
from actas.core.tiles import (
    TILE_WIDTH,
    TileBuilder,
    TileCoord,
    decode_bundle,
    decode_tile,
    perfect_hash_from_tiles,
    tile_path,
    tiles_for_size,
)
from actas.core.verify_state import VerifiedState, device_digest
from actas.errors import ActasError

STEPS: tuple[tuple[int, str, str], ...] = (
    (1, "checkpoint", "checkpoint signed by the authority key"),
    (2, "election", "election definition parses"),
    (3, "tiles", "every tile and entry bundle consistent with the checkpoint root"),
    (4, "entries", "every entry canonical and of a known type"),
    (5, "election-entry", "entry 0 binds the election definition's digest"),
    (6, "enrollments", "every enrollment signed by the authority for known mesas"),
    (7, "actas", "every acta signed by a key enrolled for its mesa and passing the rules"),
    (8, "conflicts", "mesas with more than one different acta listed"),
    (9, "results", "totals recomputed from the log equal the published results files"),
)
S_CHECKPOINT, S_ELECTION, S_TILES, S_ENTRIES, S_ELECTION_ENTRY, S_ENROLL, S_ACTAS, S_CONFLICTS, S_RESULTS = range(1, 10)
_KIND = {ElectionEntry: "election", EnrollEntry: "enroll", ActaEntry: "acta"}
LOG = "log/"  # the tiled log's place inside a bundle
MAX_LISTED = 50  # failures kept per step; all are counted


class BundleReader(Protocol):
    """Reads one published file by its path relative to the bundle root."""

    def read(self, path: str) -> bytes:
        """The file's bytes; raises FetchError when it cannot be read."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    """One thing that does not hold: the step, the file (or entry) at fault, and why."""

    step: int
    where: str
    message: str


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
        for offset, data in enumerate(entries):
            if index * TILE_WIDTH + offset >= start:
                self._entry(result, index * TILE_WIDTH + offset, data, hashes[offset])
        return result

    def _entry(self, result: BundleResult, leaf: int, data: bytes, leaf_hash: bytes) -> None:
        where = f"entry {leaf}"
        try:
            parsed = parse_entry(data)
        except ActasError as exc:
            result.failures.append(Failure(S_ENTRIES, where, str(exc)))
            return
        entry = parsed.entry
        kind = _KIND[type(entry)]
        result.counts[kind] = result.counts.get(kind, 0) + 1
        if leaf == 0:
            result.first_type = kind
        signed = signature_valid(parsed, self.authority)
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
                leaf_hash[:8],
            )
            result.actas.append(record)


@dataclass
class Report:
    """The outcome of a verification: every step's verdict, failures, conflicts and counts."""

    origin: str = ""
    size: int = 0
    root_hash: bytes = b""
    failures: list[Failure] = field(default_factory=list)
    failure_counts: dict[int, int] = field(default_factory=dict)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    reached: int = 0  # the last step that was run
    since: int | None = None  # entries before this were verified earlier (incremental run)
    national: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every step ran and held."""
        return self.reached == len(STEPS) and not self.failure_counts

    def fail(self, failure: Failure) -> None:
        """Record a failure (listing at most MAX_LISTED per step)."""
        count = self.failure_counts.get(failure.step, 0)
        if count < MAX_LISTED:
            self.failures.append(failure)
        self.failure_counts[failure.step] = count + 1

    def step_ok(self, step: int) -> bool | None:
        """True or False for a step that ran, None for one that did not."""
        if step > self.reached:
            return None
        return step not in self.failure_counts

    def to_value(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "ok": self.ok,
            "origin": self.origin,
            "checkpoint": {"size": self.size, "root": b64encode(self.root_hash)},
            "steps": [
                {
                    "number": number,
                    "name": name,
                    "description": text,
                    "ok": self.step_ok(number),
                    "failures": self.failure_counts.get(number, 0),
                }
                for number, name, text in STEPS
            ],
            "failures": [{"step": f.step, "where": f.where, "message": f.message} for f in self.failures],
            "since": self.since,
            "conflicts": [{"mesa": c.mesa, "contest": c.contest, "leaves": list(c.leaves)} for c in self.conflicts],
            "counts": dict(self.counts),
            "national": self.national,
        }


ParallelMap = Callable[
    [Callable[[tuple[int, int, int]], BundleResult], Iterable[tuple[int, int, int]]], Iterator[BundleResult]
]


class Verification:
    """The sequential part of verification, fed bundle results in log order from ``state.size`` on."""

    def __init__(
        self,
        reader: BundleReader,
        election: Election,
        checkpoint: Checkpoint,
        report: Report,
        state: VerifiedState | None = None,
    ) -> None:
        self.reader = reader
        self.election = election
        self.checkpoint = checkpoint
        self.report = report
        self.state = state if state is not None else VerifiedState.empty(election)
        self.start = self.state.size
        self._wanted = {c for c in tiles_for_size(checkpoint.size) if c.level >= 1}
        edge = dict(self.state.edge)
        self._builder = TileBuilder(self.start, lambda coord: edge[tile_path(coord)])
        self._edge: dict[int, tuple[TileCoord, bytes]] = {}
        if self.state.rows:
            rows = self.state.rows
            self._tallies = [Tally(election, c, r) for c, r in zip(election.contests, rows, strict=True)]
        else:
            self._tallies = [Tally(election, c) for c in election.contests]
        for kind, count in self.state.counts.items():
            report.counts[kind] = report.counts.get(kind, 0) + count

    def consume(self, result: BundleResult) -> None:
        """Fold one bundle's result into the running checks."""
        report, state = self.report, self.state
        for failure in result.failures:
            report.fail(failure)
        for kind, count in result.counts.items():
            report.counts[kind] = report.counts.get(kind, 0) + count
        if result.index == 0 and self.start == 0:  # after --since, entry 0 was checked in an earlier run
            if result.first_type != "election":
                report.fail(Failure(S_ELECTION_ENTRY, "entry 0", "entry 0 is not an election entry"))
            state.election_digest = result.election_digest
        hashes = [result.leaf_hashes[i : i + 32] for i in range(0, len(result.leaf_hashes), 32)]
        if len(hashes) != result.width:  # the bundle was unreadable: keep positions with a placeholder
            hashes = [bytes(32)] * result.width
        skip = max(0, self.start - result.index * TILE_WIDTH)  # entries verified before --since
        for coord, data in self._builder.append(hashes[skip:]):
            self._edge[coord.level] = (coord, data)
            if coord in self._wanted:
                self._compare_tile(coord, data)
        # Enrollments take effect in log order: an acta counts only if its key was enrolled by an earlier entry.
        enrollments = iter(result.enrollments)
        pending = next(enrollments, None)
        for leaf, mesa, contest, device, options, null, blank, registered, prefix in result.actas:
            while pending is not None and pending[0] < leaf:
                for enrolled in pending[2]:
                    state.enroll(enrolled, pending[1])
                pending = next(enrollments, None)
            if not state.is_enrolled(mesa, device):
                message = f"acta for mesa {self.election.mesa_id(mesa)!r}: signed by a key not enrolled for it"
                report.fail(Failure(S_ACTAS, f"entry {leaf}", message))
                continue
            first, first_hash = state.first[contest], state.first_hash[contest]
            if first[mesa] < 0:
                first[mesa] = leaf
                first_hash[8 * mesa : 8 * mesa + 8] = prefix
                self._tallies[contest].add(mesa, options, null, blank, registered)
            elif bytes(first_hash[8 * mesa : 8 * mesa + 8]) == prefix:
                report.fail(Failure(S_ENTRIES, f"entry {leaf}", f"duplicate of entry {first[mesa]}"))
            elif prefix in state.conflict_hashes.get((mesa, contest), ()):  # a repeat of a later acta
                later = state.conflict_hashes[mesa, contest].index(prefix)
                earlier = state.conflicts[mesa, contest][1 + later]
                report.fail(Failure(S_ENTRIES, f"entry {leaf}", f"duplicate of entry {earlier}"))
            else:
                state.conflicts.setdefault((mesa, contest), [first[mesa]]).append(leaf)
                state.conflict_hashes.setdefault((mesa, contest), []).append(prefix)

        while pending is not None:
            for enrolled in pending[2]:
                state.enroll(enrolled, pending[1])
            pending = next(enrollments, None)

    def _compare_tile(self, coord: TileCoord, data: bytes) -> None:
        path = LOG + tile_path(coord)
        try:
            published = self.reader.read(path)
        except ActasError as exc:
            self.report.fail(Failure(S_TILES, path, str(exc)))
            return
        if published != data:
            self.report.fail(Failure(S_TILES, path, "differs from the tile recomputed from the entries"))

    def finish(self) -> None:
        """Check the root, the election entry and the published results files; update the state."""
        report, state = self.report, self.state
        if self._builder.size != self.checkpoint.size or self._builder.root() != self.checkpoint.root_hash:
            report.fail(Failure(S_TILES, "log/checkpoint", "root recomputed from the entries differs"))
        if state.election_digest is None and self.checkpoint.size > 0:
            report.fail(Failure(S_ELECTION_ENTRY, "entry 0", "no election entry"))
        elif state.election_digest is not None and state.election_digest != self.election.digest:
            message = "digest differs from the one logged in entry 0"
            report.fail(Failure(S_ELECTION_ENTRY, "election.json", message))
        report.reached = S_CONFLICTS
        contests = self.election.contests
        report.conflicts = [
            ConflictRecord(self.election.mesa_id(mesa), contests[contest].id, tuple(leaves))
            for (mesa, contest), leaves in sorted(state.conflicts.items(), key=lambda kv: kv[1][0])
        ]
        binding = Binding(self.checkpoint.origin, self.checkpoint.size, self.checkpoint.root_hash)
        expected = results_files(self._tallies, binding, report.conflicts)
        for path, data in expected.items():
            try:
                published = self.reader.read(path)
            except ActasError as exc:
                report.fail(Failure(S_RESULTS, path, str(exc)))
                continue
            if published != data:
                report.fail(Failure(S_RESULTS, path, _first_difference(published, data)))
        for tally in self._tallies:
            report.national[tally.contest.id] = tally.national()
        report.reached = S_RESULTS
        # The right edge at this size: tiles this run made, and the earlier edge of levels it did not touch.
        edge = {**state.edge, **{tile_path(coord): data for coord, data in self._edge.values()}}
        final = (tile_path(c) for c in tiles_for_size(self.checkpoint.size) if c.level >= 0 and c.is_partial)
        state.edge = {path: edge[path] for path in final if path in edge}
        state.size, state.root_hash = self.checkpoint.size, self.checkpoint.root_hash
        state.rows = [tally.rows for tally in self._tallies]
        state.counts = dict(report.counts)


def _first_difference(published: bytes, expected: bytes) -> str:
    for i, (a, b) in enumerate(zip(published, expected, strict=False)):
        if a != b:
            return f"differs from the totals recomputed from the log at byte {i}"
    return f"differs from the recomputed totals in length ({len(published)} vs {len(expected)} bytes)"


StateLoader = Callable[[Checkpoint, Election], "VerifiedState | None"]


def _consistent(reader: BundleReader, old: Checkpoint, new: Checkpoint) -> str | None:
    """None when ``new`` is an append-only extension of ``old``, else why not."""
    if old.origin != new.origin:
        return f"--since checkpoint is for {old.origin!r}"
    if old.size > new.size:
        return f"--since checkpoint has {old.size} entries, more than this one's {new.size}"
    if old.size == 0:
        return None if old.root_hash == merkle.EMPTY_ROOT else "--since checkpoint of size 0 has a non-empty root"

    def read_tile(coord: TileCoord) -> bytes:
        return reader.read(LOG + tile_path(coord))

    try:
        proof = merkle.consistency_proof(old.size, new.size, perfect_hash_from_tiles(read_tile, new.size))
        merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except ActasError as exc:
        return f"not an append-only extension of the --since checkpoint: {exc}"
    return None


def _check_key_file(reader: BundleReader, authority: Verifier, report: Report) -> None:
    """The published key file must hold the key the checkpoint was verified with."""
    try:
        published = reader.read("keys/authority.vkey")
    except ActasError as exc:
        report.fail(Failure(S_CHECKPOINT, "keys/authority.vkey", str(exc)))
        return
    if published != (str(authority) + "\n").encode():
        report.fail(Failure(S_CHECKPOINT, "keys/authority.vkey", "differs from the authority key verified with"))


def verify_bundle(
    reader: BundleReader,
    authority: Verifier,
    parallel_map: ParallelMap | None = None,
    check_bundle: Callable[[tuple[int, int, int]], BundleResult] | None = None,
    progress: Callable[[int, int], None] | None = None,
    since: bytes | None = None,
    load_state: StateLoader | None = None,
    election: Election | None = None,
    election_json: bytes | None = None,
) -> tuple[Report, VerifiedState | None]:
    """Run every step over a bundle; returns the report and, when it ran to the end, the state to save.

    ``parallel_map`` and ``check_bundle`` let a caller spread the per-bundle work (steps 3-7) over processes.
    With ``since`` (an earlier signed checkpoint) the log must be consistent with it, and when ``load_state``
    has the state saved for that checkpoint only the entries after it are read.
    """
    report = Report()
    where = "log/checkpoint"
    try:
        checkpoint = open_checkpoint(reader.read(where), authority)
        where = "--since checkpoint"
        old = open_checkpoint(since, authority) if since is not None else None
    except ActasError as exc:
        report.fail(Failure(S_CHECKPOINT, where, str(exc)))
        report.reached = S_CHECKPOINT
        return report, None
    report.origin, report.size, report.root_hash = checkpoint.origin, checkpoint.size, checkpoint.root_hash
    if checkpoint.origin != authority.name:
        report.fail(Failure(S_CHECKPOINT, "log/checkpoint", f"origin differs from the key name {authority.name!r}"))
    _check_key_file(reader, authority, report)
    try:
        # A caller may pass the definition bytes it read and parsed (the same bytes its workers use).
        if election is None or election_json is None:
            election_json = reader.read("election.json")
            election = Election.from_json(election_json)
    except ActasError as exc:
        report.fail(Failure(S_ELECTION, "election.json", str(exc)))
        report.reached = S_ELECTION
        return report, None
    if election_json != election.to_canonical():
        report.fail(Failure(S_ELECTION, "election.json", "not the canonical encoding of the definition"))
    if election.origin != checkpoint.origin:
        report.fail(Failure(S_ELECTION, "election.json", "origin differs from the checkpoint's"))
    state: VerifiedState | None = None
    if old is not None:
        problem = _consistent(reader, old, checkpoint)
        if problem is not None:
            report.fail(Failure(S_TILES, "log/checkpoint", problem))
        elif load_state is not None:
            state = load_state(old, election)
            needed = {tile_path(c) for c in tiles_for_size(old.size) if c.level >= 0 and c.is_partial}
            if state is not None and (
                (state.size, state.root_hash) != (old.size, old.root_hash) or not needed <= state.edge.keys()
            ):
                state = None
        report.since = old.size if state is not None else None
    verification = Verification(reader, election, checkpoint, report, state)
    start = verification.start
    bundles = [
        (c.index, c.width, start)
        for c in tiles_for_size(checkpoint.size)
        if c.level == -1 and c.index * TILE_WIDTH + c.width > start
    ]
    if check_bundle is None:
        checker = BundleChecker(reader, election, authority)

        def check_bundle(job: tuple[int, int, int]) -> BundleResult:
            return checker.check(*job)

    mapper: ParallelMap = parallel_map if parallel_map is not None else map
    done = start
    for result in mapper(check_bundle, bundles):
        verification.consume(result)
        done = result.index * TILE_WIDTH + result.width
        if progress is not None:
            progress(done, checkpoint.size)
    report.reached = S_ACTAS
    verification.finish()
    return report, verification.state
