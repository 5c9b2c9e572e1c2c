"""Everything the results site shows, read from a data directory's log at its latest checkpoint.

One pass over the log collects each mesa's actas (with their rule findings, signature and enrollment), the
witness copies and, per area, the last log entry that changed what its page shows. That last point makes
pages stable: an area page states the log position its figures are complete at, so a page whose figures did
not change is byte-identical after a new checkpoint and a rebuild rewrites only the pages that changed.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from actas.core.acta import Finding, check_rules, errors_of
from actas.core.crosscheck import MesaCheck, crosscheck
from actas.core.election import Election
from actas.core.entries import ActaEntry, EnrollEntry, ObservationEntry, ParsedEntry, parse_entry, signature_valid
from actas.core.keys import Verifier
from actas.core.tally import Tally, area_value, expected_per_area
from actas.publish.results import Results

TURNOUT_BINS = 20
HISTORY_POINTS = 24

Status = str  # "counted", "conflict" (a later, different acta of a counted mesa), "rule-error"


@dataclass(frozen=True, slots=True)
class LoggedActa:
    """One acta entry as logged, with what the site says about it."""

    leaf: int
    entry: ActaEntry
    sha256: str
    status: Status
    findings: tuple[Finding, ...]
    signature_ok: bool
    enroll_leaf: int | None  # the first enrollment of its device for its mesa, if any

    @property
    def device_id(self) -> str:
        """The signing device's key name and id, as people compare keys."""
        name, key_id, _ = self.entry.acta.device.split("+", 2)
        return f"{name}+{key_id}"


@dataclass(slots=True)
class MesaRecord:
    """A mesa with its actas per contest (log order) and its cross-check verdicts."""

    index: int
    id: str
    area: int
    registered: int
    actas: dict[str, list[LoggedActa]] = field(default_factory=dict)
    checks: dict[str, MesaCheck] = field(default_factory=dict)
    last_leaf: int = -1  # the last log entry that changes this mesa's page


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """National figures when the log had ``size`` entries."""

    size: int
    actas: tuple[int, ...]  # counted actas per contest
    votes: tuple[tuple[int, ...], ...]  # per contest, per option


@dataclass
class SiteData:
    """The log read once for the site: results, mesas, per-area coverage, turnout and history."""

    results: Results
    mesas: list[MesaRecord]
    area_last: array[int]  # per area, the last log entry that changes its page
    area_copies: list[array[int]]  # per contest, per area: witness copies counted (descendants included)
    turnout: list[array[int]]  # per contest: TURNOUT_BINS counts per area (descendants included)
    history: list[HistoryPoint]
    expected_mesas: array[int]
    expected_registered: array[int]
    observed: bool  # whether any witness copy is logged (the cross-check runs only then)
    checkpoint_note: bytes = b""  # the published checkpoint with the witnesses' cosignatures

    @property
    def election(self) -> Election:
        """The election definition."""
        return self.results.election

    @property
    def last_leaf(self) -> int:
        """The last log entry that changes the national page."""
        return max((self.area_last[i] for i, a in enumerate(self.election.areas) if a.parent < 0), default=-1)

    def area_totals(self, contest: int, area: int | None) -> dict[str, object]:
        """An area's totals (None: the nation) as in the published results files."""
        election, tally = self.election, self.results.tallies[contest]
        if area is None:
            roots = [i for i, a in enumerate(election.areas) if a.parent < 0]
            mesas = sum(self.expected_mesas[i] for i in roots)
            registered = sum(self.expected_registered[i] for i in roots)
            return area_value("", election.title, tally.national(), mesas, registered)
        a = election.areas[area]
        return area_value(a.code, a.name, tally.row(area), self.expected_mesas[area], self.expected_registered[area])

    def turnout_bins(self, contest: int, area: int | None) -> list[int]:
        """Counted actas per turnout bin (TURNOUT_BINS equal bins over 0–100 %) of an area or the nation."""
        bins = self.turnout[contest]
        areas = [i for i, a in enumerate(self.election.areas) if a.parent < 0] if area is None else [area]
        return [sum(bins[i * TURNOUT_BINS + b] for i in areas) for b in range(TURNOUT_BINS)]

    def copies(self, contest: int, area: int | None) -> int:
        """Witness copies of a contest's actas counted in an area or the nation (by the cross-check)."""
        counts = self.area_copies[contest]
        if area is None:
            return sum(counts[i] for i, a in enumerate(self.election.areas) if a.parent < 0)
        return counts[area]


