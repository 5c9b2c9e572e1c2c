"""The live view's running totals equal core.tally's over the same entries, area by area, at every level."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from actas.core.acta import Acta, option_totals
from actas.core.election import Election
from actas.core.entries import ActaEntry, acta_entry, enroll_entry, observation_entry, parse_entry
from actas.core.keys import Signer, Verifier
from actas.core.note import open_checkpoint
from actas.core.tally import tally_entries
from actas.service.live import LiveLog, LiveTotals
from actas.simulate.run import derive_seed, device_signer, simulate
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from tests import factories

MESAS, SEED = 40, 11


@dataclasses.dataclass
class Logged:
    """A simulated data directory with every acta logged, and its log's entries."""

    data: DataDir
    election: Election
    authority: Verifier
    entries: list[bytes]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """Simulated once for this module: the election entry, one enrollment per mesa, one acta per mesa."""
    root = tmp_path_factory.mktemp("live") / "data"
    simulate(root, MESAS, SEED)
    data = DataDir(root)
    election = Election.from_json(data.election.read_bytes())
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    size = open_checkpoint(data.checkpoint.read_bytes(), authority).size
    store = SqliteLogStore(data.database)
    try:
        entries = store.read(0, size)
    finally:
        store.close()
    return Logged(data, election, authority, entries)


def _acta_of(entries: list[bytes], mesa: str) -> Acta:
    for data in entries:
        entry = parse_entry(data).entry
        if isinstance(entry, ActaEntry) and entry.acta.mesa == mesa:
            return entry.acta
    raise AssertionError(f"no acta of {mesa}")


def _recounted(acta: Acta, election: Election) -> Acta:
    """A different acta for the same mesa that keeps every rule: one vote moved to another ticket."""
    contest = election.contests[0]
    tickets = list(acta.tickets)
    source = next(i for i, count in enumerate(tickets) if count > 0)
    target = next(i for i in range(len(tickets)) if contest.ticket_option[i] != contest.ticket_option[source])
    tickets[source] -= 1
    tickets[target] += 1
    return dataclasses.replace(acta, tickets=tuple(tickets), options=option_totals(tickets, contest))


def _feed(totals: LiveTotals, entries: list[bytes], chunk: int) -> None:
    for start in range(0, len(entries), chunk):
        totals.apply(totals.prepare(entries[start : start + chunk]))


def _assert_equal_to_tally(totals: LiveTotals, election: Election, entries: list[bytes]) -> None:
    tallies, conflicts = tally_entries(election, entries)
    for position, tally in enumerate(tallies):
        width = tally.width
        expected = tally.rollup()
        for area in range(len(election.areas)):
            row = totals.rows[position][area].tolist()
            assert row == list(expected[area * width : (area + 1) * width]), (position, election.areas[area].code)
    assert totals.conflict_records() == tuple(conflicts)
    assert len(totals.first) == sum(t.national()[0] for t in tallies)


def test_totals_equal_the_tally_with_conflicts_enrollments_and_strays(logged: Logged) -> None:
    """Conflicts, unknown mesas and contests, enrollments and observations are handled exactly as core.tally does."""
    election, entries = logged.election, list(logged.entries)
    authority = Signer(election.origin, derive_seed(SEED, "authority"))
    mesa3, mesa7 = election.mesa_id(3), election.mesa_id(7)
    first3 = _acta_of(entries, mesa3)
    stranger = Signer("dev-stranger", b"s" * 32)
    witness = Signer("witness-1", b"w" * 32)
    unknown_mesa = dataclasses.replace(first3, mesa="999999999.99")
    extra = [
        acta_entry(_recounted(first3, election), device_signer(SEED, 3)),  # a conflict, in a later chunk
        enroll_entry(election.origin, stranger.verifier, [mesa3, mesa7], authority),
        acta_entry(dataclasses.replace(first3, contest="alcalde"), device_signer(SEED, 3)),  # no such contest
        acta_entry(unknown_mesa, device_signer(SEED, 3)),  # no such mesa: skipped, and so are its repeats
        acta_entry(dataclasses.replace(unknown_mesa, null=first3.null + 1), device_signer(SEED, 3)),
        # A payload ending the way an acta entry does must not pass for one.
        observation_entry(
            election.origin, mesa7, "actas1", hashlib.sha256(b"image").hexdigest(), '"type":"acta","v":1}', witness
        ),
        acta_entry(_recounted(_acta_of(entries, mesa7), election), device_signer(SEED, 7)),
    ]
    log = entries + extra
    for chunk in (5, len(log)):  # repeats in the same chunk and across chunks
        totals = LiveTotals(election)
        _feed(totals, log, chunk)
        _assert_equal_to_tally(totals, election, log)
        assert [c.mesa for c in totals.conflict_records()] == [mesa3, mesa7]
        enrolled = [(v["device"], v["mesas"]) for v in map(json.loads, log) if v["type"] == "enroll"]
        assert totals.enrollments == enrolled
        assert len(enrolled) == MESAS + 1
        assert totals.rows[0][:-1, 0].min() > 0  # every area at every level has counted actas: none was missed


def test_live_log_rows_are_plain_integers_equal_to_the_tally(logged: Logged) -> None:
    """LiveLog.rows() over the log directory gives every area's tally row as Python ints, at its checkpoint."""
    data, election = logged.data, logged.election
    stores: list[SqliteLogStore] = []

    def open_store() -> SqliteLogStore:
        stores.append(SqliteLogStore(data.database))
        return stores[-1]

    live = LiveLog(data.log, election, logged.authority, open_store)
    try:
        live.refresh()
        snapshot, rows = live.rows(0, list(range(len(election.areas))))
    finally:
        for store in stores:
            store.close()
    assert snapshot is not None
    assert snapshot.checkpoint.size == len(logged.entries)
    tally = tally_entries(election, logged.entries)[0][0]
    assert rows == [tally.row(area) for area in range(len(election.areas))]
    assert all(type(value) is int for row in rows for value in row)


def test_two_contests_of_different_widths() -> None:
    """Each contest's increments go to its own rows, at its own width."""
    value = factories.election_value()
    second = json.loads(json.dumps(value["contests"][0]))
    second.update(id="alcalde", options=second["options"][:2])
    second["tickets"] = [dict(t, option="a" if t["option"] == "a" else "b") for t in second["tickets"]]
    value["contests"].append(second)
    election = Election.from_value(value)
    entries = factories.election_and_enrollments(election)
    for mesa in range(election.mesa_count):
        for position, tickets in ((1, (7, 1, 2, mesa)), (0, (100, 20, 90, 30 + mesa))):
            acta = factories.make_acta(election, mesa, tickets=tickets)
            contest = election.contests[position]
            acta = dataclasses.replace(acta, contest=contest.id, options=option_totals(tickets, contest))
            entries.append(acta_entry(acta, factories.device(mesa)))
    totals = LiveTotals(election)
    _feed(totals, entries, 3)
    _assert_equal_to_tally(totals, election, entries)
    assert [len(rows[0]) for rows in totals.rows] == [4 + 3, 4 + 2]


def test_an_election_without_mesas_counts_nothing() -> None:
    """With no mesa defined, every acta is of an unknown mesa."""
    value = factories.election_value()
    value["mesas"] = []
    election = Election.from_value(value)
    acta = factories.make_acta(factories.small_election(), 0)
    totals = LiveTotals(election)
    _feed(totals, [acta_entry(acta, factories.device(0))] * 2, 2)
    assert not totals.first
    assert not totals.conflicts
    assert not totals.rows[0].any()
