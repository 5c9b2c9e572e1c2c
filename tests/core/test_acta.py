"""The acta model and its arithmetic rules, built-in and declared, over a small election."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actas.core.acta import (
    RULE_KNOWN_CONTEST,
    RULE_KNOWN_ELECTION,
    RULE_KNOWN_MESA,
    RULE_NON_NEGATIVE,
    RULE_OPTION_TOTALS,
    RULE_TICKET_COUNT,
    RULE_WITHIN_REGISTERED,
    Acta,
    Finding,
    Severity,
    check_rules,
    errors_of,
    option_totals,
)
from actas.core.election import Election
from actas.core.keys import Signer
from actas.errors import MalformedError

ORIGIN = "results.example.org/test-2024"
DEVICE = str(Signer.from_seed("device-1", bytes(range(32))).verifier)


def _election(rules: list[dict[str, Any]] | None = None) -> Election:
    """Mesas m1, m2; contest "pres": options a, b; tickets t1→a, t2→b, t3→a (a has two positions)."""
    value: dict[str, Any] = {
        "v": 1,
        "origin": ORIGIN,
        "title": "Test election",
        "levels": ["estado"],
        "areas": [{"code": "01", "name": "Uno"}],
        "mesas": [
            {"id": "m1", "area": "01", "registered": 100},
            {"id": "m2", "area": "01", "registered": 200},
        ],
        "contests": [
            {
                "id": "pres",
                "name": "Presidente",
                "options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
                "tickets": [
                    {"id": "t1", "name": "T1", "option": "a"},
                    {"id": "t2", "name": "T2", "option": "b"},
                    {"id": "t3", "name": "T3", "option": "a"},
                ],
            },
            {"id": "gob", "name": "Gobernador", "options": [{"id": "x", "name": "X"}]},
        ],
    }
    if rules is not None:
        value["rules"] = rules
    return Election.from_value(value)


ELECTION = _election()


def _acta(**changes: Any) -> Acta:
    """A good acta for m1: tickets 30+20+10 → a=40, b=20; 60 valid + 5 null + 5 blank = 70 of 100."""
    fields: dict[str, Any] = {
        "election": ORIGIN,
        "mesa": "m1",
        "contest": "pres",
        "registered": 100,
        "tickets": (30, 20, 10),
        "options": (40, 20),
        "null": 5,
        "blank": 5,
        "device": DEVICE,
    }
    fields.update(changes)
    return Acta(**fields)


def _rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def _only(findings: list[Finding], rule: str) -> Finding:
    assert _rules(findings) == [rule], findings
    return findings[0]


# --- the model --------------------------------------------------------------------------------------------


def test_good_acta_has_no_findings() -> None:
    acta = _acta()
    assert check_rules(acta, ELECTION) == []
    assert acta.valid_votes == 60
    assert acta.cast == 70
    assert check_rules(_acta(mesa="m2", registered=200), ELECTION) == []
    assert check_rules(_acta(contest="gob", tickets=(7,), options=(7,)), ELECTION) == []


def test_option_totals_follow_the_ticket_map() -> None:
    contest = ELECTION.contest("pres")
    assert contest is not None
    assert option_totals((30, 20, 10), contest) == (40, 20)
    assert option_totals([0, 5, 1], contest) == (1, 5)


def test_to_value_is_the_canonical_body() -> None:
    value = _acta().to_value()
    assert value == {
        "blank": 5,
        "contest": "pres",
        "device": DEVICE,
        "election": ORIGIN,
        "mesa": "m1",
        "null": 5,
        "options": [40, 20],
        "registered": 100,
        "tickets": [30, 20, 10],
        "type": "acta",
        "v": 1,
    }
    assert list(value) == sorted(value)


def test_device_verifier_parses_the_key() -> None:
    assert str(_acta().device_verifier()) == DEVICE


@pytest.mark.parametrize("field", ["registered", "null", "blank"])
@pytest.mark.parametrize("bad", [True, False, 1.0, "5", None, [5]])
def test_counts_must_be_ints(field: str, bad: Any) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        _acta(**{field: bad})


@pytest.mark.parametrize("field", ["tickets", "options"])
@pytest.mark.parametrize("bad", [(True, 1, 1), (1.0, 1, 1), ("1", 1, 1), (None,), ((1,), 1), [30, 20, 10], (), None, 5])
def test_count_lists_must_be_tuples_of_ints(field: str, bad: Any) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        _acta(**{field: bad})


def test_list_error_names_the_index() -> None:
    with pytest.raises(MalformedError, match=r"acta\.tickets\[2\]"):
        _acta(tickets=(1, 2, True))


@pytest.mark.parametrize("field", ["election", "mesa", "contest", "device"])
@pytest.mark.parametrize("bad", ["", None, 1, b"m1"])
def test_ids_must_be_non_empty_strings(field: str, bad: Any) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        _acta(**{field: bad})


@pytest.mark.parametrize("field", ["mesa", "contest"])
@pytest.mark.parametrize("bad", ["m 1", " m1", "m1 ", "m1\n", "m\t1", "m/1", "m+1", "m\u00e91", "x" * 65, "m\u20281"])
def test_ids_with_spaces_or_other_characters_rejected(field: str, bad: str) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        _acta(**{field: bad})


def test_acta_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _acta().null = 3  # type: ignore[misc]


# --- built-in rules ---------------------------------------------------------------------------------------


def test_known_election() -> None:
    finding = _only(check_rules(_acta(election="other.example/e"), ELECTION), RULE_KNOWN_ELECTION)
    assert finding.severity == "error"
    assert "other.example/e" in finding.message
    assert ORIGIN in finding.message


def test_known_mesa() -> None:
    finding = _only(check_rules(_acta(mesa="m9"), ELECTION), RULE_KNOWN_MESA)
    assert finding.severity == "error"
    assert "'m9'" in finding.message


def test_known_contest() -> None:
    finding = _only(check_rules(_acta(contest="senado"), ELECTION), RULE_KNOWN_CONTEST)
    assert finding.severity == "error"
    assert "'senado'" in finding.message


@pytest.mark.parametrize(
    ("tickets", "options"),
    [((30, 30), (40, 20)), ((30, 20, 10, 0), (40, 20)), ((30, 20, 10), (40,)), ((30, 20, 10), (40, 20, 0))],
)
def test_ticket_count_matches_contest(tickets: tuple[int, ...], options: tuple[int, ...]) -> None:
    finding = _only(check_rules(_acta(tickets=tickets, options=options), ELECTION), RULE_TICKET_COUNT)
    assert finding.severity == "error"
    assert "'pres'" in finding.message
    assert "3 tickets and 2 options" in finding.message
    assert f"acta has {len(tickets)} and {len(options)}" in finding.message


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"null": -1, "blank": 11}, "null"),
        ({"blank": -1, "null": 11}, "blank"),
        ({"registered": -1}, "registered"),
        ({"tickets": (30, -20, 50), "options": (80, -20)}, "tickets[1]"),
    ],
)
def test_counts_non_negative(changes: dict[str, Any], named: str) -> None:
    findings = check_rules(_acta(**changes), ELECTION)
    finding = next(f for f in findings if f.rule == RULE_NON_NEGATIVE)
    assert finding.severity == "error"
    assert named in finding.message.split("negative count in ", 1)[1].split(", ")
    if named != "registered":  # a negative registered also breaks votes-within-registered
        assert _rules(findings) == [RULE_NON_NEGATIVE]


def test_negative_option_named() -> None:
    findings = check_rules(_acta(options=(-1, 20)), ELECTION)
    assert _rules(findings) == [RULE_NON_NEGATIVE, RULE_OPTION_TOTALS]
    assert "options[0]" in findings[0].message


def test_option_totals_match_tickets() -> None:
    finding = _only(check_rules(_acta(options=(41, 20)), ELECTION), RULE_OPTION_TOTALS)
    assert finding.severity == "error"
    assert "a: 41 stated, 40 from tickets" in finding.message
    assert "b:" not in finding.message  # only the wrong option is named
    # Tickets that map to the same option: moving votes between t1 and t3 keeps the totals right,
    # moving them to t2 does not.
    assert check_rules(_acta(tickets=(10, 20, 30)), ELECTION) == []
    assert _rules(check_rules(_acta(tickets=(30, 30, 0)), ELECTION)) == [RULE_OPTION_TOTALS]


def test_votes_within_registered_boundary() -> None:
    assert check_rules(_acta(null=20, blank=20), ELECTION) == []  # 60 + 20 + 20 = 100 = registered
    finding = _only(check_rules(_acta(null=21, blank=20), ELECTION), RULE_WITHIN_REGISTERED)
    assert finding.severity == "error"
    assert "101" in finding.message
    assert "registered 100" in finding.message


def test_several_findings_in_stable_order() -> None:
    acta = _acta(election="x", mesa="m9", options=(1, 2), registered=10)
    assert _rules(check_rules(acta, ELECTION)) == [
        RULE_KNOWN_ELECTION,
        RULE_KNOWN_MESA,
        RULE_OPTION_TOTALS,
        RULE_WITHIN_REGISTERED,
    ]
    assert all(f.severity == "error" for f in check_rules(acta, ELECTION))


# --- declared rules ---------------------------------------------------------------------------------------


def _declared(check: str, percent: int | None, severity: Severity = "warning") -> Election:
    rule: dict[str, Any] = {"id": f"my-{check}", "severity": severity, "check": check}
    if percent is not None:
        rule["percent"] = percent
    return _election([rule])


def _declared_findings(election: Election, acta: Acta) -> list[Finding]:
    findings = check_rules(acta, election)
    assert all(f.rule.startswith("my-") for f in findings), findings  # no built-in rule interferes
    return findings


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_registered_matches_definition(severity: Severity) -> None:
    election = _declared("registered_matches_definition", None, severity)
    assert _declared_findings(election, _acta(registered=100)) == []
    (finding,) = _declared_findings(election, _acta(registered=101))
    assert finding == Finding("my-registered_matches_definition", severity, finding.message)
    assert "101" in finding.message
    assert "100" in finding.message
    assert _declared_findings(election, _acta(registered=99))
    # m2 has 200 registered in the definition
    assert _declared_findings(election, _acta(mesa="m2", registered=200)) == []
    assert _declared_findings(election, _acta(mesa="m2", registered=100))


def test_registered_matches_definition_skips_unknown_mesa() -> None:
    election = _declared("registered_matches_definition", None)
    assert _rules(check_rules(_acta(mesa="m9", registered=71), election)) == [RULE_KNOWN_MESA]


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_turnout_at_most(severity: Severity) -> None:
    election = _declared("turnout_at_most", 90, severity)
    # cast = 60 + null + blank; registered 100
    assert _declared_findings(election, _acta(null=15, blank=15)) == []  # 90 %
    (finding,) = _declared_findings(election, _acta(null=16, blank=15))  # 91 %
    assert (finding.rule, finding.severity) == ("my-turnout_at_most", severity)
    assert "91/100" in finding.message
    assert "90%" in finding.message
    # percentages are exact integer comparisons: 9/10 at 90 % is fine, 901/1000 is not
    assert (
        _declared_findings(
            election, _acta(registered=1000, tickets=(300, 200, 400), options=(700, 200), null=0, blank=0)
        )
        == []
    )
    assert _declared_findings(
        election, _acta(registered=1000, tickets=(300, 200, 401), options=(701, 200), null=0, blank=0)
    )


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_null_at_most(severity: Severity) -> None:
    election = _declared("null_at_most", 10, severity)
    # cast held at 100: tickets shrink as null grows
    assert _declared_findings(election, _acta(tickets=(70, 20, 0), options=(70, 20), null=10, blank=0)) == []
    (finding,) = _declared_findings(election, _acta(tickets=(69, 20, 0), options=(69, 20), null=11, blank=0))
    assert (finding.rule, finding.severity) == ("my-null_at_most", severity)
    assert "null 11/100" in finding.message
    assert "10%" in finding.message


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_blank_at_most(severity: Severity) -> None:
    election = _declared("blank_at_most", 10, severity)
    assert _declared_findings(election, _acta(tickets=(70, 20, 0), options=(70, 20), null=0, blank=10)) == []
    (finding,) = _declared_findings(election, _acta(tickets=(69, 20, 0), options=(69, 20), null=0, blank=11))
    assert (finding.rule, finding.severity) == ("my-blank_at_most", severity)
    assert "blank 11/100" in finding.message
    assert "10%" in finding.message


@pytest.mark.parametrize("severity", ["warning", "error"])
def test_option_share_at_most(severity: Severity) -> None:
    election = _declared("option_share_at_most", 50, severity)
    # valid = 100; a's share is the sum of its two tickets
    assert _declared_findings(election, _acta(tickets=(25, 50, 25), options=(50, 50), null=0, blank=0)) == []
    (finding,) = _declared_findings(election, _acta(tickets=(26, 49, 25), options=(51, 49), null=0, blank=0))
    assert (finding.rule, finding.severity) == ("my-option_share_at_most", severity)
    assert "51/100" in finding.message
    assert "50%" in finding.message
    # either option may be the one over the limit
    assert _declared_findings(election, _acta(tickets=(25, 51, 24), options=(49, 51), null=0, blank=0))


def test_percent_zero_and_hundred() -> None:
    zero = _declared("null_at_most", 0)
    assert _declared_findings(zero, _acta(null=0)) == []
    assert _declared_findings(zero, _acta(null=1))
    hundred = _declared("option_share_at_most", 100)
    assert _declared_findings(hundred, _acta(tickets=(30, 0, 30), options=(60, 0))) == []


def test_zero_ballots_do_not_divide_by_zero() -> None:
    election = _election(
        [
            {"id": "t", "severity": "warning", "check": "turnout_at_most", "percent": 0},
            {"id": "n", "severity": "warning", "check": "null_at_most", "percent": 0},
            {"id": "b", "severity": "warning", "check": "blank_at_most", "percent": 0},
            {"id": "o", "severity": "warning", "check": "option_share_at_most", "percent": 0},
        ]
    )
    empty = _acta(registered=0, tickets=(0, 0, 0), options=(0, 0), null=0, blank=0)
    assert check_rules(empty, election) == []


def test_declared_rules_all_reported_in_definition_order() -> None:
    election = _election(
        [
            {"id": "z-blank", "severity": "error", "check": "blank_at_most", "percent": 1},
            {"id": "a-null", "severity": "warning", "check": "null_at_most", "percent": 1},
        ]
    )
    findings = check_rules(_acta(), election)
    assert _rules(findings) == ["z-blank", "a-null"]
    assert _rules(errors_of(findings)) == ["z-blank"]


def test_errors_of_keeps_only_errors() -> None:
    findings = [Finding("a", "warning", "w"), Finding("b", "error", "e"), Finding("c", "error", "e2")]
    assert errors_of(findings) == findings[1:]
    assert errors_of([Finding("a", "warning", "w")]) == []


def test_registered_is_bounded_so_totals_cannot_overflow() -> None:
    """A mesa cannot claim more than a million voters: sums over a million actas stay far inside int64."""
    from actas.core.acta import RULE_REGISTERED_BOUND
    from tests.factories import make_acta, small_election

    election = small_election()
    acta = make_acta(election, 0, registered=2**53 - 1)
    rules = [f.rule for f in check_rules(acta, election) if f.severity == "error"]
    assert RULE_REGISTERED_BOUND in rules
