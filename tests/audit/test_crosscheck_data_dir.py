"""Cross-check of a real data directory: a simulated election logged through the writer, with witness copies."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from actas.audit.crosscheck import crosscheck_data_dir
from actas.cli.main import cli
from actas.core.acta import Acta, option_totals
from actas.core.crosscheck import CrosscheckReport
from actas.core.election import Election
from actas.core.entries import ActaEntry, acta_entry, observation_entry, parse_entry
from actas.core.keys import Signer
from actas.core.qr import encode_payload
from actas.log.writer import LogWriter
from actas.simulate.run import derive_seed, device_signer, signed_actas, simulate
from actas.storage.sqlite import SqliteLogStore

SEED = 11
MESAS = 200
ALTERED = (3, 50, 120)  # the device signs a changed acta, which is logged; witnesses hold the original
OFFICIAL_MISSING = (10, 77)
WITNESS_MISSING = (20, 21, 150)
WITNESSES_DISAGREE = 30
TWO_OFFICIAL = 40
NO_DATA = 199
WITNESS_1 = Signer("witness-1", hashlib.sha256(b"actas-tests/witness/1").digest())
WITNESS_2 = Signer("witness-2", hashlib.sha256(b"actas-tests/witness/2").digest())


@dataclass(frozen=True)
class Scenario:
    """A logged election and what was injected into it."""

    root: Path
    election: Election
    originals: dict[int, Acta]  # the paper acta of each mesa
    altered: dict[int, Acta]  # the changed actas the devices signed
    log_size: int
    rejected_wrong_mesa: bool


def altered_acta(acta: Acta, election: Election) -> Acta:
    """Move 5 votes from the biggest ticket to a ticket of another option."""
    contest = election.contests[0]
    tickets = list(acta.tickets)
    source = max(range(len(tickets)), key=tickets.__getitem__)
    target = next(t for t, o in enumerate(contest.ticket_option) if o != contest.ticket_option[source])
    moved = min(5, tickets[source])
    tickets[source] -= moved
    tickets[target] += moved
    return dataclasses.replace(acta, tickets=tuple(tickets), options=option_totals(tuple(tickets), contest))


def observe(election: Election, mesa: int, entry: bytes, witness: Signer = WITNESS_1) -> bytes:
    """A witness observation of an own-format printed acta."""
    digest = hashlib.sha256(entry + str(witness.verifier).encode()).hexdigest()
    return observation_entry(election.origin, election.mesa_id(mesa), "actas1", digest, encode_payload(entry), witness)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Simulate (enrollments only), then log the actas and observations of every injected case."""
    base = tmp_path_factory.mktemp("crosscheck")
    summary = simulate(base / "data", MESAS, SEED, actas_out=base / "actas.txt")
    election = summary.election
    signed: dict[int, bytes] = {}
    for data in signed_actas(election, SEED):
        entry = parse_entry(data).entry
        assert isinstance(entry, ActaEntry)
        index = election.mesa_index(entry.acta.mesa)
        assert index is not None
        signed[index] = data
    originals = {m: entry.acta for m, data in signed.items() if isinstance(entry := parse_entry(data).entry, ActaEntry)}
    changed = {m: altered_acta(originals[m], election) for m in (*ALTERED, WITNESSES_DISAGREE, TWO_OFFICIAL)}
    changed_entries = {m: acta_entry(acta, device_signer(SEED, m)) for m, acta in changed.items()}
    officials = [
        changed_entries[m] if m in ALTERED else signed[m]
        for m in range(MESAS)
        if m not in OFFICIAL_MISSING and m != NO_DATA
    ]
    officials.append(changed_entries[TWO_OFFICIAL])
    observations = [observe(election, m, signed[m]) for m in range(MESAS) if m not in WITNESS_MISSING and m != NO_DATA]
    observations.append(observe(election, WITNESSES_DISAGREE, changed_entries[WITNESSES_DISAGREE], WITNESS_2))
    wrong_mesa = observation_entry(
        election.origin, election.mesa_id(0), "actas1", "0" * 64, encode_payload(signed[1]), WITNESS_2
    )
    authority = Signer(election.origin, derive_seed(SEED, "authority"))
    writer = LogWriter(SqliteLogStore(summary.data.database), summary.data.log, election, authority)
    try:
        results = writer.append(officials) + writer.append([*observations, wrong_mesa])
        size = writer.size
    finally:
        writer.close()
    statuses = [r.status for r in results]
    assert statuses.count("appended") == len(officials) - 1 + len(observations)
    assert statuses.count("conflict") == 1
    altered = {m: changed[m] for m in ALTERED}
    return Scenario(base / "data", election, originals, altered, size, statuses[-1] == "rejected")


