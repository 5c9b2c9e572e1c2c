"""Totals per option and turnout for every area at every level, bound to the checkpoint they were computed at.

Accumulation is flat (one ``array('q')`` row per area) so a 1 M-mesa election costs tens of megabytes, and each
counted acta touches only its centre's row; :meth:`Tally.rollup` adds rows up the area tree once at the end.
Which acta counts: for each mesa and contest, the first valid acta in log order. Later different actas for the
same mesa are conflicts: logged, listed, never silently replacing the first (docs/formats.md §5).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from actas.core import canonical
from actas.core.acta import check_rules, errors_of
from actas.core.b64 import b64encode
from actas.core.election import Contest, Election
from actas.core.entries import ActaEntry, parse_entry
from actas.errors import MalformedError

# Row layout: [actas, registered_counted, null, blank, votes per option ...]
_ACTAS, _REG, _NULL, _BLANK, _VOTES = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Binding:
    """The checkpoint a tally was computed at."""

    origin: str
    size: int
    root_hash: bytes

    def to_value(self) -> dict[str, object]:
        """As a canonical-JSON value."""
        return {"root": b64encode(self.root_hash), "size": self.size}


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """A mesa and contest with more than one different acta: the counted leaf first."""

    mesa: str
    contest: str
    leaves: tuple[int, ...]


class Tally:
    """Running totals of one contest over the area tree."""

    def __init__(self, election: Election, contest: Contest, rows: array[int] | None = None) -> None:
        self.election = election
        self.contest = contest
        self.width = _VOTES + len(contest.options)
        size = self.width * len(election.areas)
        if rows is not None and len(rows) != size:
            raise MalformedError("tally rows do not fit this election and contest")
        # Per-area sums of the actas counted directly in that area; rollup() derives the tree totals.
        self.rows = rows if rows is not None else array("q", bytes(8 * size))
        self._totals: array[int] | None = None

    def add(self, mesa: int, options: Sequence[int], null: int, blank: int, registered: int) -> None:
        """Count one acta of a mesa (by mesa index)."""
        base = self.election.mesa_area(mesa) * self.width
        self._totals = None
        rows = self.rows
        rows[base + _ACTAS] += 1
        rows[base + _REG] += registered
        rows[base + _NULL] += null
        rows[base + _BLANK] += blank
        at = base + _VOTES
        for votes in options:
            rows[at] += votes
            at += 1

    def rollup(self) -> array[int]:
        """Totals of every area including its descendants (areas are in pre-order, so one backward pass)."""
        if self._totals is None:
            width = self.width
            totals = array("q", self.rows)
            for index in range(len(self.election.areas) - 1, -1, -1):
                parent = self.election.areas[index].parent
                if parent >= 0:
                    src, dst = index * width, parent * width
                    for k in range(width):
                        totals[dst + k] += totals[src + k]
            self._totals = totals
        return self._totals

    def row(self, area: int) -> list[int]:
        """The totals row of an area, descendants included."""
        return list(self.rollup()[area * self.width : (area + 1) * self.width])

    def national(self) -> list[int]:
        """The totals row summed over the root areas."""
        total = [0] * self.width
        for index, area in enumerate(self.election.areas):
            if area.parent < 0:
                for k, value in enumerate(self.row(index)):
                    total[k] += value
        return total


def expected_per_area(election: Election) -> tuple[array[int], array[int]]:
    """Mesas and registered voters per area, from the definition, rolled up the tree."""
    mesas = array("q", bytes(8 * len(election.areas)))
    registered = array("q", bytes(8 * len(election.areas)))
    for i in range(election.mesa_count):
        area = election.mesa_area(i)
        mesas[area] += 1
        registered[area] += election.mesa_registered(i)
    for index in range(len(election.areas) - 1, -1, -1):
        parent = election.areas[index].parent
        if parent >= 0:
            mesas[parent] += mesas[index]
            registered[parent] += registered[index]
    return mesas, registered


def area_value(code: str, name: str, row: list[int], mesas: int, registered: int) -> dict[str, object]:
    """One area's totals as published in results files."""
    cast = row[_NULL] + row[_BLANK] + sum(row[_VOTES:])
    return {
        "actas": row[_ACTAS],
        "blank": row[_BLANK],
        "cast": cast,
        "code": code,
        "mesas": mesas,
        "name": name,
        "null": row[_NULL],
        "registered": registered,
        "registered_counted": row[_REG],
        "votes": row[_VOTES:],
    }


