"""Cross-check of every mesa's official acta against the witnesses' paper copies, and a parallel tally.

Input is the log's entries in log order, as :func:`actas.core.tally.tally_entries` reads them:

* **Official actas** are ``acta`` entries that break no rule of severity ``error`` (docs/formats.md §4); the first
  for a mesa and contest is the one the results count. A later acta with different bytes is a conflict.
* **Witness copies** are ``observation`` entries whose witness signature verifies and whose payload reads as a
  copy of the named mesa's acta (:func:`actas.core.observation.observed_copy`) with the contest's shape (ticket
  and option counts, no negative count, option totals equal to the sums of their tickets). Any other
  observation is excluded: listed with its leaf and reason, never counted.

Every (mesa, contest) of the definition gets one :class:`MesaCheck`. The fields compared are ``tickets[i]``
(0-based ballot position), ``options[<option id>]``, ``null``, and ``blank`` and ``registered`` when the copy
carries them (a CNE 2024 copy carries neither). Two copies agree when they agree on every field both carry.
The status is decided in this order:

1. ``conflicting-copies`` — the log holds more than one different official acta, or the witness copies
   disagree among themselves; the detail says which (and which official leaf the copies support, if any);
2. ``no-data`` — neither an official acta nor a witness copy (not a flag);
3. ``official-missing`` — witnesses hold a copy, the authority never logged an acta;
4. ``witness-missing`` — an official acta, no witness copy;
5. ``mismatch`` — the copies agree with one another but not with the official acta; every differing field is
   listed with its official and witness value;
6. ``match`` — otherwise. A copy holding the very signed entry that was logged is noted as "same signed entry".

Parallel tally, per contest, for the nation and every area of the definition (rolled up the tree as in
:mod:`actas.core.tally`): the **official** column sums the first official acta of each mesa (the published
results); the **witness** column sums the agreeing copies of each mesa whose copies agree among themselves and
whose official side is not in conflict (statuses match, mismatch, official-missing); ``difference`` is official
minus witness over the mesas that have both and are compared (match or mismatch), so a mesa missing on one side
never shows up as a shift of votes. The blank difference counts only mesas whose copies carry ``blank``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from actas.core.acta import Acta, check_rules, errors_of, option_totals
from actas.core.election import Contest, Election
from actas.core.entries import ActaEntry, EnrollEntry, ObservationEntry, ParsedEntry, parse_entry
from actas.core.keys import CONTEXT_OBSERVATION, Verifier
from actas.core.observation import observed_copy
from actas.core.payloads import PaperCopy
from actas.core.tally import Binding, Tally, expected_per_area
from actas.errors import ActasError, MalformedError, NotFoundError

Status = Literal["match", "mismatch", "official-missing", "witness-missing", "conflicting-copies", "no-data"]
STATUSES: tuple[Status, ...] = (
    "match",
    "mismatch",
    "official-missing",
    "witness-missing",
    "conflicting-copies",
    "no-data",
)
# Flags, most serious first (the order a summary lists them in); "match" and "no-data" are not flags.
FLAGS: tuple[Status, ...] = ("conflicting-copies", "mismatch", "official-missing", "witness-missing")
CSV_HEADER = ("mesa", "contest", "area", "status", "official_leaves", "witness_copies", "differences", "detail")
_SHOWN_FIELDS = 6  # differences named in a one-line detail; the full list is in `differences`


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field on which the official acta and the witness copies differ."""

    field: str  # tickets[i], options[<option id>], null, blank or registered
    official: int
    witness: int


@dataclass(frozen=True, slots=True)
class WitnessCopy:
    """Where a counted witness copy is: its log leaf, the witness key string and the image's SHA-256."""

    leaf: int
    witness: str
    image: str


