"""The cross-check of official actas against witness copies, and the parallel tally."""

from __future__ import annotations

import contextlib
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core import canonical
from actas.core.crosscheck import CSV_HEADER, STATUSES, AreaComparison, CrosscheckReport, MesaCheck, crosscheck
from actas.core.election import Election
from actas.core.entries import observation_entry
from actas.core.keys import Signer
from actas.core.qr import encode_payload
from actas.core.qr_cne import CnePayload, format_cne
from actas.errors import MalformedError, NotFoundError
from tests.factories import election_and_enrollments, election_value, seed, signed_acta

ORIGINAL = (100, 20, 90, 30)  # what every paper acta says unless a case changes it
WITNESS_1 = Signer("witness-1", seed("witness/1"))
WITNESS_2 = Signer("witness-2", seed("witness/2"))


def image(label: str) -> str:
    """A stand-in image hash (no image is needed: only its SHA-256 is logged)."""
    return hashlib.sha256(f"image/{label}".encode()).hexdigest()


def observe(election: Election, mesa: int, acta: bytes, witness: Signer = WITNESS_1, label: str = "") -> bytes:
    """A witness observation of a printed own-format acta."""
    mesa_id = election.mesa_id(mesa)
    return observation_entry(
        election.origin, mesa_id, "actas1", image(f"{mesa_id}/{label}"), encode_payload(acta), witness
    )


def observe_cne(election: Election, mesa: int, tickets: tuple[int, ...], null: int) -> bytes:
    """A witness observation of a CNE-format QR code (unsigned) for a mesa."""
    centre, number = election.mesa_id(mesa).split(".")
    payload = format_cne(CnePayload(centre, number, "1", "0001", tickets, null, 0))
    return observation_entry(election.origin, election.mesa_id(mesa), "cne2024", image(payload), payload, WITNESS_2)


def with_signature_of(entry: bytes, other: bytes) -> bytes:
    """The entry carrying another entry's (well-formed, but wrong) signature."""
    value = json.loads(entry)
    value["sig"] = json.loads(other)["sig"]
    return canonical.encode(value)


@pytest.fixture(scope="module")
def election() -> Election:
    """Twelve mesas: 0–5 in state 01, 6–11 in state 02."""
    return Election.from_value(election_value(mesas_per_centre=3))


EXPECTED = {
    0: "match",
    1: "match",
    2: "mismatch",
    3: "official-missing",
    4: "witness-missing",
    5: "conflicting-copies",
    6: "conflicting-copies",
    7: "match",
    8: "mismatch",
    9: "no-data",
    10: "match",
    11: "match",
}


@pytest.fixture(scope="module")
def log(election: Election) -> list[bytes]:
    """A log with one known case per mesa (EXPECTED), plus entries that must be excluded."""
    entries = election_and_enrollments(election)
    original = {m: signed_acta(election, m) for m in range(election.mesa_count)}
    altered_2 = signed_acta(election, 2, tickets=(100, 20, 80, 40))  # 10 votes moved from b to c
    altered_5 = signed_acta(election, 5, tickets=(100, 25, 85, 30))
    altered_6 = signed_acta(election, 6, tickets=(100, 20, 80, 40))
    altered_8 = signed_acta(election, 8, tickets=(110, 20, 90, 30), null=2)  # a gains 10, null loses 3
    for m in (0, 1, 4, 5, 6, 7, 10, 11):
        entries.append(original[m])
    entries += [altered_2, altered_8, altered_6]  # mesa 6: a second, different official acta
    entries.append(signed_acta(election, 9, registered=499))  # breaks an error rule: not official
    entries += [
        observe(election, 0, original[0]),
        observe(election, 1, original[1]),
        observe(election, 1, original[1], WITNESS_2, "second photo"),
        observe(election, 2, original[2]),
        observe(election, 3, original[3]),
        observe(election, 5, original[5]),
        observe(election, 5, altered_5, WITNESS_2),
        observe(election, 6, original[6]),
        observe_cne(election, 7, ORIGINAL, 5),
        observe(election, 8, original[8]),
        observe(election, 10, original[10]),
        observe(election, 11, original[11]),
    ]
    good = observe(election, 10, original[10], WITNESS_2)
    entries.append(with_signature_of(good, entries[-1]))  # the witness signature fails
    entries.append(observe(election, 10, original[11], WITNESS_2, "wrong mesa"))  # payload of mesa 11
    return entries


@pytest.fixture(scope="module")
def report(election: Election, log: list[bytes]) -> CrosscheckReport:
    """The cross-check of the test log."""
    return crosscheck(election, log)


def check_of(report: CrosscheckReport, election: Election, mesa: int) -> MesaCheck:
    """The check of mesa index ``mesa``."""
    found = [c for c in report.checks if c.mesa == election.mesa_id(mesa)]
    assert len(found) == 1
    return found[0]


