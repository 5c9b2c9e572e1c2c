"""The sequencer: checks, deduplication, enrollment, conflicts, and nothing stored for rejected input."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from actas.core import canonical
from actas.core.election import Election
from actas.core.entries import acta_entry, enroll_entry
from actas.errors import EnrollmentError, MalformedError, NonCanonicalError, RuleError, SignatureError
from actas.log.writer import LogWriter
from actas.storage.base import NewEntry
from actas.storage.memory import MemoryLogStore
from actas.storage.sqlite import SqliteLogStore
from tests.factories import (
    authority,
    device,
    election_and_enrollments,
    make_acta,
    signed_acta,
    small_election,
)


@pytest.fixture
def election() -> Election:
    """The small test election."""
    return small_election()


@pytest.fixture
def writer(election: Election, tmp_path: Path) -> Iterator[LogWriter]:
    """A writer with the election entry and one enrollment per mesa."""
    w = LogWriter(SqliteLogStore(tmp_path / "log.db"), tmp_path / "log", election, authority())
    results = w.append(election_and_enrollments(election))
    assert all(r.status == "appended" for r in results)
    yield w
    w.close()


def test_append_acta(writer: LogWriter, election: Election) -> None:
    """A good acta is appended at the next index and the checkpoint covers it."""
    before = writer.size
    [result] = writer.append([signed_acta(election, 0)])
    assert result.status == "appended"
    assert result.index == before
    assert writer.size == before + 1


def test_identical_resubmission_is_a_no_op(writer: LogWriter, election: Election) -> None:
    """Resending the same bytes returns the existing leaf and adds nothing."""
    [first] = writer.append([signed_acta(election, 1)])
    size = writer.size
    [again] = writer.append([signed_acta(election, 1)])
    assert again.status == "duplicate"
    assert again.index == first.index
    assert writer.size == size


def test_duplicate_within_one_batch(writer: LogWriter, election: Election) -> None:
    """The same acta twice in one batch is stored once."""
    size = writer.size
    a, b = writer.append([signed_acta(election, 2), signed_acta(election, 2)])
    assert (a.status, b.status) == ("appended", "duplicate")
    assert b.index == a.index
    assert writer.size == size + 1


def test_different_second_acta_is_a_logged_conflict(writer: LogWriter, election: Election) -> None:
    """A second, different acta for a mesa is appended and flagged; both stay."""
    [first] = writer.append([signed_acta(election, 3)])
    [second] = writer.append([signed_acta(election, 3, tickets=(99, 20, 90, 30))])
    assert second.status == "conflict"
    assert second.conflicts_with == (first.index,)
    assert second.index == first.index + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        ("unenrolled", EnrollmentError),
        ("rule", RuleError),
        ("signature", SignatureError),
        ("noncanonical", NonCanonicalError),
        ("unknown-type", MalformedError),
    ],
)
def test_rejected_submissions_change_nothing(
    writer: LogWriter, election: Election, make: str, error: type[Exception]
) -> None:
    """Each kind of bad submission is rejected with its specific error and the log does not move."""
    if make == "unenrolled":
        data = signed_acta(election, 0, signer=device(5))  # device 5 is enrolled for mesa 5 only
    elif make == "rule":
        data = signed_acta(election, 0, tickets=(400, 20, 90, 30))  # 540 + 8 > 500 registered
    elif make == "signature":
        good = signed_acta(election, 0)
        at = good.index(b'"sig":"') + 10
        data = good[:at] + (b"A" if good[at : at + 1] != b"A" else b"B") + good[at + 1 :]
    elif make == "noncanonical":
        data = signed_acta(election, 0).replace(b'{"blank"', b'{ "blank"')
    else:
        data = canonical.encode({"type": "ballot", "v": 1, "sig": ""})
    checkpoint = writer.checkpoint_bytes()
    size = writer.size
    [result] = writer.append([data])
    assert result.status == "rejected"
    assert isinstance(result.error, error)
    assert writer.size == size
    assert writer.checkpoint_bytes() == checkpoint


def test_rule_error_names_the_rule(writer: LogWriter, election: Election) -> None:
    """The rejection says which rule was broken."""
    [result] = writer.append([signed_acta(election, 0, tickets=(400, 20, 90, 30))])
    assert isinstance(result.error, RuleError)
    assert "votes-within-registered" in result.error.rules


def test_registered_must_match_the_definition(writer: LogWriter, election: Election) -> None:
    """A rule the definition declares with severity error also rejects."""
    [result] = writer.append([signed_acta(election, 0, registered=499)])
    assert isinstance(result.error, RuleError)
    assert result.error.rules == ("registered-matches",)


def test_warning_rules_are_reported_not_rejected(writer: LogWriter, election: Election) -> None:
    """A warning (turnout over 95%) lets the acta in and reports the finding."""
    [result] = writer.append([signed_acta(election, 0, tickets=(300, 20, 100, 60), null=0, blank=0)])
    assert result.status == "appended"
    assert any(w.startswith("turnout-high") for w in result.warnings)


def test_first_entry_must_be_the_election(election: Election, tmp_path: Path) -> None:
    """An empty log accepts only the election entry first."""
    w = LogWriter(MemoryLogStore(), tmp_path, election, authority())
    [result] = w.append([enroll_entry(election.origin, device(0).verifier, [election.mesa_id(0)], authority())])
    assert result.status == "rejected"
    w.bootstrap()
    assert w.size == 1


def test_enrollment_in_the_same_batch_counts(election: Election, tmp_path: Path) -> None:
    """An acta may follow its device's enrollment within one batch."""
    w = LogWriter(MemoryLogStore(), tmp_path, election, authority())
    w.bootstrap()
    enroll = enroll_entry(election.origin, device(0).verifier, [election.mesa_id(0)], authority())
    results = w.append([enroll, signed_acta(election, 0)])
    assert [r.status for r in results] == ["appended", "appended"]


