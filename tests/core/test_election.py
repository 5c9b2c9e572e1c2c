"""The election definition: a valid load, normalisation, round trips, and one failing case per rule."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core import canonical
from actas.core.election import DEFAULT_LEVELS, Election
from actas.errors import DefinitionError


def _centre(code: str) -> dict[str, Any]:
    return {"code": code, "name": f"Centro {code}"}


def definition() -> dict[str, Any]:
    """A small valid definition: two states, three centres, three mesas, default levels."""
    return {
        "v": 1,
        "origin": "results.example.org/test",
        "title": "Elección de prueba",
        "areas": [
            {
                "code": "01",
                "name": "Estado Uno",
                "children": [
                    {
                        "code": "0101",
                        "name": "Municipio",
                        "children": [
                            {
                                "code": "010101",
                                "name": "Parroquia",
                                "children": [_centre("010101001"), _centre("010101002")],
                            }
                        ],
                    }
                ],
            },
            {
                "code": "02",
                "name": "Estado Dos",
                "children": [
                    {
                        "code": "0201",
                        "name": "Municipio",
                        "children": [{"code": "020101", "name": "Parroquia", "children": [_centre("020101001")]}],
                    }
                ],
            },
        ],
        "mesas": [
            {"id": "010101001.01", "area": "010101001", "registered": 612},
            {"id": "010101001.02", "area": "010101001", "registered": 0},
            {"id": "020101001.01", "area": "020101001", "registered": 1_000_000},
        ],
        "contests": [
            {
                "id": "presidente",
                "name": "Presidencia",
                "options": [
                    {"id": "cand-a", "name": "Candidatura A"},
                    {"id": "cand-b", "name": "Candidatura B"},
                ],
                "tickets": [
                    {"id": "p01", "name": "Partido 1", "option": "cand-a"},
                    {"id": "p02", "name": "Partido 2", "option": "cand-b"},
                    {"id": "p03", "name": "Partido 3", "option": "cand-a"},
                ],
            },
            {
                "id": "consulta",
                "name": "Consulta",
                "options": [{"id": "si", "name": "Sí"}, {"id": "no", "name": "No"}],
            },
        ],
        "rules": [
            {"id": "registered", "severity": "error", "check": "registered_matches_definition"},
            {"id": "turnout-high", "severity": "warning", "check": "turnout_at_most", "percent": 95},
        ],
    }


def test_valid_definition_loads() -> None:
    value = definition()
    before = copy.deepcopy(value)
    election = Election.from_json(json.dumps(value, indent=2).encode())
    assert value == before  # not mutated
    assert election.origin == "results.example.org/test"
    assert election.levels == DEFAULT_LEVELS
    assert [a.code for a in election.areas] == [
        "01",
        "0101",
        "010101",
        "010101001",
        "010101002",
        "02",
        "0201",
        "020101",
        "020101001",
    ]
    leaf = election.area_index("010101002")
    assert election.areas[leaf].level == 3
    assert election.area_path(leaf) == (0, 1, 2, leaf)
    assert election.areas[2].children == (3, 4)
    assert election.areas[0].parent == -1
    assert election.area_ancestor(leaf, 0) == 0
    assert election.leaf_areas() == (3, 4, 8)
    assert election.level_areas(0) == (0, 5)
    assert election.mesa_count == 3
    assert election.mesa_index("020101001.01") == 2
    assert election.mesa_index("nope") is None
    assert election.mesa_id(1) == "010101001.02"
    assert election.mesa_area(2) == election.area_index("020101001")
    assert election.mesa_registered(2) == 1_000_000
    assert election.registered_total == 1_000_612
    assert list(election.mesa_registered_column()) == [612, 0, 1_000_000]
    president = election.contest("presidente")
    assert president is not None
    assert president.ticket_option == (0, 1, 0)
    assert president.option_index("cand-b") == 1
    assert president.ticket_index("p03") == 2
    consulta = election.contest("consulta")
    assert consulta is not None
    assert [(t.id, t.name, t.option) for t in consulta.tickets] == [("si", "Sí", 0), ("no", "No", 1)]
    assert election.contest("missing") is None
    assert election.rules[0].percent is None
    assert election.rules[1].percent == 95
    with pytest.raises(DefinitionError, match=r'^area "99": no such area'):
        election.area_index("99")


def test_normalised_value_and_round_trip() -> None:
    election = Election.from_value(definition())
    value = election.to_value()
    assert value["levels"] == list(DEFAULT_LEVELS)
    assert value["contests"][1]["tickets"] == [
        {"id": "si", "name": "Sí", "option": "si"},
        {"id": "no", "name": "No", "option": "no"},
    ]
    data = election.to_canonical()
    assert canonical.decode(data) == value
    again = Election.from_json(data)
    assert again.digest == election.digest
    assert again == election
    assert again.to_canonical() == data
    assert len(election.digest) == 32


def test_leaf_with_empty_children_is_normalised() -> None:
    value = definition()
    value["areas"][1]["children"][0]["children"][0]["children"][0]["children"] = []
    assert Election.from_value(value).digest == Election.from_value(definition()).digest


Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], new: Any) -> Mutation:
    def apply(value: dict[str, Any]) -> None:
        target: Any = value
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = new

    return apply


def _add_option(value: dict[str, Any]) -> None:
    value["contests"][0]["options"].append({"id": "cand-z", "name": "Sin papeleta"})


def _delete(path: tuple[Any, ...]) -> Mutation:
    def apply(value: dict[str, Any]) -> None:
        target: Any = value
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return apply


DEEP_CENTRE = ("areas", 1, "children", 0, "children", 0, "children", 0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _set((*DEEP_CENTRE, "code"), "010101002"),
            'areas[1].children[0].children[0].children[0].code: duplicate code "010101002" '
            "(first at areas[0].children[0].children[0].children[1])",
            id="duplicate-area-code-deep",
        ),
        pytest.param(_set(("mesas", 1, "area"), "0101"), "mesas[1].area: area ", id="mesa-in-non-leaf"),
        pytest.param(_set(("mesas", 1, "area"), "99"), "mesas[1].area: unknown area", id="mesa-unknown-area"),
        pytest.param(
            _set(("contests", 0, "tickets", 2, "option"), "cand-x"),
            'contests[0].tickets[2].option: unknown option "cand-x"',
            id="ticket-unknown-option",
        ),
        pytest.param(_add_option, 'contests[0].options[2]: option "cand-z" has no ticket', id="option-no-ticket"),
        pytest.param(_set(("mesas", 0, "registered"), True), "mesas[0].registered: expected an integer, got true"),
        pytest.param(
            _set(("mesas", 0, "registered"), "612"),
            'mesas[0].registered: expected an integer, got string "612"',
        ),
        pytest.param(_set(("mesas", 0, "registered"), 1_000_001), "mesas[0].registered: 1000001 is outside"),
        pytest.param(_set(("mesas", 0, "registered"), -1), "mesas[0].registered: -1 is outside"),
        pytest.param(_set(("v",), "1"), "v: expected an integer"),
        pytest.param(_set(("v",), 2), "v: 2 is outside 1..1"),
        pytest.param(_set(("areas", 0, "children", 0, "colour"), "red"), "areas[0].children[0].colour: unknown key"),
        pytest.param(_set(("extra",), 1), "extra: unknown key"),
        pytest.param(_set(("mesas", 2, "ward"), 1), "mesas[2].ward: unknown key"),
        pytest.param(_delete(("title",)), "title: missing"),
        pytest.param(
            _set((*DEEP_CENTRE, "children"), [_centre("X")]),
            "areas[1].children[0].children[0].children[0].children: an area at the last level (centro)",
            id="too-deep",
        ),
        pytest.param(
            _set(("areas", 1, "children", 0, "children"), []),
            "areas[1].children[0].children: an area at level municipio needs children down to centro",
            id="too-shallow",
        ),
        pytest.param(
            _delete(("areas", 1, "children", 0, "children", 0, "children")),
            "areas[1].children[0].children[0].children: an area at level parroquia needs children",
            id="missing-children",
        ),
        pytest.param(
            _set(("levels",), ["estado", "municipio", "parroquia"]),
            "areas[0].children[0].children[0].children: an area at the last level (parroquia) has",
            id="fewer-levels",
        ),
        pytest.param(_set(("levels",), []), "levels: needs at least 1 item"),
        pytest.param(_set(("levels",), ["a", "a"]), 'levels[1]: duplicate level "a"'),
        pytest.param(_set(("levels",), ["national", "b", "c", "d"]), 'levels[0]: "national" is reserved'),
        pytest.param(_set(("levels",), ["a/b", "b", "c", "d"]), 'levels[0]: "a/b" does not match'),
        pytest.param(_set(("levels",), ["..", "b", "c", "d"]), 'levels[0]: ".." does not match'),
        pytest.param(_set(("contests", 0, "id"), ".."), 'contests[0].id: ".." does not match'),
        pytest.param(_set(("rules", 1, "severity"), "fatal"), 'rules[1].severity: string "fatal" is not one of'),
        pytest.param(_set(("rules", 1, "check"), "vibes"), 'rules[1].check: string "vibes" is not one of'),
        pytest.param(_set(("rules", 1, "percent"), 101), "rules[1].percent: 101 is outside 0..100"),
        pytest.param(_set(("rules", 1, "percent"), "95"), 'rules[1].percent: expected an integer, got string "95"'),
        pytest.param(_delete(("rules", 1, "percent")), "rules[1].percent: missing"),
        pytest.param(_set(("rules", 0, "percent"), 5), "rules[0].percent: unknown key"),
        pytest.param(_set(("rules", 1, "id"), "registered"), 'rules[1].id: duplicate rule id "registered"'),
        pytest.param(_set(("mesas", 2, "id"), "010101001.01"), 'mesas[2].id: duplicate mesa id "010101001.01"'),
        pytest.param(_set(("mesas", 2, "id"), "a b"), 'mesas[2].id: "a b" does not match'),
        pytest.param(_set(("contests", 1, "id"), "presidente"), 'contests[1].id: duplicate contest id "presidente"'),
        pytest.param(_set(("contests", 0, "options", 1, "id"), "cand-a"), "contests[0].options[1].id: duplicate"),
        pytest.param(_set(("contests", 0, "tickets", 1, "id"), "p01"), "contests[0].tickets[1].id: duplicate"),
        pytest.param(_set(("contests", 0, "tickets"), []), "contests[0].tickets: needs at least 1 item"),
        pytest.param(_set(("contests",), []), "contests: needs at least 1 item"),
        pytest.param(_set(("origin",), "a b"), "origin: "),
        pytest.param(_set(("origin",), "a+b"), "origin: "),
        pytest.param(_set(("title",), "line\nbreak"), "title: "),
        pytest.param(_set(("areas", 0, "name"), ""), "areas[0].name: must be 1 to 200 characters"),
        pytest.param(_set(("areas", 0, "code"), "0 1"), 'areas[0].code: "0 1" does not match'),
        pytest.param(_set(("areas",), {}), "areas: expected an array, got an object"),
    ],
)
def test_invalid_definition_names_its_path(mutate: Mutation, expected: str) -> None:
    value = definition()
    mutate(value)
    with pytest.raises(DefinitionError) as caught:
        Election.from_value(value)
    assert str(caught.value).startswith(expected), str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '"registered": 612',
            '"registered": 612.0',
            "mesas[0].registered: expected an integer, got number 612.0",
        ),
        (
            '"registered": 612',
            '"registered": 6.12e2',
            "mesas[0].registered: expected an integer, got number 6.12e2",
        ),
        (
            '"registered": 612',
            '"registered": NaN',
            "mesas[0].registered: expected an integer, got number NaN",
        ),
        ('"v": 1', '"v": 1, "v": 1', "v: duplicate key"),
        ('"registered": 612', '"registered": 612, "registered": 1', "mesas[0].registered: duplicate key"),
        ('"registered": 612', '"registered": 1' + "0" * 5000, "$: invalid JSON"),
        ('"v": 1', '"v": 1,', "$: invalid JSON at line 1 column"),
    ],
)
def test_invalid_json_names_its_path(old: str, new: str, expected: str) -> None:
    text = json.dumps(definition(), ensure_ascii=False)
    assert old in text
    with pytest.raises(DefinitionError) as caught:
        Election.from_json(text.replace(old, new, 1).encode())
    assert str(caught.value).startswith(expected), str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"[]", "$: expected an object, got an array"),
        (b"\xff{}", "$: invalid UTF-8 at byte 0"),
        (b"", "$: invalid"),
    ],
)
def test_not_an_object(data: bytes, expected: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        Election.from_json(data)
    assert str(caught.value).startswith(expected)


# ----------------------------------------------------------------------------------------- property test

_IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_NAMES = st.text(min_size=1, max_size=12).filter(str.isprintable)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid definitions: 1–3 levels, a random tree, mesas, contests, optional tickets and rules."""
    depth = draw(st.integers(1, 3))
    levels = draw(st.lists(_IDS.filter(lambda s: s != "national"), min_size=depth, max_size=depth, unique=True))
    counter = iter(range(10**6))
    leaves: list[str] = []

    def area(level: int) -> dict[str, Any]:
        code = f"a{next(counter)}"
        node: dict[str, Any] = {"code": code, "name": draw(_NAMES)}
        if level < depth - 1:
            node["children"] = [area(level + 1) for _ in range(draw(st.integers(1, 3)))]
        else:
            leaves.append(code)
        return node

    roots = [area(0) for _ in range(draw(st.integers(1, 3)))]
    mesa_ids = draw(st.lists(_IDS, max_size=8, unique=True))
    mesas = [
        {"id": m, "area": draw(st.sampled_from(leaves)), "registered": draw(st.integers(0, 1_000_000))}
        for m in mesa_ids
    ]
    contests = []
    for contest_id in draw(st.lists(_IDS, min_size=1, max_size=2, unique=True)):
        option_ids = draw(st.lists(_IDS, min_size=1, max_size=4, unique=True))
        contest: dict[str, Any] = {
            "id": contest_id,
            "name": draw(_NAMES),
            "options": [{"id": o, "name": draw(_NAMES)} for o in option_ids],
        }
        if draw(st.booleans()):
            targets = option_ids + draw(st.lists(st.sampled_from(option_ids), max_size=4))
            order = draw(st.permutations(targets))
            contest["tickets"] = [{"id": f"t{i}", "name": draw(_NAMES), "option": o} for i, o in enumerate(order)]
        contests.append(contest)
    value: dict[str, Any] = {
        "v": 1,
        "origin": draw(st.from_regex(r"[a-z0-9./-]{1,30}", fullmatch=True)),
        "title": draw(_NAMES),
        "levels": levels,
        "areas": roots,
        "mesas": mesas,
        "contests": contests,
    }
    if draw(st.booleans()):
        value["rules"] = [
            {"id": "r1", "severity": draw(st.sampled_from(["error", "warning"])), "check": "null_at_most"}
            | {"percent": draw(st.integers(0, 100))},
            {"id": "r2", "severity": "error", "check": "registered_matches_definition"},
        ]
    return value


@settings(max_examples=150, deadline=None)
@given(definitions())
def test_random_definitions_round_trip(value: dict[str, Any]) -> None:
    election = Election.from_value(value)
    again = Election.from_json(election.to_canonical())
    assert again.digest == election.digest
    assert again.to_value() == election.to_value()
    loose = Election.from_json(json.dumps(value, indent=1).encode())
    assert loose.digest == election.digest
    assert election.mesa_count == len(value["mesas"])
    for i, mesa in enumerate(value["mesas"]):
        assert election.mesa_index(mesa["id"]) == i
        assert election.areas[election.mesa_area(i)].code == mesa["area"]