@dataclass(frozen=True, slots=True)
class MesaCheck:
    """The verdict for one mesa and contest."""

    mesa: str
    contest: str
    area: str  # code of the mesa's area (its centre)
    status: Status
    official_leaves: tuple[int, ...]
    copies: tuple[WitnessCopy, ...]
    differences: tuple[FieldDifference, ...]
    detail: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise MalformedError(f"crosscheck status: {self.status!r} is not one of {', '.join(STATUSES)}")
        if "\n" in self.detail or "\r" in self.detail:
            raise MalformedError("crosscheck detail: must be one line")

    def csv_row(self) -> list[str]:
        """The row of this check in the CSV report (columns as CSV_HEADER)."""
        differences = ";".join(f"{d.field}={d.official}/{d.witness}" for d in self.differences)
        leaves = " ".join(str(leaf) for leaf in self.official_leaves)
        return [
            self.mesa,
            self.contest,
            self.area,
            self.status,
            leaves,
            str(len(self.copies)),
            differences,
            self.detail,
        ]


@dataclass(frozen=True, slots=True)
class Excluded:
    """An entry read but not counted, and why."""

    leaf: int
    kind: Literal["acta", "observation"]
    mesa: str
    reason: str


@dataclass(frozen=True, slots=True)
class Sums:
    """Per-option votes plus null and blank."""

    votes: tuple[int, ...]
    null: int
    blank: int


@dataclass(frozen=True, slots=True)
class AreaComparison:
    """Official and witness totals of one area (or the nation) for one contest."""

    contest: str
    level: str  # "national" or the definition's level name
    code: str  # "" for the nation
    name: str
    mesas: int  # mesas of the area in the definition
    official_mesas: int  # mesas counted in `official`
    witness_mesas: int  # mesas counted in `witness`
    both_mesas: int  # mesas compared: counted in `difference`
    official: Sums
    witness: Sums
    difference: Sums  # official − witness over the compared mesas only


@dataclass(frozen=True, slots=True)
class CrosscheckReport:
    """Every mesa's verdict, the parallel tally and what was excluded."""

    origin: str
    contests: tuple[str, ...]
    options: tuple[tuple[str, ...], ...]  # option ids of each contest, in definition order
    entries: int  # log entries read
    checks: tuple[MesaCheck, ...]  # in the definition's mesa order, then contest order
    areas: tuple[AreaComparison, ...]  # per contest: the nation, then every area in definition order
    excluded: tuple[Excluded, ...]
    checkpoint: Binding | None = field(default=None)

    def counts(self) -> dict[Status, int]:
        """Mesa checks per status (every status, zero included)."""
        counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def flagged(self) -> list[MesaCheck]:
        """The checks with a flag, most serious status first, then in mesa order."""
        rank = {status: i for i, status in enumerate(FLAGS)}
        return sorted((c for c in self.checks if c.status in rank), key=lambda c: rank[c.status])

    def to_value(self) -> dict[str, object]:
        """The whole report as a JSON value."""
        return {
            "areas": [asdict(area) for area in self.areas],
            "checkpoint": self.checkpoint.to_value() if self.checkpoint is not None else None,
            "contests": [{"id": c, "options": list(o)} for c, o in zip(self.contests, self.options, strict=True)],
            "counts": dict(self.counts()),
            "election": self.origin,
            "entries": self.entries,
            "excluded": [asdict(item) for item in self.excluded],
            "mesas": [asdict(check) for check in self.checks],
            "type": "crosscheck",
            "v": 1,
        }

    def csv_rows(self) -> list[list[str]]:
        """The CSV report: the header, then one row per mesa and contest."""
        return [list(CSV_HEADER), *(check.csv_row() for check in self.checks)]


@dataclass(frozen=True, slots=True)
class _Official:
    leaf: int
    data: bytes
    acta: Acta


@dataclass(frozen=True, slots=True)
class _Copy:
    where: WitnessCopy
    copy: PaperCopy


Fields = dict[str, int]


def _fields(contest: Contest, tickets: Sequence[int], options: Sequence[int], **scalars: int | None) -> Fields:
    """The comparable fields, in the order differences are listed; scalars that are None are not carried."""
    fields = {f"tickets[{i}]": count for i, count in enumerate(tickets)}
    fields.update((f"options[{option.id}]", count) for option, count in zip(contest.options, options, strict=True))
    fields.update((name, value) for name, value in scalars.items() if value is not None)
    return fields


