"""The CNE 2024 acta QR: the published example, strict refusals with positions, round trips and fuzzing."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.core.election import Election
from actas.core.qr_cne import MAX_COUNT, CneActa, CnePayload, cne_counts, format_cne, parse_cne
from actas.errors import MalformedError

EXAMPLE = "201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,1,2,0,0,0,5,7,155,1,1!0!0"
TICKETS_AT = len("201301006.01.1.0001!")
# Ballot positions 1–13 count for "maduro", 34–36 for "gonzalez"; the other 22 for eight further options.
LAYOUT = ["maduro"] * 13 + ["o2"] * 6 + ["o3"] + ["o4"] * 4 + ["o5"] * 6 + ["o6"] + ["o7"] * 2
LAYOUT += ["gonzalez"] * 3 + ["o9", "o10"]
OPTIONS = ["maduro", "o2", "o3", "o4", "o5", "o6", "o7", "gonzalez", "o9", "o10"]


def cne_value(contests: int = 1) -> dict[str, Any]:
    """A one-centre definition with the example's mesa and a 38-ticket contest (and optionally a second)."""
    contest = {
        "id": "presidente",
        "name": "Presidency",
        "options": [{"id": o, "name": f"Option {o}"} for o in OPTIONS],
        "tickets": [{"id": f"t{i + 1:02d}", "name": f"Card {i + 1}", "option": o} for i, o in enumerate(LAYOUT)],
    }
    extra = {
        "id": "consulta",
        "name": "Referendum",
        "options": [{"id": "si", "name": "Sí"}, {"id": "no", "name": "No"}],
    }
    centre = {"code": "201301006", "name": "Centro 201301006"}
    parish = {"code": "201301", "name": "Parroquia", "children": [centre]}
    municipality = {"code": "2013", "name": "Municipio", "children": [parish]}
    return {
        "v": 1,
        "origin": "results.example.org/cne-test",
        "title": "CNE test",
        "areas": [{"code": "20", "name": "Estado", "children": [municipality]}],
        "mesas": [{"id": f"201301006.0{m}", "area": "201301006", "registered": 600} for m in (1, 2)],
        "contests": [contest, extra][:contests],
    }


ELECTION = Election.from_value(cne_value())


def test_the_published_example_gives_188_for_maduro_and_167_for_gonzalez() -> None:
    """The design's example: tickets 1–13 sum to 188, tickets 34–36 to 167."""
    payload = parse_cne(EXAMPLE)
    assert (payload.centre, payload.mesa, payload.t, payload.seq) == ("201301006", "01", "1", "0001")
    assert payload.mesa_id == "201301006.01"
    assert (len(payload.tickets), payload.null, payload.x) == (38, 0, 0)
    acta = cne_counts(payload, ELECTION)
    assert acta.options[OPTIONS.index("maduro")] == 188
    assert acta.options[OPTIONS.index("gonzalez")] == 167
    assert (acta.mesa, acta.contest, acta.tickets, acta.null) == ("201301006.01", "presidente", payload.tickets, 0)
    assert sum(acta.options) == sum(payload.tickets) == 368


def test_the_example_formats_back_to_itself() -> None:
    """The example is canonical: formatting the parsed payload gives the same text."""
    assert format_cne(parse_cne(EXAMPLE)) == EXAMPLE


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        (EXAMPLE.replace("!140,", "!1a0,"), TICKETS_AT + 1, "ticket count 1 holds 'a', not an ASCII digit"),
        (EXAMPLE.removesuffix("!0"), len(EXAMPLE) - 2, "expected 4 sections"),
        ("2" + EXAMPLE, 0, "centre must be 9 digits, found 10"),
        (EXAMPLE.replace("!140,", "!1\u06610,"), TICKETS_AT + 1, "ticket count 1 holds '\u0661'"),
        (EXAMPLE.replace("!140,", "!\u0661\u0664\u0660,"), TICKETS_AT, "not an ASCII digit"),
        (EXAMPLE.replace(",8,1,7,", ",8,,7,", 1), TICKETS_AT + 11, "ticket count 5 is empty"),
        (EXAMPLE.replace("!0!0", "!!0"), len(EXAMPLE) - 3, "null count is empty"),
        (EXAMPLE.replace("!0!0", "!0!"), len(EXAMPLE) - 1, r"last field \(x\) is empty"),
        (EXAMPLE + "!7", len(EXAMPLE), "trailing data"),
        (EXAMPLE + "7", len(EXAMPLE) - 1, "leading zero"),
        (EXAMPLE + "\n", len(EXAMPLE), "trailing whitespace"),
        (" " + EXAMPLE, 0, "leading whitespace"),
        (EXAMPLE.replace("!140,", "!+140,"), TICKETS_AT, "holds '\\+'"),
        (EXAMPLE.replace("!140,", "!1_40,"), TICKETS_AT + 1, "holds '_'"),
        (EXAMPLE.replace("!140,", "!0140,"), TICKETS_AT, "leading zero"),
        (EXAMPLE.replace("!140,", "!12345678,"), TICKETS_AT, "more than 7 digits"),
        (EXAMPLE.replace(".01.", ".1."), 10, "mesa must be 2 digits, found 1"),
        (EXAMPLE.replace(".0001!", ".001!"), 15, "seq must be 4 digits"),
        (EXAMPLE.replace(".1.", ".."), 13, "t is empty"),
        (EXAMPLE.replace(".0001!", "!"), 14, "the id needs 4"),
        ("", 0, "expected 4 sections"),
    ],
)
def test_corrupted_payloads_are_refused_with_position_and_reason(text: str, position: int, reason: str) -> None:
    """Each kind of damage names where it is and what is wrong."""
    with pytest.raises(MalformedError, match=rf"^cne payload at {position}: .*{reason}"):
        parse_cne(text)


