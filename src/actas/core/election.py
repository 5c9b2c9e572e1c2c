"""The election definition: geography, mesas, contests, tickets and declared rules.

A definition is one JSON object (any valid JSON text on input; its canonical form is what gets hashed)::

    {"v": 1,
     "origin": "results.example.org/ve-2024-sim",
     "title": "…",
     "levels": ["estado", "municipio", "parroquia", "centro"],
     "areas": [{"code": "01", "name": "…", "children": [{"code": "0101", "name": "…", "children": […]}]}],
     "mesas": [{"id": "010101001.01", "area": "010101001", "registered": 612}],
     "contests": [{"id": "presidente", "name": "…",
                   "options": [{"id": "cand-a", "name": "…"}],
                   "tickets": [{"id": "p01", "name": "…", "option": "cand-a"}]}],
     "rules": [{"id": "turnout-high", "severity": "warning", "check": "turnout_at_most", "percent": 95}]}

Structural rules (a :class:`~actas.errors.DefinitionError` names the JSON path of the first breach):

* ``v`` is 1. Unknown keys are rejected everywhere. Integers are JSON integers only: no fraction or exponent,
  no booleans, no strings of digits. Duplicate object keys are rejected.
* ``origin``: the election id and log key name: 1–256 printable characters, no whitespace, no ``+``.
* ``title`` and every ``name``: a non-empty string of printable characters (title ≤ 500, names ≤ 200).
* ``levels`` (optional, default ``estado, municipio, parroquia, centro``): 1–16 distinct names of 1–64
  printable characters, from the root down.
* ``areas``: a non-empty forest whose depth is exactly ``len(levels)``: every area above the last level has at
  least one child, areas at the last level have none (``children`` absent or ``[]``). Area codes match
  ``[0-9A-Za-z._-]{1,32}`` and are unique across the whole tree.
* ``mesas``: a flat list; ``id`` matches ``[0-9A-Za-z._-]{1,64}`` and is unique; ``area`` is the code of a
  last-level area; ``registered`` is an integer 0–1,000,000. Mesa order is the definition's order.
* ``contests``: at least one; ids unique. ``options``: at least one, ids unique within the contest.
  ``tickets`` (optional): ballot positions in ballot order, ids unique within the contest, each naming an
  option; absent means one ticket per option with the option's id and name. Every option has a ticket.
  Contest, option and ticket ids match ``[0-9A-Za-z._-]{1,64}``.
* ``rules`` (optional): ``id`` as above and unique, ``severity`` ``error`` or ``warning``, ``check`` one of
  ``turnout_at_most``, ``null_at_most``, ``blank_at_most``, ``option_share_at_most`` (each with an integer
  ``percent`` 0–100) or ``registered_matches_definition`` (no parameters).

The normalised value (:meth:`Election.to_value`) always spells out ``levels``, ``tickets`` and ``rules``
and omits ``children`` of last-level areas; :attr:`Election.digest` is the SHA-256 of its canonical JSON.
Mesas are held as columns (the ids joined in one string, ``array('I')`` of area indices and registered
counts; see :mod:`actas.core.mesa_ids`) so a definition of a million mesas stays compact. :meth:`from_json`
reads through a streaming fast path (:mod:`actas.core.definition_stream`) and re-parses with the strict
parser whenever anything is off, so errors always name their path; :attr:`digest` and :meth:`to_canonical`
stream the canonical bytes instead of building the value.
"""

from __future__ import annotations

import hashlib
import io
import re
from array import array
from collections.abc import Iterator
from typing import Any

from actas.core import canonical, definition_stream
from actas.core.definition import (
    CHECKS,
    DEFAULT_LEVELS,
    FORMAT_VERSION,
    MAX_LEVELS,
    MAX_REGISTERED,
    PERCENT_CHECKS,
    PLAIN_CHECKS,
    SEVERITIES,
    Area,
    AreaTable,
    Contest,
    DeclaredRule,
    Option,
    Severity,
    Ticket,
    describe,
    expect_ident,
    expect_int,
    expect_list,
    expect_object,
    expect_text,
    fail,
    load_json,
    parse_contest,
    parse_levels,
    parse_origin,
    parse_rule,
    quote,
)
from actas.core.definition_stream import iter_areas, iter_mesas
from actas.core.mesa_ids import MesaIds
from actas.errors import DefinitionError