class _Enrollments:
    """Which enrollment entry first enrolled a device key for a mesa."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, str], int] = {}

    def add(self, leaf: int, entry: EnrollEntry) -> None:
        device = str(entry.device)
        for mesa in entry.mesas:
            self._first.setdefault((device, mesa), leaf)

    def leaf(self, device: str, mesa: str) -> int | None:
        return self._first.get((device, mesa))


def _bin(cast: int, registered: int) -> int:
    if registered <= 0:
        return TURNOUT_BINS - 1
    return min(TURNOUT_BINS - 1, max(0, cast * TURNOUT_BINS // registered))


def collect_site_data(results: Results, entries: Iterable[bytes]) -> SiteData:
    """Read the log's entries (in order, up to the checkpoint) into everything the site shows."""
    election = results.election
    contests = {c.id: i for i, c in enumerate(election.contests)}
    mesas = [
        MesaRecord(i, election.mesa_id(i), election.mesa_area(i), election.mesa_registered(i))
        for i in range(election.mesa_count)
    ]
    areas = len(election.areas)
    last = array("q", [-1] * areas)
    turnout = [array("q", bytes(8 * areas * TURNOUT_BINS)) for _ in election.contests]
    enrollments = _Enrollments()
    counted: set[tuple[str, str]] = set()
    size = results.checkpoint.size
    marks = sorted({max(1, size * k // HISTORY_POINTS) for k in range(1, HISTORY_POINTS + 1)}) if size else []
    running = [Tally(election, c) for c in election.contests]
    history: list[HistoryPoint] = []
    observed = False
    for leaf, data in enumerate(entries):
        parsed = parse_entry(data)
        entry = parsed.entry
        if isinstance(entry, EnrollEntry):
            enrollments.add(leaf, entry)
            for mesa_id in entry.mesas:
                index = election.mesa_index(mesa_id)
                if index is not None:
                    mesas[index].last_leaf = leaf
        elif isinstance(entry, ActaEntry):
            _add_acta(
                election, contests, mesas, enrollments, counted, running, turnout, results.authority, leaf, data, parsed
            )
        elif isinstance(entry, ObservationEntry):
            observed = True
            index = election.mesa_index(entry.mesa)
            if index is not None:
                mesas[index].last_leaf = leaf
        if marks and leaf + 1 == marks[0]:
            marks.pop(0)
            history.append(_history_point(leaf + 1, running))
    for mesa in mesas:
        if mesa.last_leaf > last[mesa.area]:
            last[mesa.area] = mesa.last_leaf
    _roll_up(election, last, turnout)
    expected_mesas, expected_registered = expected_per_area(election)
    copies = [array("q", bytes(8 * areas)) for _ in election.contests]  # filled by attach_crosscheck
    return SiteData(results, mesas, last, copies, turnout, history, expected_mesas, expected_registered, observed)


def attach_crosscheck(site: SiteData, entries: Iterable[bytes]) -> None:
    """Add the cross-check verdict of every mesa with a witness copy (run only when copies were logged)."""
    report = crosscheck(site.election, entries)
    by_id = {m.id: m for m in site.mesas}
    contests = {c.id: i for i, c in enumerate(site.election.contests)}
    for check in report.checks:
        mesa = by_id.get(check.mesa)
        if mesa is not None and check.copies:
            mesa.checks[check.contest] = check
            site.area_copies[contests[check.contest]][mesa.area] += len(check.copies)
    for counts in site.area_copies:
        for index in range(len(site.election.areas) - 1, -1, -1):
            parent = site.election.areas[index].parent
            if parent >= 0:
                counts[parent] += counts[index]


def _add_acta(
    election: Election,
    contests: dict[str, int],
    mesas: list[MesaRecord],
    enrollments: _Enrollments,
    counted: set[tuple[str, str]],
    running: list[Tally],
    turnout: list[array[int]],
    authority: Verifier,
    leaf: int,
    data: bytes,
    parsed: ParsedEntry,
) -> None:
    entry = parsed.entry
    assert isinstance(entry, ActaEntry)
    acta = entry.acta
    index = election.mesa_index(acta.mesa)
    contest = contests.get(acta.contest)
    if index is None or contest is None:
        return  # the writer refuses these; nothing to show them on
    findings = tuple(check_rules(acta, election, index))
    key = (acta.mesa, acta.contest)
    if errors_of(list(findings)):
        status = "rule-error"
    elif key in counted:
        status = "conflict"
    else:
        status = "counted"
        counted.add(key)
        running[contest].add(index, acta.options, acta.null, acta.blank, acta.registered)
        cast = acta.null + acta.blank + sum(acta.options)
        turnout[contest][mesas[index].area * TURNOUT_BINS + _bin(cast, acta.registered)] += 1
    ok = signature_valid(parsed, authority)  # an acta's signer is its own device key
    logged = LoggedActa(
        leaf,
        entry,
        hashlib.sha256(data).hexdigest(),
        status,
        findings,
        ok,
        enrollments.leaf(acta.device, acta.mesa),
    )
    mesa = mesas[index]
    mesa.actas.setdefault(acta.contest, []).append(logged)
    mesa.last_leaf = leaf


def _history_point(size: int, running: list[Tally]) -> HistoryPoint:
    nationals = [t.national() for t in running]
    return HistoryPoint(size, tuple(n[0] for n in nationals), tuple(tuple(n[4:]) for n in nationals))


def _roll_up(election: Election, last: array[int], turnout: list[array[int]]) -> None:
    """Descendants into ancestors (areas are in pre-order, so one backward pass)."""
    for index in range(len(election.areas) - 1, -1, -1):
        parent = election.areas[index].parent
        if parent < 0:
            continue
        if last[index] > last[parent]:
            last[parent] = last[index]
        for bins in turnout:
            src, dst = index * TURNOUT_BINS, parent * TURNOUT_BINS
            for b in range(TURNOUT_BINS):
                bins[dst + b] += bins[src + b]