@pytest.fixture(scope="module")
def report(scenario: Scenario) -> CrosscheckReport:
    """The cross-check of the data directory."""
    return crosscheck_data_dir(scenario.root)


def expected_status(mesa: int) -> str:
    """The status each mesa was built to have."""
    if mesa in ALTERED:
        return "mismatch"
    if mesa in OFFICIAL_MISSING:
        return "official-missing"
    if mesa in WITNESS_MISSING:
        return "witness-missing"
    if mesa in (WITNESSES_DISAGREE, TWO_OFFICIAL):
        return "conflicting-copies"
    return "no-data" if mesa == NO_DATA else "match"


def test_the_writer_takes_observations_and_refuses_a_wrong_mesa(scenario: Scenario, report: CrosscheckReport) -> None:
    """Observations are logged through LogWriter.append; a payload of another mesa is rejected at append."""
    assert scenario.rejected_wrong_mesa
    assert report.excluded == ()
    assert report.checkpoint is not None
    assert report.checkpoint.size == scenario.log_size == report.entries


def test_every_mesa_is_classified(scenario: Scenario, report: CrosscheckReport) -> None:
    """Each injected case has its status; every other mesa matches."""
    got = {scenario.election.mesa_index(c.mesa): c.status for c in report.checks}
    assert got == {m: expected_status(m) for m in range(MESAS)}
    for mesa in ALTERED:
        check = report.checks[mesa]
        paper, official = scenario.originals[mesa], scenario.altered[mesa]
        changed = {
            f"tickets[{i}]" for i, (a, b) in enumerate(zip(official.tickets, paper.tickets, strict=True)) if a != b
        }
        assert {d.field for d in check.differences if d.field.startswith("tickets")} == changed
        assert all(d.official != d.witness for d in check.differences)


def test_parallel_tally_shows_exactly_the_alterations(scenario: Scenario, report: CrosscheckReport) -> None:
    """National official − witness over compared mesas is the sum of the injected changes."""
    national = report.areas[0]
    assert national.level == "national"
    expected = [0] * len(national.difference.votes)
    for mesa, acta in scenario.altered.items():
        for k, (a, b) in enumerate(zip(acta.options, scenario.originals[mesa].options, strict=True)):
            expected[k] += a - b
    assert list(national.difference.votes) == expected
    assert any(expected)
    assert (national.difference.null, national.difference.blank) == (0, 0)
    assert (national.official_mesas, national.witness_mesas, national.both_mesas) == (197, 194, 192)
    witness_mesas = [m for m in range(MESAS) if expected_status(m) in ("match", "mismatch", "official-missing")]
    witness_votes = [sum(scenario.originals[m].options[k] for m in witness_mesas) for k in range(len(expected))]
    assert list(national.witness.votes) == witness_votes
    top = [row for row in report.areas if row.level == scenario.election.levels[0]]
    assert [sum(col) for col in zip(*(row.difference.votes for row in top), strict=True)] == expected


def test_cli_json_and_csv_agree_with_the_library(scenario: Scenario, report: CrosscheckReport, tmp_path: Path) -> None:
    """`actas crosscheck --json` / `--csv` (stdout or --out) write the same report."""
    runner = CliRunner()
    as_json = runner.invoke(cli, ["crosscheck", str(scenario.root), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == json.loads(json.dumps(report.to_value()))
    as_csv = runner.invoke(cli, ["crosscheck", str(scenario.root), "--csv", "--contest", "presidente"])
    assert as_csv.exit_code == 0, as_csv.output
    assert list(csv.reader(io.StringIO(as_csv.output))) == report.csv_rows()
    target = tmp_path / "crosscheck.csv"
    written = runner.invoke(cli, ["crosscheck", str(scenario.root), "--csv", "--out", str(target)])
    assert written.exit_code == 0, written.output
    assert list(csv.reader(io.StringIO(target.read_text(encoding="utf-8")))) == report.csv_rows()


def test_cli_summary_and_usage(scenario: Scenario) -> None:
    """The summary names the flagged mesas and the parallel tally; contradictory flags are a usage error."""
    runner = CliRunner()
    summary = runner.invoke(cli, ["crosscheck", str(scenario.root)])
    assert summary.exit_code == 0, summary.output
    assert scenario.election.mesa_id(ALTERED[0]) in summary.output
    assert "parallel tally" in summary.output
    assert "options[cand-" in summary.output  # option ids in brackets are printed, not taken for markup
    assert "conflicting-copies" in summary.output
    both = runner.invoke(cli, ["crosscheck", str(scenario.root), "--csv", "--json"])
    assert both.exit_code == 2
    unknown = runner.invoke(cli, ["crosscheck", str(scenario.root), "--contest", "senado"])
    assert unknown.exit_code != 0
