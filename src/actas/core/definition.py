"""Parts of an election definition (areas, contests, tickets, rules) and the strict checks that parse them.

The format is documented in :mod:`actas.core.election`. Every error is a DefinitionError whose message starts
with the JSON path (``areas[3].children[12].code: duplicate code "0103"``).

:func:`load_json` parses any valid JSON text but keeps what a definition may not hold, so validation can
name its path: a number with a fraction or exponent becomes a :class:`JsonNumber` (never a float) and an
object that repeats a key becomes a :class:`DuplicateKeys`. The ``expect_*`` checks raise
:class:`~actas.errors.DefinitionError`; booleans are never integers, strings of digits never integers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from actas.errors import DefinitionError

ID_PATTERN = "[0-9A-Za-z._-]{1,64}"
# Ids and codes name files of the published bundle, so "." and ".." are refused as well.
NOT_DOTS = r"(?!\.{1,2}\Z)"
_ID = re.compile(NOT_DOTS + ID_PATTERN).fullmatch


class JsonNumber(str):
    """A JSON number with a fraction or exponent (or NaN/Infinity), kept as its text."""


class DuplicateKeys(dict[str, Any]):
    """A JSON object that repeated the key ``duplicate`` (the last value wins inside)."""

    duplicate = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked = DuplicateKeys(result)
                marked.duplicate = key
                return marked
            seen.add(key)
    return result


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=JsonNumber, parse_constant=JsonNumber)


def load_json(data: bytes) -> Any:
    """Parse UTF-8 JSON text, keeping non-integer numbers and repeated keys as markers for validation."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail("", f"invalid UTF-8 at byte {exc.start}")
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        fail("", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except (ValueError, RecursionError) as exc:  # integers over 4300 digits, nesting too deep
        fail("", f"invalid JSON: {exc}")


def fail(path: str, message: str) -> NoReturn:
    """Raise DefinitionError for a path (``$`` for the root)."""
    raise DefinitionError(f"{path or '$'}: {message}")


def quote(text: str) -> str:
    """Quote a string for a message (at most 80 characters, lone surrogates escaped)."""
    return json.dumps(text[:80], ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def describe(value: Any) -> str:
    """Name a JSON value's type (and the value, when short) for a message."""
    if isinstance(value, JsonNumber):
        return f"number {value[:40]}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def join(path: str, key: str) -> str:
    """Return the path of a key inside an object at ``path``."""
    return f"{path}.{key}" if path else key


def expect_object(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check an object with exactly the required keys plus any of the optional ones."""
    if isinstance(value, DuplicateKeys):
        fail(join(path, value.duplicate), "duplicate key")
    if type(value) is not dict:
        fail(path, f"expected an object, got {describe(value)}")
    for key in value:
        if key not in required and key not in optional:
            fail(join(path, str(key)), "unknown key")
    for key in required:
        if key not in value:
            fail(join(path, key), "missing")
    return value


def expect_list(value: Any, path: str, min_len: int = 0) -> list[Any]:
    """Check an array of at least ``min_len`` items."""
    if type(value) is not list:
        fail(path, f"expected an array, got {describe(value)}")
    if len(value) < min_len:
        fail(path, f"needs at least {min_len} item{'s' if min_len > 1 else ''}")
    return value


def expect_int(value: Any, path: str, low: int, high: int) -> int:
    """Check a JSON integer (not a boolean) within ``low..high``."""
    if type(value) is not int:
        fail(path, f"expected an integer, got {describe(value)}")
    if not low <= value <= high:
        fail(path, f"{value} is outside {low}..{high}")
    return value


def expect_text(value: Any, path: str, max_len: int = 200) -> str:  # 200 = MAX_NAME
    """Check a non-empty string of printable characters (no controls, no line or paragraph separators)."""
    if type(value) is not str:
        fail(path, f"expected a string, got {describe(value)}")
    if not 1 <= len(value) <= max_len:
        fail(path, f"must be 1 to {max_len} characters")
    if not value.isprintable():
        fail(path, f"{quote(value)} holds a control or separator character")
    return value


def expect_ident(value: Any, path: str, match: Callable[[str], object] = _ID, pattern: str = ID_PATTERN) -> str:
    """Check an identifier string against a pattern (default ``[0-9A-Za-z._-]{1,64}``)."""
    if type(value) is not str:
        fail(path, f"expected a string, got {describe(value)}")
    if not match(value):
        fail(path, f"{quote(value)} does not match {pattern}")
    return value


FORMAT_VERSION = 1
DEFAULT_LEVELS = ("estado", "municipio", "parroquia", "centro")
MAX_REGISTERED = 1_000_000
MAX_LEVELS = 16
SEVERITIES = ("error", "warning")
Severity = Literal["error", "warning"]
PERCENT_CHECKS = ("turnout_at_most", "null_at_most", "blank_at_most", "option_share_at_most")
PLAIN_CHECKS = ("registered_matches_definition",)
CHECKS = PERCENT_CHECKS + PLAIN_CHECKS

CODE_PATTERN = "[0-9A-Za-z._-]{1,32}"
_CODE = re.compile(NOT_DOTS + CODE_PATTERN).fullmatch
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Area:
    """A node of the geography tree; ``parent`` and ``children`` are indices into ``Election.areas``."""

    code: str
    name: str
    level: int
    parent: int
    children: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Option:
    """A choice of a contest (a candidate, "yes", "no")."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ballot position counting for the option at index ``option``."""

    id: str
    name: str
    option: int


@dataclass(frozen=True, slots=True)
class Contest:
    """What is decided: options, and tickets in ballot order."""

    id: str
    name: str
    options: tuple[Option, ...]
    tickets: tuple[Ticket, ...]
    ticket_option: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ticket_option", tuple(t.option for t in self.tickets))

    def option_index(self, option_id: str) -> int | None:
        """Return the index of an option id, or None."""
        return next((i for i, o in enumerate(self.options) if o.id == option_id), None)

    def ticket_index(self, ticket_id: str) -> int | None:
        """Return the ballot position (0-based) of a ticket id, or None."""
        return next((i for i, t in enumerate(self.tickets) if t.id == ticket_id), None)


@dataclass(frozen=True, slots=True)
class DeclaredRule:
    """An arithmetic rule the definition declares; ``percent`` is None for checks without parameters."""

    id: str
    severity: Severity
    check: str
    percent: int | None


def parse_origin(value: Any, path: str) -> str:
    """Check an election origin: printable, no whitespace, no '+'."""
    expect_text(value, path, 256)
    if "+" in value or any(ch.isspace() for ch in value):
        fail(path, f"{quote(value)} must not contain whitespace or '+'")
    return str(value)


def parse_levels(value: Any) -> tuple[str, ...]:
    """Check the level names."""
    names = expect_list(value, "levels", 1)
    if len(names) > MAX_LEVELS:
        fail("levels", f"at most {MAX_LEVELS} levels")
    for i, name in enumerate(names):
        # Level names name the results files (results/<contest>/<level>.json), beside national.json.
        expect_ident(name, f"levels[{i}]")
        if name == "national":
            fail(f"levels[{i}]", '"national" is reserved for the national totals')
        if name in names[:i]:
            fail(f"levels[{i}]", f"duplicate level {quote(name)}")
    return tuple(names)


class AreaTable:
    """Areas parsed in pre-order, as parallel lists (a tight loop: India has half a million centres)."""

    def __init__(self, roots: Any, levels: tuple[str, ...]) -> None:
        self.codes: list[str] = []
        self.names: list[str] = []
        self.levels: list[int] = []
        self.parents: list[int] = []
        self.positions: list[int] = []
        self.children: list[list[int]] = []
        self.index: dict[str, int] = {}
        self._level_names = levels
        self._walk(expect_list(roots, "areas", 1), -1, 0)

    def path(self, index: int) -> str:
        """Return the JSON path of a parsed area."""
        return self.child_path(self.parents[index], self.positions[index])

    def child_path(self, parent: int, position: int) -> str:
        """Return the JSON path of the child at a position of a parent (-1: of the root list)."""
        if parent < 0:
            return f"areas[{position}]"
        return f"{self.path(parent)}.children[{position}]"

    def _walk(self, items: list[Any], parent: int, level: int) -> None:
        # Recursion depth is bounded by MAX_LEVELS.
        last = len(self._level_names) - 1
        keys = {"code": 0, "name": 0, "children": 0}.keys() if level < last else {"code": 0, "name": 0}.keys()
        index = self.index
        siblings = self.children[parent] if parent >= 0 else None
        for position, value in enumerate(items):
            if type(value) is not dict or value.keys() != keys:
                self._check_object(value, parent, position, level == last)
            code = value["code"]
            if type(code) is not str or not _CODE(code):
                expect_ident(code, self.child_path(parent, position) + ".code", _CODE, CODE_PATTERN)
            name = value["name"]
            if type(name) is not str or not 0 < len(name) <= MAX_NAME or not name.isprintable():
                expect_text(name, self.child_path(parent, position) + ".name")
            me = len(self.codes)
            first = index.setdefault(code, me)
            if first != me:
                where = self.child_path(parent, position) + ".code"
                fail(where, f"duplicate code {quote(code)} (first at {self.path(first)})")
            self.codes.append(code)
            self.names.append(name)
            self.levels.append(level)
            self.parents.append(parent)
            self.positions.append(position)
            self.children.append([])
            if siblings is not None:
                siblings.append(me)
            if level < last:
                kids = value["children"]
                if type(kids) is not list or not kids:
                    self._check_object(value, parent, position, False)
                self._walk(kids, me, level + 1)

    def _check_object(self, value: Any, parent: int, position: int, leaf: bool) -> None:
        """Slow path: name what is wrong with an area object (a leaf's ``"children": []`` is fine)."""
        path = self.child_path(parent, position)
        obj = expect_object(value, path, ("code", "name"), ("children",))
        names = self._level_names
        kids = obj.get("children")
        if leaf and kids is not None and expect_list(kids, f"{path}.children"):
            fail(f"{path}.children", f"an area at the last level ({names[-1]}) has no children")
        if not leaf and (kids is None or not expect_list(kids, f"{path}.children")):
            level = self.levels[parent] + 1 if parent >= 0 else 0
            fail(f"{path}.children", f"an area at level {names[level]} needs children down to {names[-1]}")


def parse_contest(value: Any, path: str) -> Contest:
    """Check one contest; absent tickets become one per option."""
    obj = expect_object(value, path, ("id", "name", "options"), ("tickets",))
    contest_id = expect_ident(obj["id"], f"{path}.id")
    contest_name = expect_text(obj["name"], f"{path}.name")
    options: list[Option] = []
    option_at: dict[str, int] = {}
    for i, item in enumerate(expect_list(obj["options"], f"{path}.options", 1)):
        at = f"{path}.options[{i}]"
        opt = expect_object(item, at, ("id", "name"))
        oid = expect_ident(opt["id"], f"{at}.id")
        if option_at.setdefault(oid, i) != i:
            fail(f"{at}.id", f"duplicate option id {quote(oid)}")
        options.append(Option(oid, expect_text(opt["name"], f"{at}.name")))
    tickets: list[Ticket] = []
    if "tickets" not in obj:
        tickets = [Ticket(o.id, o.name, i) for i, o in enumerate(options)]
    ticket_ids: set[str] = set()
    for i, item in enumerate(expect_list(obj.get("tickets", []), f"{path}.tickets", 1 if "tickets" in obj else 0)):
        at = f"{path}.tickets[{i}]"
        tk = expect_object(item, at, ("id", "name", "option"))
        tid = expect_ident(tk["id"], f"{at}.id")
        if tid in ticket_ids:
            fail(f"{at}.id", f"duplicate ticket id {quote(tid)}")
        ticket_ids.add(tid)
        name = expect_text(tk["name"], f"{at}.name")
        option = option_at.get(expect_ident(tk["option"], f"{at}.option"))
        if option is None:
            fail(f"{at}.option", f"unknown option {quote(tk['option'])}")
        tickets.append(Ticket(tid, name, option))
    covered = {t.option for t in tickets}
    for i, opt_ in enumerate(options):
        if i not in covered:
            fail(f"{path}.options[{i}]", f"option {quote(opt_.id)} has no ticket")
    return Contest(contest_id, contest_name, tuple(options), tuple(tickets))


def parse_rule(value: Any, path: str) -> DeclaredRule:
    """Check one declared rule and its parameters."""
    obj = expect_object(value, path, ("id", "severity", "check"), ("percent",))
    rid = expect_ident(obj["id"], f"{path}.id")
    severity = obj["severity"]
    if type(severity) is not str or severity not in SEVERITIES:
        fail(f"{path}.severity", f"{describe(severity)} is not one of {', '.join(SEVERITIES)}")
    check = obj["check"]
    if type(check) is not str or check not in CHECKS:
        fail(f"{path}.check", f"{describe(check)} is not one of {', '.join(CHECKS)}")
    percent: int | None = None
    if check in PERCENT_CHECKS:
        percent = expect_int(obj.get("percent"), f"{path}.percent", 0, 100) if "percent" in obj else None
        if percent is None:
            fail(f"{path}.percent", f"missing: check {check} needs a percent")
    elif "percent" in obj:
        fail(f"{path}.percent", f"unknown key: check {check} takes no parameters")
    return DeclaredRule(rid, "error" if severity == "error" else "warning", check, percent)
