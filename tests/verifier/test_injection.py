"""Logs the sequencer would never write, built entry by entry with TiledLog, are caught at the right step.

TiledLog appends raw rows without the sequencer's checks, so each test can slip one bad entry into an
otherwise valid log of the small test election (tests/factories.py), publish it and verify the bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from actas.core import canonical
from actas.core.acta import RULE_OPTION_TOTALS, RULE_WITHIN_REGISTERED, option_totals
from actas.core.b64 import b64encode
from actas.core.entries import acta_entry, enroll_entry
from actas.core.keys import CONTEXT_ACTA, Signer
from actas.core.tally import ConflictRecord
from actas.core.verify import (
    S_ACTAS,
    S_CONFLICTS,
    S_ENROLL,
    S_ENTRIES,
    S_RESULTS,
    STEPS,
    Failure,
    Report,
)
from actas.log.tiled import TiledLog
from actas.publish.bundle import publish_bundle
from actas.simulate.run import create_data_dir
from actas.storage.base import NewEntry
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify
from tests.factories import (
    authority,
    device,
    election_and_enrollments,
    make_acta,
    signed_acta,
    small_election,
)

ELECTION = small_election()
MESAS = ELECTION.mesa_count
HEAD = 1 + MESAS  # the election entry and one enrollment per mesa
CONTEST = ELECTION.contests[0].id
DEFAULT = make_acta(ELECTION, 0)  # every valid acta below carries these counts


def row(data: bytes) -> NewEntry:
    """A store row for raw entry bytes (index fields are irrelevant to the published log)."""
    return NewEntry(data, hashlib.sha256(data).digest(), "raw")


def build(root: Path, entries: Sequence[bytes]) -> DataDir:
    """A data directory whose log holds exactly these entries, tiled and under a signed checkpoint."""
    data = create_data_dir(root, ELECTION, authority())
    store = SqliteLogStore(data.database)
    try:
        TiledLog(store, data.log, authority()).append([row(e) for e in entries])
    finally:
        store.close()
    return data


def valid_log(mesas: range = range(MESAS)) -> list[bytes]:
    """The election entry, every enrollment, and one valid acta per listed mesa."""
    return [*election_and_enrollments(ELECTION), *(signed_acta(ELECTION, i) for i in mesas)]


def publish_log_only(data: DataDir, out: Path) -> None:
    """Publish the definition and the log without results (publish_bundle cannot tally unparsable entries)."""
    out.mkdir()
    shutil.copyfile(data.election, out / "election.json")
    shutil.copytree(data.log, out / "log")
    shutil.copytree(data.authority_vkey.parent, out / "keys", ignore=shutil.ignore_patterns("*.key"))


def run(tmp_path: Path, entries: Sequence[bytes], results: bool = True) -> Report:
    data = build(tmp_path / "data", entries)
    if results:
        publish_bundle(data, tmp_path / "bundle")
    else:
        publish_log_only(data, tmp_path / "bundle")
    return verify(DirectoryReader(tmp_path / "bundle"), authority().verifier, workers=0)


def describe(report: Report) -> str:
    return "\n".join(f"step {f.step} {f.where}: {f.message}" for f in report.failures)


def failures_at(report: Report, step: int) -> list[Failure]:
    return [f for f in report.failures if f.step == step]


def national_actas(report: Report) -> int:
    """How many actas the verifier counted nationally (row: actas, registered, null, blank, votes…)."""
    return report.national[CONTEST][0]


def test_valid_log_verifies(tmp_path: Path) -> None:
    """The baseline every injection test departs from."""
    report = run(tmp_path, valid_log())
    assert report.ok, describe(report)
    assert report.size == HEAD + MESAS
    assert report.national[CONTEST] == [
        MESAS,
        MESAS * DEFAULT.registered,
        MESAS * DEFAULT.null,
        MESAS * DEFAULT.blank,
        *(MESAS * v for v in DEFAULT.options),
    ]


def test_acta_signed_by_device_enrolled_for_another_mesa(tmp_path: Path) -> None:
    # Device 1 is enrolled for mesa 1 only; it signs mesa 0's acta, which is otherwise valid.
    bad = signed_acta(ELECTION, 0, signer=device(1))
    report = run(tmp_path, [*valid_log(range(1, MESAS)), bad])
    leaf = HEAD + MESAS - 1
    assert failures_at(report, S_ACTAS) == [
        Failure(
            S_ACTAS,
            f"entry {leaf}",
            f"acta for mesa {ELECTION.mesa_id(0)!r}: signed by a key not enrolled for it",
        )
    ]
    # Not counted by the verifier; publish_bundle tallies without enrollment checks, so step 9 differs too.
    assert national_actas(report) == MESAS - 1
    assert {f.step for f in report.failures} == {S_ACTAS, S_RESULTS}


def test_acta_signed_by_never_enrolled_device(tmp_path: Path) -> None:
    bad = signed_acta(ELECTION, 0, signer=device(99))
    report = run(tmp_path, [*valid_log(range(1, MESAS)), bad])
    assert [(f.where, "not enrolled" in f.message) for f in failures_at(report, S_ACTAS)] == [
        (f"entry {HEAD + MESAS - 1}", True)
    ]
    assert national_actas(report) == MESAS - 1


def test_enrollment_not_signed_by_authority(tmp_path: Path) -> None:
    """A rogue enrollment fails step 6 and does not enrol: the acta of its device fails step 7."""
    rogue = Signer(ELECTION.origin, b"\x13" * 32)  # the authority's name, another key
    enroll = enroll_entry(ELECTION.origin, device(50).verifier, [ELECTION.mesa_id(0)], rogue)
    acta = signed_acta(ELECTION, 0, signer=device(50))
    report = run(tmp_path, [*valid_log(range(1, MESAS)), enroll, acta])
    first = HEAD + MESAS - 1
    assert failures_at(report, S_ENROLL) == [Failure(S_ENROLL, f"entry {first}", "authority signature does not verify")]
    assert [f.where for f in failures_at(report, S_ACTAS)] == [f"entry {first + 1}"]


@pytest.mark.parametrize(
    ("rule", "kwargs"),
    [
        # valid 520 + null 5 + blank 3 = 528 > 500 registered (option totals derived, so consistent)
        (RULE_WITHIN_REGISTERED, {"tickets": (300, 100, 90, 30)}),
        # option a should be 100 + 20 = 120 from its tickets
        (RULE_OPTION_TOTALS, {"options": (121, 90, 30)}),
        # the definition's declared rule: registered must be the definition's 500
        ("registered-matches", {"registered": 600}),
    ],
)
def test_acta_breaking_a_rule_is_named_at_step_7(tmp_path: Path, rule: str, kwargs: dict[str, object]) -> None:
    # Signed by mesa 0's own enrolled device after the counts were set: only the rule is at fault.
    bad = signed_acta(ELECTION, 0, **kwargs)
    report = run(tmp_path, [*valid_log(range(1, MESAS)), bad])
    [failure] = failures_at(report, S_ACTAS)
    assert failure.where == f"entry {HEAD + MESAS - 1}"
    assert failure.message.startswith(f"acta for mesa {ELECTION.mesa_id(0)!r} breaks ")
    assert f"{rule}: " in failure.message
    assert national_actas(report) == MESAS - 1
    assert {f.step for f in report.failures} <= {S_ACTAS, S_RESULTS}


def test_acta_altered_after_signing(tmp_path: Path) -> None:
    """Canonical, well-formed, but not what the device signed."""
    signed = signed_acta(ELECTION, 0)
    value = canonical.decode(signed)
    value["null"] += 1
    report = run(tmp_path, [*valid_log(range(1, MESAS)), canonical.encode(value)])
    assert failures_at(report, S_ACTAS) == [
        Failure(
            S_ACTAS,
            f"entry {HEAD + MESAS - 1}",
            f"acta for mesa {ELECTION.mesa_id(0)!r}: device signature does not verify",
        )
    ]


def test_non_canonical_entry_fails_step_4(tmp_path: Path) -> None:
    good = signed_acta(ELECTION, 0)
    spaced = good.replace(b'","', b'", "', 1)  # one insignificant space; same JSON value, same signature
    assert json.loads(spaced) == json.loads(good)
    entries = [*valid_log(range(1, MESAS)), spaced]
    report = run(tmp_path, entries, results=False)
    [failure] = failures_at(report, S_ENTRIES)
    assert failure.where == f"entry {HEAD + MESAS - 1}"
    assert "canonical" in failure.message
    for step in range(1, S_RESULTS):
        assert report.step_ok(step) is (step != S_ENTRIES), describe(report)


def test_entry_of_unknown_type_fails_step_4(tmp_path: Path) -> None:
    body = {"mesa": ELECTION.mesa_id(0), "type": "ballot", "v": 1}
    signature = device(0).sign_in_context(CONTEXT_ACTA, canonical.encode(body))
    unknown = canonical.encode({**body, "sig": b64encode(signature)})
    report = run(tmp_path, [*valid_log(), unknown], results=False)
    assert failures_at(report, S_ENTRIES) == [
        Failure(S_ENTRIES, f"entry {HEAD + MESAS}", "entry.type: unknown entry type 'ballot'")
    ]
    assert report.step_ok(S_ACTAS) is True


def test_duplicate_acta_fails_step_4_and_is_not_a_conflict(tmp_path: Path) -> None:
    entries = valid_log()
    entries.append(entries[HEAD + 2])  # mesa 2's acta, byte for byte, a second time
    report = run(tmp_path, entries)
    assert failures_at(report, S_ENTRIES) == [
        Failure(S_ENTRIES, f"entry {HEAD + MESAS}", f"duplicate of entry {HEAD + 2}")
    ]
    assert report.conflicts == []
    assert national_actas(report) == MESAS


def test_duplicate_of_a_conflicting_acta_fails_step_4(tmp_path: Path) -> None:
    """A byte-for-byte repeat of the second acta of a mesa is a duplicate, not a third conflicting acta."""
    second = signed_acta(ELECTION, 3, tickets=(10, 10, 10, 10))
    report = run(tmp_path, [*valid_log(), second, second])
    assert failures_at(report, S_ENTRIES) == [
        Failure(S_ENTRIES, f"entry {HEAD + MESAS + 1}", f"duplicate of entry {HEAD + MESAS}")
    ]
    assert report.conflicts == [ConflictRecord(ELECTION.mesa_id(3), CONTEST, (HEAD + 3, HEAD + MESAS))]


def test_duplicate_of_a_conflicting_acta_found_after_since(tmp_path: Path) -> None:
    """The saved verification state remembers conflicting actas, so a later repeat is still caught."""
    second = signed_acta(ELECTION, 3, tickets=(10, 10, 10, 10))
    data = build(tmp_path / "data", [*valid_log(), second])
    publish_bundle(data, tmp_path / "before")
    states = tmp_path / "state"
    assert verify(DirectoryReader(tmp_path / "before"), authority().verifier, workers=0, state_dir=states).ok
    store = SqliteLogStore(data.database)
    try:
        TiledLog(store, data.log, authority()).append([row(second)])
    finally:
        store.close()
    publish_bundle(data, tmp_path / "after")
    since = (tmp_path / "before/log/checkpoint").read_bytes()
    reader = DirectoryReader(tmp_path / "after")
    report = verify(reader, authority().verifier, workers=0, since=since, state_dir=states)
    assert report.since == HEAD + MESAS + 1
    assert failures_at(report, S_ENTRIES) == [
        Failure(S_ENTRIES, f"entry {HEAD + MESAS + 1}", f"duplicate of entry {HEAD + MESAS}")
    ]


def test_conflicting_acta_is_listed_and_the_first_counts(tmp_path: Path) -> None:
    other_tickets = (10, 10, 10, 10)
    second = signed_acta(ELECTION, 3, tickets=other_tickets)
    report = run(tmp_path, [*valid_log(), second])
    assert report.ok, describe(report)
    assert report.step_ok(S_CONFLICTS) is True
    assert report.conflicts == [ConflictRecord(ELECTION.mesa_id(3), CONTEST, (HEAD + 3, HEAD + MESAS))]
    votes = report.national[CONTEST][4:]
    assert votes == [MESAS * v for v in DEFAULT.options]  # the second acta's counts are nowhere
    assert option_totals(other_tickets, ELECTION.contests[0]) != DEFAULT.options
    assert report.to_value()["conflicts"] == [
        {"mesa": ELECTION.mesa_id(3), "contest": CONTEST, "leaves": [HEAD + 3, HEAD + MESAS]}
    ]


def test_conflict_needs_an_enrolled_signer(tmp_path: Path) -> None:
    """A second acta from an unenrolled key is a step-7 failure, not a conflict."""
    second = acta_entry(make_acta(ELECTION, 3, tickets=(1, 1, 1, 1), signer=device(4)), device(4))
    report = run(tmp_path, [*valid_log(), second])
    assert report.conflicts == []
    assert [f.where for f in failures_at(report, S_ACTAS)] == [f"entry {HEAD + MESAS}"]


def test_report_lists_every_step(tmp_path: Path) -> None:
    report = run(tmp_path, valid_log(range(2)))
    steps = report.to_value()["steps"]
    assert isinstance(steps, list)
    assert [s["number"] for s in steps] == [n for n, _, _ in STEPS]
    assert all(s["ok"] is True for s in steps)


def test_acta_before_its_enrollment_in_the_same_bundle_fails_step_7(tmp_path: Path) -> None:
    """Enrollment takes effect in log order, even inside one entry bundle."""
    election_entry, *enrollments = election_and_enrollments(ELECTION)
    early = signed_acta(ELECTION, 0)  # logged before device 0 is enrolled
    report = run(tmp_path, [election_entry, early, *enrollments], results=False)
    assert [f.where for f in failures_at(report, S_ACTAS)] == ["entry 1"]


def test_failures_in_one_bundle_name_their_own_entries(tmp_path: Path) -> None:
    """A bundle's signatures are checked in one run after parsing: each verdict stays with its own entry."""
    altered = canonical.decode(signed_acta(ELECTION, 0))
    altered["null"] += 1
    entries = [*valid_log(range(2, MESAS)), b'{"not": "an entry"}', canonical.encode(altered), signed_acta(ELECTION, 1)]
    report = run(tmp_path, entries, results=False)
    first_bad = HEAD + MESAS - 2
    assert [f.where for f in failures_at(report, S_ENTRIES)] == [f"entry {first_bad}"]
    assert failures_at(report, S_ACTAS) == [
        Failure(
            S_ACTAS,
            f"entry {first_bad + 1}",
            f"acta for mesa {ELECTION.mesa_id(0)!r}: device signature does not verify",
        )
    ]
    assert national_actas(report) == MESAS - 1  # mesa 1's acta, after both bad entries, is counted