def _official_fields(acta: Acta, contest: Contest) -> Fields:
    return _fields(contest, acta.tickets, acta.options, null=acta.null, blank=acta.blank, registered=acta.registered)


def _copy_fields(copy: PaperCopy, contest: Contest) -> Fields:
    return _fields(contest, copy.tickets, copy.options, null=copy.null, blank=copy.blank, registered=copy.registered)


def _differing(a: Fields, b: Fields) -> list[str]:
    """Fields both carry on which they differ, in a's order."""
    return [name for name, value in a.items() if name in b and b[name] != value]


def _shape_problem(copy: PaperCopy, contest: Contest) -> str | None:
    """Why a copy cannot be counted for its contest, or None (it guards the tally rows)."""
    if len(copy.tickets) != len(contest.tickets) or len(copy.options) != len(contest.options):
        return (
            f"copy has {len(copy.tickets)} tickets and {len(copy.options)} options; contest {contest.id!r} has "
            f"{len(contest.tickets)} and {len(contest.options)}"
        )
    counts = [*copy.tickets, *copy.options, *(v for v in (copy.null, copy.blank, copy.registered) if v is not None)]
    if any(count < 0 for count in counts):
        return "copy holds a negative count"
    if option_totals(copy.tickets, contest) != tuple(copy.options):
        return "copy's option totals differ from the sums of its tickets"
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _copies(n: int) -> str:
    return "1 witness copy" if n == 1 else f"{n} witness copies"


def _leaves(items: Iterable[int]) -> str:
    leaves = [str(leaf) for leaf in items]
    return f"leaf {leaves[0]}" if len(leaves) == 1 else f"leaves {', '.join(leaves)}"


class _Reader:
    """Collects official actas and witness copies per (mesa index, contest position) from entries in log order."""

    def __init__(self, election: Election, contests: tuple[Contest, ...]) -> None:
        self.election = election
        self.contests = {c.id: i for i, c in enumerate(contests)}
        self.officials: dict[tuple[int, int], list[_Official]] = {}
        self.copies: dict[tuple[int, int], list[_Copy]] = {}
        self.excluded: list[Excluded] = []
        self.entries = 0
        self.enrolled: dict[str, set[str]] = {}  # device key → mesas, from the enrollments read so far

    def read(self, entries: Iterable[bytes]) -> None:
        for leaf, data in enumerate(entries):
            self.entries += 1
            try:
                parsed = parse_entry(data)
            except ActasError as exc:  # a key string that does not parse, too: the entry is malformed
                raise MalformedError(f"log leaf {leaf}: {exc}") from None
            if isinstance(parsed.entry, ActaEntry):
                self._acta(leaf, data, parsed.entry.acta)
            elif isinstance(parsed.entry, EnrollEntry):
                self.enrolled.setdefault(parsed.entry.device, set()).update(parsed.entry.mesas)
            elif isinstance(parsed.entry, ObservationEntry):
                self._observation(leaf, parsed, parsed.entry)

    def _acta(self, leaf: int, data: bytes, acta: Acta) -> None:
        if acta.contest not in self.contests and self.election.contest(acta.contest) is not None:
            return  # a contest not being checked
        broken = errors_of(check_rules(acta, self.election))
        if broken:
            reason = "breaks " + "; ".join(f"{f.rule}: {f.message}" for f in broken)
            self.excluded.append(Excluded(leaf, "acta", acta.mesa, reason))
            return
        mesa = self.election.mesa_index(acta.mesa)
        assert mesa is not None  # known-mesa and known-contest are error rules
        self.officials.setdefault((mesa, self.contests[acta.contest]), []).append(_Official(leaf, data, acta))

    def _observation(self, leaf: int, parsed: ParsedEntry, entry: ObservationEntry) -> None:
        try:
            signed = Verifier.parse(entry.witness).verify_in_context(
                CONTEXT_OBSERVATION, parsed.signed_bytes, entry.signature
            )
            if not signed:
                raise MalformedError("the witness signature does not verify")
            copy = observed_copy(entry, self.election)
            contest = self.election.contest(copy.contest)
            if contest is None:
                raise NotFoundError(f"contest {copy.contest!r} is not in the definition")
            if copy.contest not in self.contests:
                return  # a contest not being checked
            problem = _shape_problem(copy, contest)
            if problem is not None:
                raise MalformedError(problem)
            if copy.device is not None and copy.mesa not in self.enrolled.get(copy.device, ()):
                # A valid signature by a key the authority never enrolled for this mesa is no official paper.
                raise MalformedError("the acta on paper is signed by a key not enrolled for this mesa")
        except ActasError as exc:
            self.excluded.append(Excluded(leaf, "observation", entry.mesa, str(exc)))
            return
        mesa = self.election.mesa_index(copy.mesa)
        assert mesa is not None  # observed_copy checks the mesa is in the definition
        where = WitnessCopy(leaf, entry.witness, entry.image)
        self.copies.setdefault((mesa, self.contests[copy.contest]), []).append(_Copy(where, copy))