def test_every_mesa_is_classified_as_injected(report: CrosscheckReport, election: Election) -> None:
    """Each known case gets its status, in the definition's mesa order, and nothing else is flagged."""
    assert [c.mesa for c in report.checks] == [election.mesa_id(m) for m in range(election.mesa_count)]
    assert {m: check_of(report, election, m).status for m in EXPECTED} == EXPECTED
    counts = report.counts()
    assert list(counts) == list(STATUSES)
    assert counts == {
        "match": 5,
        "mismatch": 2,
        "official-missing": 1,
        "witness-missing": 1,
        "conflicting-copies": 2,
        "no-data": 1,
    }
    assert [c.mesa for c in report.flagged()][:2] == [election.mesa_id(5), election.mesa_id(6)]


def test_mismatch_lists_each_differing_field(report: CrosscheckReport, election: Election) -> None:
    """Official vs witness values of the altered fields, and only those."""
    mesa_2 = [(d.field, d.official, d.witness) for d in check_of(report, election, 2).differences]
    assert mesa_2 == [("tickets[2]", 80, 90), ("tickets[3]", 40, 30), ("options[b]", 80, 90), ("options[c]", 40, 30)]
    mesa_8 = [(d.field, d.official, d.witness) for d in check_of(report, election, 8).differences]
    assert mesa_8 == [("tickets[0]", 110, 100), ("options[a]", 130, 120), ("null", 2, 5)]
    assert "tickets[2] 80/90" in check_of(report, election, 2).detail
    assert all(not check_of(report, election, m).differences for m in EXPECTED if EXPECTED[m] != "mismatch")


def test_details_say_why(report: CrosscheckReport, election: Election, log: list[bytes]) -> None:
    """Conflicts name their kind and leaves; a copy of the very logged entry is noted; leaves are log positions."""
    copies = check_of(report, election, 5)
    assert "witness copies disagree" in copies.detail
    assert "tickets[1]" in copies.detail
    official = check_of(report, election, 6)
    assert "2 different official actas" in official.detail
    assert f"agree with leaf {official.official_leaves[0]}" in official.detail
    assert log[official.official_leaves[1]] == signed_acta(election, 6, tickets=(100, 20, 80, 40))
    assert "same signed entry" in check_of(report, election, 0).detail
    cne = check_of(report, election, 7)
    assert "the fields the copies carry" in cne.detail
    assert "same signed entry" not in cne.detail
    assert [c.witness for c in check_of(report, election, 1).copies] == [
        str(WITNESS_1.verifier),
        str(WITNESS_2.verifier),
    ]
    assert check_of(report, election, 3).official_leaves == ()


def test_bad_observations_and_actas_are_excluded_with_reasons(report: CrosscheckReport, log: list[bytes]) -> None:
    """A failing witness signature, a payload of another mesa and a rule-breaking acta are never counted."""
    reasons = {(e.kind, e.leaf): e.reason for e in report.excluded}
    assert len(reasons) == 3
    assert reasons[("observation", len(log) - 2)] == "the witness signature does not verify"
    assert "payload is for mesa '020101002.03'" in reasons[("observation", len(log) - 1)]
    assert any(kind == "acta" and "registered-matches" in reason for (kind, _), reason in reasons.items())
    assert len(check_of_id(report, "020101002.02").copies) == 1


def check_of_id(report: CrosscheckReport, mesa_id: str) -> MesaCheck:
    """The check of a mesa by id."""
    return next(c for c in report.checks if c.mesa == mesa_id)


def area(report: CrosscheckReport, code: str) -> AreaComparison:
    """The comparison row of an area ("" for the nation)."""
    return next(a for a in report.areas if a.code == code)


def test_parallel_tally_differences_equal_the_injected_changes(report: CrosscheckReport) -> None:
    """Official − witness over compared mesas is exactly what was altered: national and per state."""
    national = area(report, "")
    assert national.level == "national"
    assert national.mesas == 12
    assert national.difference.votes == (10, -10, 10)
    assert national.difference.null == -3
    assert national.difference.blank == 0
    assert area(report, "01").difference.votes == (0, -10, 10)
    assert area(report, "01").difference.null == 0
    assert area(report, "02").difference.votes == (10, 0, 0)
    assert area(report, "02").difference.null == -3
    assert area(report, "020101002").difference.votes == (0, 0, 0)


def test_parallel_tally_columns_and_mesa_counts(report: CrosscheckReport) -> None:
    """Official: first acta of 10 mesas; witness: 8 mesas with agreeing copies; compared: 7."""
    national = area(report, "")
    assert (national.official_mesas, national.witness_mesas, national.both_mesas) == (10, 8, 7)
    # Official: 8 originals (120, 90, 30) + mesa 2 (120, 80, 40) + mesa 8's altered (130, 90, 30); mesa 6 counts
    # its first acta, the original.
    assert national.official.votes == (8 * 120 + 120 + 130, 8 * 90 + 80 + 90, 8 * 30 + 40 + 30)
    assert national.official.null == 9 * 5 + 2
    assert national.official.blank == 10 * 3
    # Witness: 8 paper originals; the CNE copy of mesa 7 carries no blank.
    assert national.witness.votes == (8 * 120, 8 * 90, 8 * 30)
    assert national.witness.null == 8 * 5
    assert national.witness.blank == 7 * 3
    state_01 = area(report, "01")
    assert (state_01.official_mesas, state_01.witness_mesas, state_01.both_mesas) == (5, 4, 3)


