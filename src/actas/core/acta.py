"""The acta (tally sheet of one mesa for one contest) and its arithmetic rules.

An :class:`Acta` is always well-formed (types, non-empty ids, a parseable device key); whether its numbers make
sense is a separate question answered by :func:`check_rules` as a list of :class:`Finding` values with a severity.
An acta with any finding of severity ``error`` is rejected at append and reported by the verifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from actas.core.canonical import MAX_SAFE_INTEGER
from actas.core.election import MAX_REGISTERED, Contest, Election
from actas.core.keys import Verifier
from actas.errors import MalformedError

Severity = Literal["error", "warning"]
_ID = re.compile(r"[0-9A-Za-z._-]{1,64}\Z")
_INT_ONLY = {int}

# Built-in rule ids (docs/formats.md §4); declared rules use the ids the election definition gives them.
RULE_KNOWN_ELECTION = "known-election"
RULE_KNOWN_MESA = "known-mesa"
RULE_KNOWN_CONTEST = "known-contest"
RULE_TICKET_COUNT = "ticket-count-matches-contest"
RULE_NON_NEGATIVE = "counts-non-negative"
RULE_OPTION_TOTALS = "option-totals-match-tickets"
RULE_WITHIN_REGISTERED = "votes-within-registered"
RULE_REGISTERED_BOUND = "registered-within-bounds"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule an acta breaks, with its severity and a human explanation."""

    rule: str
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class Acta:
    """The signed content of a tally sheet: everything but the signature itself."""

    election: str
    mesa: str
    contest: str
    registered: int
    tickets: tuple[int, ...]
    options: tuple[int, ...]
    null: int
    blank: int
    device: str

    def __post_init__(self) -> None:
        for name, text in (("election", self.election), ("device", self.device)):
            if not isinstance(text, str) or not text:
                raise MalformedError(f"acta.{name}: must be a non-empty string")
        for name, text in (("mesa", self.mesa), ("contest", self.contest)):
            if not isinstance(text, str) or not _ID.match(text):
                raise MalformedError(f"acta.{name}: must match [0-9A-Za-z._-]{{1,64}}")
        for name, value in (("registered", self.registered), ("null", self.null), ("blank", self.blank)):
            if type(value) is not int or not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise MalformedError(f"acta.{name}: must be an integer within ±(2**53-1)")
        for name, values in (("tickets", self.tickets), ("options", self.options)):
            if not isinstance(values, tuple) or not values:
                raise MalformedError(f"acta.{name}: must be a non-empty list of integers")
            # Checked in C for the common case; the loop only runs to name the bad position.
            if set(map(type, values)) != _INT_ONLY or min(values) < -MAX_SAFE_INTEGER or max(values) > MAX_SAFE_INTEGER:
                for i, value in enumerate(values):
                    if type(value) is not int or not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                        raise MalformedError(f"acta.{name}[{i}]: must be an integer within ±(2**53-1)")

    @property
    def valid_votes(self) -> int:
        """Votes for options (the sum of the ticket counts)."""
        return sum(self.tickets)

    @property
    def cast(self) -> int:
        """Valid plus null plus blank ballots."""
        return self.valid_votes + self.null + self.blank

    def device_verifier(self) -> Verifier:
        """The device key that signed this acta (parsed from its key string)."""
        return Verifier.parse(self.device)

    def to_value(self) -> dict[str, object]:
        """The acta body as a canonical-JSON value (without signature)."""
        return {
            "blank": self.blank,
            "contest": self.contest,
            "device": self.device,
            "election": self.election,
            "mesa": self.mesa,
            "null": self.null,
            "options": list(self.options),
            "registered": self.registered,
            "tickets": list(self.tickets),
            "type": "acta",
            "v": 1,
        }


def option_totals(tickets: tuple[int, ...] | list[int], contest: Contest) -> tuple[int, ...]:
    """Per-option totals derived from per-ticket counts through the contest's ticket → option map."""
    if len(tickets) != len(contest.ticket_option):
        raise MalformedError(f"acta.tickets: {len(tickets)} counts for {len(contest.ticket_option)} tickets")
    totals = [0] * len(contest.options)
    for count, option in zip(tickets, contest.ticket_option, strict=True):
        totals[option] += count
    return tuple(totals)


def _percent_over(part: int, whole: int, percent: int) -> bool:
    # Integers only: part/whole > percent/100  <=>  100·part > percent·whole.
    return 100 * part > percent * whole