@dataclass
class _Totals:
    """The four running tallies of one contest."""

    official: Tally
    witness: Tally
    official_both: Tally
    witness_both: Tally


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: Status
    differences: tuple[FieldDifference, ...]
    detail: str
    merged: Fields | None  # the agreeing copies' fields, when the witness side counts


def _copy_disagreement(copies: list[_Copy], fields: list[Fields]) -> str | None:
    for i in range(len(copies)):
        for j in range(i + 1, len(copies)):
            names = _differing(fields[i], fields[j])
            if names:
                a, b = copies[i].where.leaf, copies[j].where.leaf
                return f"witness copies disagree: leaves {a} and {b} differ on {', '.join(names[:_SHOWN_FIELDS])}"
    return None


def _classify(officials: list[_Official], copies: list[_Copy], contest: Contest) -> _Verdict:
    distinct: list[_Official] = []
    for acta in officials:
        if all(acta.data != seen.data for seen in distinct):
            distinct.append(acta)
    fields = [_copy_fields(c.copy, contest) for c in copies]
    merged: Fields = {}
    for item in reversed(fields):  # agreeing copies complement each other; which one wins a field is moot
        merged.update(item)
    disagreement = _copy_disagreement(copies, fields)
    n_copies = _copies(len(copies))
    if len(distinct) > 1 or disagreement is not None:
        parts = []
        if len(distinct) > 1:
            parts.append(
                f"the log holds {len(distinct)} different official actas ({_leaves(o.leaf for o in distinct)})"
            )
            if copies and disagreement is None:
                backed = [o.leaf for o in distinct if not _differing(_official_fields(o.acta, contest), merged)]
                parts.append(
                    f"the witness copies agree with {_leaves(backed)}"
                    if backed
                    else "the witness copies agree with none of them"
                )
        if disagreement is not None:
            parts.append(disagreement)
        return _Verdict("conflicting-copies", (), "; ".join(parts), None)
    if not distinct and not copies:
        return _Verdict("no-data", (), "no official acta and no witness copy", None)
    if not distinct:
        return _Verdict(
            "official-missing",
            (),
            f"{n_copies} ({_leaves(c.where.leaf for c in copies)}); no official acta logged",
            merged,
        )
    first = distinct[0]
    if not copies:
        return _Verdict("witness-missing", (), f"official acta at leaf {first.leaf}; no witness copy", None)
    official = _official_fields(first.acta, contest)
    names = _differing(official, merged)
    if names:
        differences = tuple(FieldDifference(n, official[n], merged[n]) for n in names)
        shown = ", ".join(f"{d.field} {d.official}/{d.witness}" for d in differences[:_SHOWN_FIELDS])
        more = f" and {len(names) - _SHOWN_FIELDS} more" if len(names) > _SHOWN_FIELDS else ""
        fields_text = _plural(len(names), "field")
        detail = f"official acta (leaf {first.leaf}) differs from {n_copies} on {fields_text}: {shown}{more}"
        detail += " (official/witness)"
        return _Verdict("mismatch", differences, detail, merged)
    same = sum(1 for c in copies if c.copy.entry == first.data)
    carried = "every field" if all(len(f) == len(official) for f in fields) else "the fields the copies carry"
    note = f"; same signed entry ({same} of {len(copies)})" if same else ""
    return _Verdict("match", (), f"official acta (leaf {first.leaf}) and {n_copies} agree on {carried}{note}", merged)