def test_report_outputs(report: CrosscheckReport, election: Election) -> None:
    """JSON value (canonical-encodable) and CSV rows carry every mesa and field."""
    canonical.encode(report.to_value())
    value = json.loads(json.dumps(report.to_value()))
    assert value["type"] == "crosscheck"
    assert value["counts"] == report.counts()
    assert len(value["mesas"]) == 12
    assert value["excluded"][0]["kind"] == "acta"
    assert value["areas"][0]["difference"] == {"votes": [10, -10, 10], "null": -3, "blank": 0}
    mesas = value["mesas"]
    assert mesas[2]["copies"][0]["witness"] == str(WITNESS_1.verifier)
    assert mesas[2]["differences"][0] == {
        "field": "tickets[2]",
        "official": 80,
        "witness": 90,
    }
    rows = report.csv_rows()
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 13
    mesa_2 = rows[3]
    assert mesa_2[:4] == [election.mesa_id(2), "presidente", "010101001", "mismatch"]
    assert mesa_2[6] == "tickets[2]=80/90;tickets[3]=40/30;options[b]=80/90;options[c]=40/30"
    assert rows[2][5] == "2"
    assert rows[7][4].count(" ") == 1


def test_contest_selection(election: Election, log: list[bytes]) -> None:
    """A named contest is checked alone; an unknown one is refused."""
    assert crosscheck(election, log, "presidente").counts() == crosscheck(election, log).counts()
    with pytest.raises(NotFoundError, match="senado"):
        crosscheck(election, log, "senado")


def test_identical_official_entries_are_not_a_conflict(election: Election) -> None:
    """The same bytes twice (a log not written by actas) is one acta, not a conflict."""
    acta = signed_acta(election, 0)
    head = election_and_enrollments(election)
    report = crosscheck(election, [*head, acta, acta, observe(election, 0, acta)])
    assert report.checks[0].status == "match"
    assert report.checks[0].official_leaves == (len(head), len(head) + 1)


def test_copy_of_wrong_shape_is_excluded(election: Election) -> None:
    """A signed copy whose tickets do not fit the contest never reaches the tally."""
    odd = signed_acta(election, 0, tickets=(100, 20, 90), options=(120, 90, 0))
    report = crosscheck(election, [observe(election, 0, odd)])
    assert report.checks[0].status == "no-data"
    assert "3 tickets" in report.excluded[0].reason


def test_witness_copies_complement_each_other(election: Election) -> None:
    """A CNE copy (no blank) and an own-format copy agree; they disagree when the counts differ."""
    acta = signed_acta(election, 7)
    head = election_and_enrollments(election)
    agreeing = crosscheck(election, [*head, acta, observe(election, 7, acta), observe_cne(election, 7, ORIGINAL, 5)])
    assert agreeing.checks[7].status == "match"
    assert len(agreeing.checks[7].copies) == 2
    differing = crosscheck(election, [*head, acta, observe(election, 7, acta), observe_cne(election, 7, ORIGINAL, 6)])
    assert differing.checks[7].status == "conflicting-copies"
    assert "null" in differing.checks[7].detail


def test_unparseable_log_entry_is_refused_with_its_leaf(election: Election) -> None:
    """A broken entry in the log names its position."""
    with pytest.raises(MalformedError, match="log leaf 1"):
        crosscheck(election, [signed_acta(election, 0), b"{}"])


@settings(max_examples=60)
@given(payload=st.text(min_size=1, max_size=200), payload_format=st.sampled_from(["actas1", "cne2024"]))
def test_arbitrary_observation_payloads_never_crash(election: Election, payload: str, payload_format: str) -> None:
    """Whatever a witness logs, it is either counted as a copy or excluded with a reason."""
    entry = observation_entry(election.origin, election.mesa_id(0), payload_format, image("x"), payload, WITNESS_1)
    report = crosscheck(election, [entry])
    assert len(report.excluded) + len(report.checks[0].copies) == 1


@settings(max_examples=60)
@given(data=st.binary(max_size=300))
def test_arbitrary_entry_bytes_parse_or_raise_the_projects_error(election: Election, data: bytes) -> None:
    """Untrusted log bytes either read or raise MalformedError."""
    with contextlib.suppress(MalformedError):
        crosscheck(election, [data])


def test_a_paper_copy_signed_by_a_key_never_enrolled_for_its_mesa_is_excluded(election: Election) -> None:
    head = election_and_enrollments(election)
    stranger = Signer("dev-stranger", seed("stranger"))
    forged = signed_acta(election, 1, tickets=(400, 0, 0, 0), signer=stranger)  # valid signature, no enrollment
    report = crosscheck(election, [*head, signed_acta(election, 0), observe(election, 1, forged)])
    assert report.checks[1].status == "no-data"
    assert [e.reason for e in report.excluded] == ["the acta on paper is signed by a key not enrolled for this mesa"]
    national = next(a for a in report.areas if a.level == "national")
    assert national.witness_mesas == 0