def test_parallel_checks_give_the_same_results(election: Election, tmp_path: Path) -> None:
    """Worker-process checking (large batches) decides exactly as the in-process path."""
    submissions = []
    for i in range(election.mesa_count):
        submissions.append(signed_acta(election, i))
        submissions.append(signed_acta(election, i, signer=device((i + 1) % election.mesa_count)))
    submissions = submissions * 80  # over the parallel threshold
    outcomes = []
    for workers, name in ((0, "serial"), (2, "parallel")):
        w = LogWriter(MemoryLogStore(), tmp_path / name, election, authority(), workers=workers)
        w.append(election_and_enrollments(election))
        results = w.append(submissions)
        outcomes.append([(r.status, r.index, type(r.error).__name__) for r in results])
        checkpoint = w.checkpoint_bytes()
        w.close()
        outcomes[-1].append(("checkpoint", len(checkpoint), checkpoint.decode()))  # type: ignore[arg-type]
    assert outcomes[0] == outcomes[1]


def test_acta_entry_refuses_a_foreign_device_string(election: Election) -> None:
    """The acta names the key that signs it."""
    acta = make_acta(election, 0, signer=device(0))
    with pytest.raises(Exception, match="different key"):
        acta_entry(acta, device(1))


def test_enrollment_not_stored_is_not_believed(election: Election, tmp_path: Path) -> None:
    """If storing a batch fails, its enrollments do not let later actas in."""
    from actas.errors import StorageError

    class FailingStore(MemoryLogStore):
        fail = False

        def append(self, entries: Sequence[NewEntry]) -> None:
            if self.fail:
                raise StorageError("disk full")
            super().append(entries)

    store = FailingStore()
    w = LogWriter(store, tmp_path, election, authority())
    w.bootstrap()
    store.fail = True
    with pytest.raises(StorageError):
        w.append([enroll_entry(election.origin, device(0).verifier, [election.mesa_id(0)], authority())])
    store.fail = False
    [result] = w.append([signed_acta(election, 0)])
    assert result.status == "rejected"
    assert isinstance(result.error, EnrollmentError)
