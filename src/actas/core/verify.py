"""Verification of a published bundle as numbered steps (docs/verification.md), over an abstract reader.

The work splits in two. :class:`BundleChecker` checks one entry bundle on its own (its level-0 tile, every entry
canonical and of a known type, every signature, every acta's rules) and can run in any process.
:class:`Verification` consumes those results in log order and checks what needs history: higher tiles and the
root, the election entry, enrollment of each acta's key, conflicts, and the recomputed totals. Memory stays
bounded by the size of the election definition, not by the number of entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from actas.core import merkle
from actas.core.bundle_check import LOG, BundleChecker, BundleReader, BundleResult
from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.note import Checkpoint, open_checkpoint, open_signed_checkpoint
from actas.core.tally import Binding, ConflictRecord, Tally, iter_results_files
from actas.core.tiles import TILE_WIDTH, TileBuilder, TileCoord, perfect_hash_from_tiles, tile_path, tiles_for_size
from actas.core.verify_report import (
    MAX_LISTED,
    S_ACTAS,
    S_CHECKPOINT,
    S_CONFLICTS,
    S_ELECTION,
    S_ELECTION_ENTRY,
    S_ENROLL,
    S_ENTRIES,
    S_RESULTS,
    S_TILES,
    STEPS,
    Failure,
    Report,
)
from actas.core.verify_state import PREFIX, VerifiedState
from actas.core.witness_check import check_witnesses
from actas.errors import ActasError

__all__ = [
    "MAX_LISTED",
    "STEPS",
    "S_ACTAS",
    "S_CHECKPOINT",
    "S_CONFLICTS",
    "S_ELECTION",
    "S_ELECTION_ENTRY",
    "S_ENROLL",
    "S_ENTRIES",
    "S_RESULTS",
    "S_TILES",
    "BundleChecker",
    "BundleReader",
    "BundleResult",
    "Failure",
    "Report",
    "Verification",
    "load_definition",
    "verify_bundle",
]


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
                first_hash[PREFIX * mesa : PREFIX * mesa + PREFIX] = prefix
                self._tallies[contest].add(mesa, options, null, blank, registered)
            elif bytes(first_hash[PREFIX * mesa : PREFIX * mesa + PREFIX]) == prefix:
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
        read_chunks = getattr(self.reader, "read_chunks", None)  # readers that can stream, do
        for path, chunks in iter_results_files(self._tallies, binding, report.conflicts):
            try:
                published = read_chunks(path) if read_chunks is not None else iter([self.reader.read(path)])
                problem = _compare_streams(published, chunks)
            except ActasError as exc:
                report.fail(Failure(S_RESULTS, path, str(exc)))
                continue
            if problem is not None:
                report.fail(Failure(S_RESULTS, path, problem))
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


def load_definition(data: bytes) -> tuple[Election, bool]:
    """Parse election.json and tell whether its bytes are exactly the canonical encoding (compared in chunks)."""
    election = Election.from_json(data)
    return election, _compare_streams(iter([data]), election.iter_canonical()) is None


def _compare_streams(published: Iterator[bytes], expected: Iterator[bytes]) -> str | None:
    """None when two byte streams are equal, else where they first differ; chunk boundaries may differ."""
    offset = 0  # bytes of the stream already compared
    buffer, at = b"", 0  # published bytes not yet compared are buffer[at:]
    for chunk in expected:
        while len(buffer) - at < len(chunk):
            more = next(published, None)
            if more is None:
                break
            buffer, at = buffer[at:] + more, 0
        part = buffer[at : at + len(chunk)]
        if part != chunk:
            return _difference(offset, part, chunk)
        at += len(chunk)
        offset += len(chunk)
    extra = len(buffer) - at + sum(len(more) for more in published)
    if extra:
        return f"differs from the recomputed totals in length ({extra} bytes more than the {offset} expected)"
    return None


def _difference(offset: int, part: bytes, chunk: bytes) -> str:
    for i, (a, b) in enumerate(zip(part, chunk, strict=False)):
        if a != b:
            return f"differs from the totals recomputed from the log at byte {offset + i}"
    return f"differs from the recomputed totals in length (ends at byte {offset + len(part)})"


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
    definition: tuple[Election, bool] | None = None,
    witnesses: Sequence[Verifier] = (),
    min_witnesses: int | None = None,
) -> tuple[Report, VerifiedState | None]:
    """Run every step over a bundle; returns the report and, when it ran to the end, the state to save.

    ``parallel_map`` and ``check_bundle`` let a caller spread the per-bundle work (steps 3-7) over processes.
    With ``since`` (an earlier signed checkpoint) the log must be consistent with it, and when ``load_state``
    has the state saved for that checkpoint only the entries after it are read. With ``witnesses``, at least
    ``min_witnesses`` of them (default: all) must have cosigned ``log/checkpoint`` (step 1).
    """
    report = Report()
    where = "log/checkpoint"
    try:
        signed = open_signed_checkpoint(reader.read(where), authority)
        checkpoint = signed.checkpoint
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
    if witnesses or min_witnesses:
        report.witnesses = check_witnesses(signed.note, witnesses, min_witnesses)
        problem = report.witnesses.problem()
        if problem is not None:
            report.fail(Failure(S_CHECKPOINT, "log/checkpoint", problem))
    try:
        # A caller may pass the definition it read with load_definition (the one its workers use).
        election, canonical_bytes = definition or load_definition(reader.read("election.json"))
    except ActasError as exc:
        report.fail(Failure(S_ELECTION, "election.json", str(exc)))
        report.reached = S_ELECTION
        return report, None
    if not canonical_bytes:
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