ResultsFile = tuple[str, Iterator[bytes]]


def _streamed(head: dict[str, object], areas: Iterable[dict[str, object]]) -> Iterator[bytes]:
    """Canonical bytes of ``{**head, "areas": [...]}`` area by area, never holding the whole list.

    "areas" sorts before every other member of a results file, so the object opens with it.
    """
    yield b'{"areas":['
    for n, area in enumerate(areas):
        yield (b"," if n else b"") + canonical.encode_decoded(area)
    rest = canonical.encode_decoded(head)
    yield b"]," + rest[1:] if len(rest) > 2 else b"]}"


def iter_results_files(
    tallies: Sequence[Tally], binding: Binding, conflicts: Sequence[ConflictRecord]
) -> Iterator[ResultsFile]:
    """The published results files as (path, chunks of canonical bytes): per contest, national and per level.

    Chunks are produced area by area, so a million-mesa election is written or compared without building it.
    """
    if not tallies:
        return
    election = tallies[0].election
    mesas, registered = expected_per_area(election)
    total_mesas = sum(m for m, a in zip(mesas, election.areas, strict=True) if a.parent < 0)
    total_registered = sum(r for r, a in zip(registered, election.areas, strict=True) if a.parent < 0)
    for tally in tallies:
        tally.rollup()
        header: dict[str, object] = {
            "checkpoint": binding.to_value(),
            "contest": tally.contest.id,
            "election": binding.origin,
            "options": [option.id for option in tally.contest.options],
            "type": "results",
            "v": 1,
        }
        national = area_value("", election.title, tally.national(), total_mesas, total_registered)
        listed = [{"leaves": list(c.leaves), "mesa": c.mesa} for c in conflicts if c.contest == tally.contest.id]
        yield (
            f"results/{tally.contest.id}/national.json",
            _streamed({**header, "conflicts": listed, "level": "national"}, [national]),
        )
        for level, level_name in enumerate(election.levels):
            areas = (
                area_value(area.code, area.name, tally.row(i), mesas[i], registered[i])
                for i, area in enumerate(election.areas)
                if area.level == level
            )
            yield f"results/{tally.contest.id}/{level_name}.json", _streamed({**header, "level": level_name}, areas)


def results_files(tallies: Sequence[Tally], binding: Binding, conflicts: Sequence[ConflictRecord]) -> dict[str, bytes]:
    """The published results files (path → canonical bytes), whole; see iter_results_files for large elections."""
    return {path: b"".join(chunks) for path, chunks in iter_results_files(tallies, binding, conflicts)}


def tally_entries(election: Election, entries: Iterable[bytes]) -> tuple[list[Tally], list[ConflictRecord]]:
    """Totals from a trusted log's entries in order: the first acta of each mesa and contest counts.

    Signatures and enrollment are not checked again (the sequencer did, and the verifier does); actas
    breaking an error rule are skipped, as the verifier skips them.
    """
    tallies = [Tally(election, contest) for contest in election.contests]
    contests = {c.id: i for i, c in enumerate(election.contests)}
    first: dict[tuple[str, str], int] = {}
    conflicts: dict[tuple[str, str], list[int]] = {}
    for leaf, data in enumerate(entries):
        entry = parse_entry(data).entry
        if not isinstance(entry, ActaEntry):
            continue
        acta = entry.acta
        if errors_of(check_rules(acta, election)):
            continue
        key = (acta.mesa, acta.contest)
        if key in first:
            conflicts.setdefault(key, [first[key]]).append(leaf)
            continue
        mesa = election.mesa_index(acta.mesa)
        contest = contests.get(acta.contest)
        if mesa is None or contest is None:
            continue
        first[key] = leaf
        tallies[contest].add(mesa, acta.options, acta.null, acta.blank, acta.registered)
    records = [
        ConflictRecord(mesa, contest, tuple(leaves))
        for (mesa, contest), leaves in sorted(conflicts.items(), key=lambda kv: kv[1][0])
    ]
    return tallies, records