def check_rules(acta: Acta, election: Election, mesa: int | None = None) -> list[Finding]:
    """Return every rule the acta breaks, built-in and declared, in a stable order.

    ``mesa`` is the acta's mesa index when the caller has already looked it up.
    """
    findings: list[Finding] = []
    if acta.election != election.origin:
        findings.append(
            Finding(RULE_KNOWN_ELECTION, "error", f"acta is for {acta.election!r}, not {election.origin!r}")
        )
    if mesa is None:
        mesa = election.mesa_index(acta.mesa)
    if mesa is None:
        findings.append(Finding(RULE_KNOWN_MESA, "error", f"mesa {acta.mesa!r} is not in the definition"))
    contest = election.contest(acta.contest)
    if contest is None:
        findings.append(Finding(RULE_KNOWN_CONTEST, "error", f"contest {acta.contest!r} is not in the definition"))
        return findings
    if len(acta.tickets) != len(contest.tickets) or len(acta.options) != len(contest.options):
        findings.append(
            Finding(
                RULE_TICKET_COUNT,
                "error",
                f"contest {contest.id!r} has {len(contest.tickets)} tickets and {len(contest.options)} options; "
                f"acta has {len(acta.tickets)} and {len(acta.options)}",
            )
        )
        return findings
    if min(acta.registered, acta.null, acta.blank, min(acta.tickets), min(acta.options)) < 0:
        negative = [
            name
            for name, value in (("registered", acta.registered), ("null", acta.null), ("blank", acta.blank))
            if value < 0
        ]
        negative += [f"tickets[{i}]" for i, value in enumerate(acta.tickets) if value < 0]
        negative += [f"options[{i}]" for i, value in enumerate(acta.options) if value < 0]
        findings.append(Finding(RULE_NON_NEGATIVE, "error", "negative count in " + ", ".join(negative)))
    derived = option_totals(acta.tickets, contest)
    if derived != acta.options:
        wrong = [
            f"{contest.options[i].id}: {stated} stated, {want} from tickets"
            for i, (stated, want) in enumerate(zip(acta.options, derived, strict=True))
            if stated != want
        ]
        findings.append(Finding(RULE_OPTION_TOTALS, "error", "option totals differ: " + "; ".join(wrong)))
    if acta.registered > MAX_REGISTERED:
        message = f"registered {acta.registered} is over the {MAX_REGISTERED:,} a mesa may have"
        findings.append(Finding(RULE_REGISTERED_BOUND, "error", message))
    cast = acta.cast
    if cast > acta.registered:
        findings.append(
            Finding(
                RULE_WITHIN_REGISTERED,
                "error",
                f"valid {acta.valid_votes} + null {acta.null} + blank {acta.blank} = {cast} "
                f"exceeds registered {acta.registered}",
            )
        )
    findings.extend(_declared(acta, election, mesa))
    return findings


def _declared(acta: Acta, election: Election, mesa: int | None) -> list[Finding]:
    findings: list[Finding] = []
    cast = acta.cast
    valid = acta.valid_votes
    for rule in election.rules:
        percent = rule.percent if rule.percent is not None else 100
        broken: str | None = None
        if rule.check == "registered_matches_definition":
            if mesa is not None and acta.registered != election.mesa_registered(mesa):
                broken = f"registered {acta.registered} differs from the definition's {election.mesa_registered(mesa)}"
        elif rule.check == "turnout_at_most":
            if _percent_over(cast, acta.registered, percent):
                broken = f"turnout {cast}/{acta.registered} exceeds {percent}%"
        elif rule.check == "null_at_most":
            if _percent_over(acta.null, cast, percent):
                broken = f"null {acta.null}/{cast} exceeds {percent}% of ballots cast"
        elif rule.check == "blank_at_most":
            if _percent_over(acta.blank, cast, percent):
                broken = f"blank {acta.blank}/{cast} exceeds {percent}% of ballots cast"
        elif rule.check == "option_share_at_most":
            top = max(acta.options) if acta.options else 0
            if _percent_over(top, valid, percent):
                broken = f"one option has {top}/{valid} valid votes, over {percent}%"
        if broken is not None:
            findings.append(Finding(rule.id, rule.severity, broken))
    return findings


def errors_of(findings: list[Finding]) -> list[Finding]:
    """The findings of severity error."""
    return [f for f in findings if f.severity == "error"]