def test_over_long_text_is_refused() -> None:
    """A bound on the whole text keeps a hostile scan from costing more than a QR code can hold."""
    with pytest.raises(MalformedError, match="longer than 1000"):
        parse_cne(EXAMPLE.replace("!0!0", "!0!" + "1" * 1000))
    many = "201301006.01.1.0001!" + ",".join(["0"] * 201) + "!0!0"
    with pytest.raises(MalformedError, match="more than 200 ticket counts"):
        parse_cne(many)


def test_37_counts_for_a_38_ticket_contest_are_refused_at_the_counts() -> None:
    """A payload that parses but does not fit the contest is refused when mapped, naming both numbers."""
    short = EXAMPLE.replace("!140,", "!", 1)
    payload = parse_cne(short)
    with pytest.raises(MalformedError, match=rf"^cne payload at {TICKETS_AT}: 37 ticket counts, .* has 38 tickets"):
        cne_counts(payload, ELECTION)


def test_a_mesa_missing_from_the_definition_is_refused() -> None:
    """Mesa 03 of the centre is not in the definition."""
    with pytest.raises(MalformedError, match=r"mesa '201301006\.03' is not in the definition"):
        cne_counts(parse_cne(EXAMPLE.replace(".01.", ".03.")), ELECTION)


def test_the_contest_must_be_named_when_the_definition_has_several() -> None:
    """With two contests the caller names one; an unknown name is refused."""
    election = Election.from_value(cne_value(contests=2))
    payload = parse_cne(EXAMPLE)
    with pytest.raises(MalformedError, match="2 contests"):
        cne_counts(payload, election)
    assert cne_counts(payload, election, "presidente").options[0] == 188
    with pytest.raises(MalformedError, match="'senado' is not in the definition"):
        cne_counts(payload, election, "senado")


@pytest.mark.parametrize(
    "change",
    [
        {"centre": "20130100"},
        {"centre": "20130100\u0661"},
        {"mesa": "1"},
        {"t": ""},
        {"t": "1234"},
        {"seq": "01"},
        {"tickets": ()},
        {"tickets": [1, 2]},
        {"tickets": (1, -1)},
        {"tickets": (True,)},
        {"null": MAX_COUNT + 1},
        {"x": "0"},
    ],
)
def test_payloads_are_valid_by_construction(change: dict[str, Any]) -> None:
    """A CnePayload cannot be built with fields the parser would refuse."""
    fields: dict[str, Any] = {
        "centre": "201301006",
        "mesa": "01",
        "t": "1",
        "seq": "0001",
        "tickets": (1, 2),
        "null": 0,
        "x": 0,
    }
    with pytest.raises(MalformedError):
        CnePayload(**{**fields, **change})


def test_cne_actas_are_valid_by_construction() -> None:
    """Options must add up to the tickets they came from."""
    with pytest.raises(MalformedError, match="add up"):
        CneActa("201301006.01", "presidente", (1, 2), (4,), 0)


payloads = st.builds(
    CnePayload,
    centre=st.text(alphabet="0123456789", min_size=9, max_size=9),
    mesa=st.text(alphabet="0123456789", min_size=2, max_size=2),
    t=st.text(alphabet="0123456789", min_size=1, max_size=3),
    seq=st.text(alphabet="0123456789", min_size=4, max_size=4),
    tickets=st.lists(st.integers(0, MAX_COUNT), min_size=1, max_size=60).map(tuple),
    null=st.integers(0, MAX_COUNT),
    x=st.integers(0, MAX_COUNT),
)


@given(payloads)
def test_format_and_parse_round_trip(payload: CnePayload) -> None:
    """Every valid payload formats to text that parses back to the same payload."""
    assert parse_cne(format_cne(payload)) == payload


@given(st.one_of(st.text(), st.text(alphabet="0123456789.,!\u0661 \n+-", max_size=80)))
def test_arbitrary_text_parses_or_raises_malformed(text: str) -> None:
    """Fuzz: no input escapes as anything but MalformedError, and what parses is canonical."""
    try:
        payload = parse_cne(text)
    except MalformedError:
        return
    assert format_cne(payload) == text


@given(st.integers(0, len(EXAMPLE) - 1), st.characters())
def test_one_character_changes_parse_or_raise_malformed(position: int, char: str) -> None:
    """Fuzz around the example: a single changed character never escapes as another error."""
    text = EXAMPLE[:position] + char + EXAMPLE[position + 1 :]
    with contextlib.suppress(MalformedError):
        parse_cne(text)