__all__ = [
    "CHECKS",
    "DEFAULT_LEVELS",
    "FORMAT_VERSION",
    "MAX_LEVELS",
    "MAX_REGISTERED",
    "PERCENT_CHECKS",
    "PLAIN_CHECKS",
    "SEVERITIES",
    "Area",
    "Contest",
    "DeclaredRule",
    "Election",
    "Option",
    "Severity",
    "Ticket",
]

_ID = re.compile(r"(?!\.{1,2}\Z)[0-9A-Za-z._-]{1,64}").fullmatch


class Election:
    """A validated election definition; build it with :meth:`from_json` or :meth:`from_value`."""

    __slots__ = (
        "_area_index",
        "_digest",
        "_mesa_area",
        "_mesa_ids",
        "_mesa_registered",
        "areas",
        "contests",
        "levels",
        "origin",
        "rules",
        "title",
    )

    def __init__(self, value: Any) -> None:
        root = self._head(value)
        table = AreaTable(root["areas"], self.levels)
        self.areas = tuple(
            Area(code, name, level, parent, tuple(kids))
            for code, name, level, parent, kids in zip(
                table.codes, table.names, table.levels, table.parents, table.children, strict=True
            )
        )
        self._area_index = table.index
        self._parse_mesas(root["mesas"], table.levels)
        self._tail(root)

    def _head(self, value: Any) -> dict[str, Any]:
        """Check the root object and the members before ``areas``."""
        root = expect_object(value, "", ("v", "origin", "title", "areas", "mesas", "contests"), ("levels", "rules"))
        expect_int(root["v"], "v", FORMAT_VERSION, FORMAT_VERSION)
        self.origin = parse_origin(root["origin"], "origin")
        self.title = expect_text(root["title"], "title", 500)
        self.levels = parse_levels(root["levels"]) if "levels" in root else DEFAULT_LEVELS
        return root

    def _tail(self, root: dict[str, Any]) -> None:
        """Check the members after ``mesas``."""
        contests = []
        for i, item in enumerate(expect_list(root["contests"], "contests", 1)):
            contests.append(parse_contest(item, f"contests[{i}]"))
            if any(c.id == contests[-1].id for c in contests[:-1]):
                fail(f"contests[{i}].id", f"duplicate contest id {quote(contests[-1].id)}")
        self.contests = tuple(contests)
        rules: list[DeclaredRule] = []
        for i, item in enumerate(expect_list(root.get("rules", []), "rules")):
            rules.append(parse_rule(item, f"rules[{i}]"))
            if any(r.id == rules[-1].id for r in rules[:-1]):
                fail(f"rules[{i}].id", f"duplicate rule id {quote(rules[-1].id)}")
        self.rules = tuple(rules)
        self._digest: bytes | None = None

    def _parse_mesas(self, value: Any, area_levels: list[int]) -> None:
        """Fill the mesa columns; a tight loop, as India has a million mesas."""
        mesas = expect_list(value, "mesas")
        last = len(self.levels) - 1
        ids: list[str] = []
        area_col = array("I")
        registered_col = array("I")
        index: dict[str, int] = {}
        area_index = self._area_index
        keys = {"id": 0, "area": 0, "registered": 0}.keys()
        for i, mesa in enumerate(mesas):
            if type(mesa) is not dict or mesa.keys() != keys:
                expect_object(mesa, f"mesas[{i}]", ("id", "area", "registered"))
            mesa_id = mesa["id"]
            if type(mesa_id) is not str or not _ID(mesa_id):
                expect_ident(mesa_id, f"mesas[{i}].id")
            if index.setdefault(mesa_id, i) != i:
                fail(f"mesas[{i}].id", f"duplicate mesa id {quote(mesa_id)} (first at mesas[{index[mesa_id]}])")
            code = mesa["area"]
            area = area_index.get(code) if type(code) is str else None
            if area is None:
                fail(f"mesas[{i}].area", f"unknown area {describe(code)}")
            if area_levels[area] != last:
                level = self.levels[area_levels[area]]
                fail(f"mesas[{i}].area", f"area {quote(code)} is a {level}, not a {self.levels[last]}")
            count = mesa["registered"]
            if type(count) is not int or not 0 <= count <= MAX_REGISTERED:
                expect_int(count, f"mesas[{i}].registered", 0, MAX_REGISTERED)
            ids.append(mesa_id)
            area_col.append(area)
            registered_col.append(count)
        del index
        column = MesaIds.of(ids)
        assert column is not None  # ids were checked distinct above
        self._mesa_ids = column
        self._mesa_area = area_col
        self._mesa_registered = registered_col

    @classmethod
    def _from_parts(cls, parts: definition_stream.Parts) -> Election:
        """Finish the fast path: the same checks, in the same order, on what the stream read."""
        self = cls.__new__(cls)
        root = self._head(parts.root)
        last = len(self.levels) - 1
        if not all((area.level < last) == bool(area.children) for area in parts.areas):
            raise definition_stream.Fallback  # too deep or too shallow somewhere: let the strict parser say where
        leaf = bytes(area.level == last for area in parts.areas)
        if not all(map(leaf.__getitem__, parts.mesa_area)) or parts.mesa_ids is None:
            raise definition_stream.Fallback
        self.areas = parts.areas
        self._area_index = parts.area_index
        self._mesa_ids = parts.mesa_ids
        self._mesa_area = parts.mesa_area
        self._mesa_registered = parts.mesa_registered
        self._tail(root)
        return self

    @classmethod
    def from_value(cls, value: Any) -> Election:
        """Validate a parsed JSON value (a dict) as an election definition."""
        return cls(value)

    @classmethod
    def from_json(cls, data: bytes) -> Election:
        """Parse and validate JSON text (UTF-8); floats and duplicate keys are rejected with their path."""
        try:
            return cls._from_parts(definition_stream.parse(data))
        except (definition_stream.Fallback, DefinitionError):
            pass  # not plainly valid: the strict parser names the first error, if there is one
        value = load_json(data)
        return cls(value)

    def to_value(self) -> dict[str, Any]:
        """Return the normalised JSON value: levels, tickets and rules always explicit."""
        last = len(self.levels) - 1
        nodes: list[dict[str, Any]] = []
        roots: list[dict[str, Any]] = []
        for area in self.areas:
            node: dict[str, Any] = {"code": area.code, "name": area.name}
            if area.level != last:
                node["children"] = []
            nodes.append(node)
            (roots if area.parent < 0 else nodes[area.parent]["children"]).append(node)
        codes = [a.code for a in self.areas]
        mesas = [
            {"id": m, "area": codes[a], "registered": r}
            for m, a, r in zip(self._mesa_ids, self._mesa_area, self._mesa_registered, strict=True)
        ]
        return {
            "v": FORMAT_VERSION,
            "origin": self.origin,
            "title": self.title,
            "levels": list(self.levels),
            "areas": roots,
            "mesas": mesas,
            "contests": self._contests_value(),
            "rules": self._rules_value(),
        }

    def _contests_value(self) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id,
                "name": c.name,
                "options": [{"id": o.id, "name": o.name} for o in c.options],
                "tickets": [{"id": t.id, "name": t.name, "option": c.options[t.option].id} for t in c.tickets],
            }
            for c in self.contests
        ]

    def _rules_value(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for r in self.rules:
            rule: dict[str, Any] = {"id": r.id, "severity": r.severity, "check": r.check}
            if r.percent is not None:
                rule["percent"] = r.percent
            rules.append(rule)
        return rules

    def iter_canonical(self) -> Iterator[bytes]:
        """Yield the canonical bytes of :meth:`to_value` in chunks, without building the value."""
        encode = canonical.encode_decoded  # built from validated fields only
        yield b'{"areas":'
        for text in iter_areas(self.areas, len(self.levels) - 1):
            yield text.encode("utf-8")
        yield b',"contests":' + encode(self._contests_value()) + b',"levels":' + encode(list(self.levels))
        yield b',"mesas":'
        codes = [a.code for a in self.areas]
        for text in iter_mesas(self._mesa_ids, self._mesa_area, self._mesa_registered, codes):
            yield text.encode("utf-8")
        del codes
        tail = {"origin": self.origin, "rules": self._rules_value(), "title": self.title, "v": FORMAT_VERSION}
        yield b"," + encode(tail)[1:]

    def to_canonical(self) -> bytes:
        """Return the canonical JSON bytes of the normalised definition."""
        out = io.BytesIO()  # getvalue() hands over the buffer without a copy
        for chunk in self.iter_canonical():
            out.write(chunk)
        return out.getvalue()

    @property
    def digest(self) -> bytes:
        """SHA-256 of the canonical definition (computed once, streamed)."""
        if self._digest is None:
            hasher = hashlib.sha256()
            for chunk in self.iter_canonical():
                hasher.update(chunk)
            self._digest = hasher.digest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Election) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Election(origin={self.origin!r}, areas={len(self.areas)}, mesas={self.mesa_count})"

    # areas

    def area_index(self, code: str) -> int:
        """Return the index of an area code; DefinitionError if there is none."""
        index = self._area_index.get(code)
        if index is None:
            raise DefinitionError(f"area {quote(str(code))}: no such area in {self.origin}")
        return index

    def find_area(self, code: str) -> int | None:
        """Return the index of an area code, or None."""
        return self._area_index.get(code)

    def area_path(self, index: int) -> tuple[int, ...]:
        """Return the indices from the root down to ``index``."""
        path = [index]
        while (parent := self.areas[path[-1]].parent) >= 0:
            path.append(parent)
        return tuple(reversed(path))

    def area_ancestor(self, index: int, level: int) -> int:
        """Return the ancestor of an area at a level (the area itself at its own level)."""
        return self.area_path(index)[level]

    def level_areas(self, level: int) -> tuple[int, ...]:
        """Return the indices of the areas at a level, in pre-order."""
        return tuple(i for i, a in enumerate(self.areas) if a.level == level)

    def leaf_areas(self) -> tuple[int, ...]:
        """Return the indices of the last-level areas (where mesas are), in pre-order."""
        return self.level_areas(len(self.levels) - 1)

    # mesas

    @property
    def mesa_count(self) -> int:
        """Number of mesas."""
        return len(self._mesa_ids)

    def mesa_index(self, mesa_id: str) -> int | None:
        """Return the index of a mesa id, or None (O(log n))."""
        return self._mesa_ids.index(mesa_id)

    def mesa_id(self, index: int) -> str:
        """Return the id of the mesa at an index."""
        return self._mesa_ids[index]

    def mesa_area(self, index: int) -> int:
        """Return the area index of the mesa at an index."""
        return self._mesa_area[index]

    def mesa_registered(self, index: int) -> int:
        """Return the registered voters of the mesa at an index."""
        return self._mesa_registered[index]

    def mesa_ids(self) -> tuple[str, ...]:
        """Return every mesa id in definition order."""
        return tuple(self._mesa_ids)

    def mesa_area_column(self) -> memoryview:
        """Return the area index of every mesa as a read-only uint32 buffer (for vectorised work)."""
        return memoryview(self._mesa_area).toreadonly()

    def mesa_registered_column(self) -> memoryview:
        """Return the registered voters of every mesa as a read-only uint32 buffer."""
        return memoryview(self._mesa_registered).toreadonly()

    @property
    def registered_total(self) -> int:
        """Registered voters over all mesas."""
        return sum(self._mesa_registered)

    # contests

    def contest(self, contest_id: str) -> Contest | None:
        """Return the contest with an id, or None."""
        return next((c for c in self.contests if c.id == contest_id), None)