def _count(totals: _Totals, mesa: int, officials: list[_Official], verdict: _Verdict, contest: Contest) -> None:
    first = officials[0].acta if officials else None
    if first is not None:
        totals.official.add(mesa, first.options, first.null, first.blank, first.registered)
    merged = verdict.merged
    if merged is None:
        return
    votes = [merged[f"options[{option.id}]"] for option in contest.options]
    null, blank = merged.get("null", 0), merged.get("blank", 0)
    totals.witness.add(mesa, votes, null, blank, merged.get("registered", 0))
    if first is not None and verdict.status in ("match", "mismatch"):
        totals.official_both.add(mesa, first.options, first.null, first.blank, first.registered)
        # Where the copies carry no null or blank, the official figure stands in: those mesas add 0 to the difference.
        both_null, both_blank = merged.get("null", first.null), merged.get("blank", first.blank)
        totals.witness_both.add(mesa, votes, both_null, both_blank, merged.get("registered", 0))


def _sums(row: list[int]) -> Sums:
    # Tally row layout: [actas, registered_counted, null, blank, votes per option ...]
    return Sums(tuple(row[4:]), row[2], row[3])


def _area_row(contest: Contest, place: tuple[str, str, str, int], rows: list[list[int]]) -> AreaComparison:
    official, witness, official_both, witness_both = rows
    difference = [a - b for a, b in zip(official_both, witness_both, strict=True)]
    counted = (official[0], witness[0], official_both[0])  # the actas column: mesas counted in each tally
    sums = (_sums(official), _sums(witness), _sums(difference))
    return AreaComparison(contest.id, *place, *counted, *sums)


def _area_rows(election: Election, contest: Contest, totals: _Totals) -> list[AreaComparison]:
    mesas, _registered = expected_per_area(election)
    parts = (totals.official, totals.witness, totals.official_both, totals.witness_both)
    national = sum(m for m, a in zip(mesas, election.areas, strict=True) if a.parent < 0)
    rows = [_area_row(contest, ("national", "", election.title, national), [t.national() for t in parts])]
    for i, area in enumerate(election.areas):
        place = (election.levels[area.level], area.code, area.name, mesas[i])
        rows.append(_area_row(contest, place, [t.row(i) for t in parts]))
    return rows


def crosscheck(election: Election, entries: Iterable[bytes], contest: str | None = None) -> CrosscheckReport:
    """Compare every mesa's official acta with the witnesses' copies in a log's entries (in log order)."""
    if contest is None:
        contests = election.contests
    else:
        chosen = election.contest(contest)
        if chosen is None:
            raise NotFoundError(f"contest {contest!r} is not in the definition")
        contests = (chosen,)
    reader = _Reader(election, contests)
    reader.read(entries)
    totals = [_Totals(*(Tally(election, c) for _ in range(4))) for c in contests]
    checks: list[MesaCheck] = []
    for mesa in range(election.mesa_count):
        mesa_id, area = election.mesa_id(mesa), election.areas[election.mesa_area(mesa)].code
        for position, item in enumerate(contests):
            officials = reader.officials.get((mesa, position), [])
            copies = reader.copies.get((mesa, position), [])
            verdict = _classify(officials, copies, item)
            _count(totals[position], mesa, officials, verdict, item)
            leaves = tuple(o.leaf for o in officials)
            where = tuple(c.where for c in copies)
            checks.append(
                MesaCheck(mesa_id, item.id, area, verdict.status, leaves, where, verdict.differences, verdict.detail)
            )
    areas = [row for item, t in zip(contests, totals, strict=True) for row in _area_rows(election, item, t)]
    return CrosscheckReport(
        origin=election.origin,
        contests=tuple(c.id for c in contests),
        options=tuple(tuple(o.id for o in c.options) for c in contests),
        entries=reader.entries,
        checks=tuple(checks),
        areas=tuple(areas),
        excluded=tuple(reader.excluded),
    )
