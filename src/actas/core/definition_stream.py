"""Streaming in and out of an election definition, so a million mesas fit in a few hundred megabytes.

:func:`parse` is the fast path of :meth:`Election.from_json`: it decodes the UTF-8 input a window at a time
(never the whole text as one ``str``), turns each area into a small tuple and each mesa straight into
columns as the JSON scanner completes it, and raises :class:`Fallback` at the first thing that is not
plainly valid, so the caller re-parses with the strict, path-reporting parser and reports the exact error.
It accepts only what that parser accepts; the caller still runs every remaining check.

:func:`iter_canonical` yields the canonical bytes of the normalised definition chunk by chunk, exactly
``canonical.encode(election.to_value())`` without building the value.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.encoder import encode_basestring
from typing import Any, NoReturn

from actas.core.definition import CODE_PATTERN, ID_PATTERN, MAX_LEVELS, MAX_NAME, MAX_REGISTERED, NOT_DOTS, Area
from actas.core.mesa_ids import CHUNK, MesaIds, MesaIdsBuilder

_WINDOW = 1 << 20  # bytes decoded at a time
_MARGIN = 1 << 16  # characters kept ahead of the scanner before each mesa
_SPACE = re.compile(r"[ \t\n\r]*")
_ID = re.compile(NOT_DOTS + ID_PATTERN).fullmatch
_CODE = re.compile(NOT_DOTS + CODE_PATTERN).fullmatch
_SPACE_OR_END = ("", " ", "\t", "\n", "\r")
_MESA_KEYS = {"id": 0, "area": 0, "registered": 0}.keys()


class Fallback(Exception):
    """The fast path gives up: re-parse with the strict parser, which names the error (if any)."""


def _give_up(*_: object) -> NoReturn:
    raise Fallback


def _plain(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise Fallback
    return result


def _area(pairs: list[tuple[str, Any]]) -> Area:
    """An area object as an :class:`Area` still to be placed (children: the child objects, or None)."""
    if len(pairs) == 2:
        (k0, code), (k1, name) = pairs
        if k0 == "code" and k1 == "name":
            return Area(code, name, 0, -1, None)  # type: ignore[arg-type]
    elif len(pairs) == 3:
        (k0, kids), (k1, code), (k2, name) = pairs
        if k0 == "children" and k1 == "code" and k2 == "name":
            return Area(code, name, 0, -1, kids)
    node = _plain(pairs)
    if len(node) == 2 and "code" in node and "name" in node:
        return Area(node["code"], node["name"], 0, -1, None)  # type: ignore[arg-type]
    if len(node) == 3 and "code" in node and "name" in node and "children" in node:
        return Area(node["code"], node["name"], 0, -1, node["children"])
    raise Fallback


def _decoder(hook: Callable[[list[tuple[str, Any]]], Any]) -> Callable[[str, int], tuple[Any, int]]:
    decoder = json.JSONDecoder(object_pairs_hook=hook, parse_float=_give_up, parse_constant=_give_up)
    return decoder.scan_once  # type: ignore[attr-defined,no-any-return]


_scan_plain = _decoder(_plain)
_scan_area = _decoder(_area)
_MESA = object()


@dataclass(slots=True)
class Parts:
    """What :func:`parse` read: the small members as parsed JSON, areas and mesas already compact."""

    root: dict[str, Any] = field(default_factory=dict)
    areas: tuple[Area, ...] = ()
    area_index: dict[str, int] = field(default_factory=dict)
    mesa_ids: MesaIds | None = None
    mesa_area: array[int] = field(default_factory=lambda: array("I"))
    mesa_registered: array[int] = field(default_factory=lambda: array("I"))


class _Reader:
    """A window of decoded text over UTF-8 bytes: ``buf[pos:]`` is what comes next."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.next = 0  # first byte not yet decoded
        self.buf = ""
        self.pos = 0
        self.eof = not data

    def ensure(self, ahead: int) -> None:
        """Hold at least ``ahead`` characters after ``pos``, or everything left."""
        if len(self.buf) - self.pos >= ahead or self.eof:
            return
        data = self.data
        parts = [self.buf[self.pos :]]
        have = len(parts[0])
        while have < ahead and not self.eof:
            end = min(self.next + max(ahead - have, _WINDOW, 4), len(data))
            for _ in range(3):  # never cut a character in two (a window of 4 bytes holds one at least)
                if end < len(data) and 0x80 <= data[end] < 0xC0:
                    end -= 1
            try:
                piece = data[self.next : end].decode("utf-8")
            except UnicodeDecodeError:
                raise Fallback from None
            parts.append(piece)
            have += len(piece)
            self.next = end
            self.eof = end == len(data)
        self.buf = "".join(parts)
        self.pos = 0

    def skip(self) -> str:
        """Skip whitespace and return the next character ('' at the end)."""
        self.ensure(_MARGIN)
        self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
        while self.pos == len(self.buf) and not self.eof:
            self.ensure(_MARGIN)
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
        return self.buf[self.pos : self.pos + 1]

    def scan(self, scan_once: Callable[[str, int], tuple[Any, int]]) -> Any:
        """Scan one value, widening the window until it is complete (a number must not touch the end)."""
        ahead = _MARGIN
        while True:
            self.ensure(ahead)
            try:
                value, end = scan_once(self.buf, self.pos)
            except (StopIteration, ValueError, RecursionError):
                if self.eof:
                    raise Fallback from None
                ahead = 2 * max(ahead, len(self.buf) - self.pos)
                continue
            if end < len(self.buf) or self.eof or type(value) in (dict, list, str, Area) or value is _MESA:
                self.pos = end
                return value
            ahead = 2 * max(ahead, len(self.buf) - self.pos)

    def key(self) -> str:
        if self.skip() != '"':
            raise Fallback
        self.pos += 1
        return self.scan(lambda text, at: scanstring(text, at, True))  # type: ignore[no-any-return]

    def expect(self, char: str) -> None:
        if self.skip() != char:
            raise Fallback
        self.pos += 1

    def items(self, scan_once: Callable[[str, int], tuple[Any, int]]) -> Iterator[Any]:
        """Scan the items of an array one at a time."""
        self.expect("[")
        if self.skip() == "]":
            self.pos += 1
            return
        while True:
            self.skip()
            yield self.scan(scan_once)
            char = self.skip()
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                raise Fallback


def parse(data: bytes) -> Parts:
    """Read a definition into :class:`Parts`; :class:`Fallback` unless every step is plainly valid."""
    reader = _Reader(data)
    parts = Parts()
    root = parts.root
    reader.expect("{")
    while True:
        key = reader.key()
        if key in root:
            raise Fallback
        reader.expect(":")
        if key == "areas":
            roots = list(reader.items(_scan_area))
            parts.areas, parts.area_index = _walk(roots)
            root[key] = []  # checked by _walk
        elif key == "mesas":
            if "areas" not in root:
                raise Fallback
            _mesas(reader, parts)
            root[key] = []  # checked as they were read
        else:
            reader.skip()
            root[key] = reader.scan(_scan_plain)
        char = reader.skip()
        reader.pos += 1
        if char == "}":
            break
        if char != ",":
            raise Fallback
    if reader.skip() != "" or "mesas" not in root:
        raise Fallback
    return parts


def _walk(roots: list[Any]) -> tuple[tuple[Area, ...], dict[str, int]]:
    """Place the areas in pre-order (their level, parent and children are set here, once, before anyone
    else sees them); the levels' names are checked by the caller."""
    if not roots:
        raise Fallback
    areas: list[Area] = []
    index: dict[str, int] = {}
    place = object.__setattr__

    def visit(node: Any, parent: int, level: int) -> int:
        if type(node) is not Area or level >= MAX_LEVELS:
            raise Fallback
        code, name = node.code, node.name
        kids: Any = node.children
        if type(code) is not str or not _CODE(code):
            raise Fallback
        if type(name) is not str or not 0 < len(name) <= MAX_NAME or not name.isprintable():
            raise Fallback
        me = len(areas)
        if index.setdefault(code, me) != me:
            raise Fallback
        areas.append(node)
        place(node, "level", level)
        place(node, "parent", parent)
        if type(kids) is list:
            place(node, "children", tuple([visit(kid, me, level + 1) for kid in kids]))
        elif kids is None:
            place(node, "children", ())
        else:
            raise Fallback
        return me

    for node in roots:
        visit(node, -1, 0)
    return tuple(areas), index


def _mesas(reader: _Reader, parts: Parts) -> None:
    """Read the mesas array straight into columns, one scanner call per mesa."""
    builder = MesaIdsBuilder()
    add = builder.add
    area_append = parts.mesa_area.append
    registered_append = parts.mesa_registered.append
    area_of = parts.area_index.get

    def mesa(pairs: list[tuple[str, Any]]) -> object:
        if len(pairs) != 3:
            raise Fallback
        (k0, code), (k1, mesa_id), (k2, count) = pairs
        if k0 != "area" or k1 != "id" or k2 != "registered":
            obj = _plain(pairs)
            if obj.keys() != _MESA_KEYS:
                raise Fallback
            code, mesa_id, count = obj["area"], obj["id"], obj["registered"]
        if type(mesa_id) is not str or not _ID(mesa_id) or type(count) is not int or not 0 <= count <= MAX_REGISTERED:
            raise Fallback
        area = area_of(code) if type(code) is str else None
        if area is None or not add(mesa_id):
            raise Fallback
        area_append(area)
        registered_append(count)
        return _MESA

    scan = _decoder(mesa)
    reader.expect("[")
    if reader.skip() == "]":
        reader.pos += 1
    else:  # reader.items unrolled: one scanner call and one comma per mesa when there is no whitespace
        buf, pos = reader.buf, reader.pos
        while True:
            if len(buf) - pos < _MARGIN and not reader.eof:
                reader.pos = pos
                reader.ensure(_MARGIN)
                buf, pos = reader.buf, reader.pos
            try:
                value, pos = scan(buf, pos)
            except (StopIteration, ValueError, RecursionError):
                reader.pos = pos
                value = reader.scan(scan)  # widens the window, or gives up for good
                buf, pos = reader.buf, reader.pos
            if value is not _MESA:
                raise Fallback
            char = buf[pos : pos + 1]
            if char != "," and char != "]":
                reader.pos = pos
                char = reader.skip()
                buf, pos = reader.buf, reader.pos
            pos += 1
            if char == "]":
                break
            if char != ",":
                raise Fallback
            if buf[pos : pos + 1] in _SPACE_OR_END:
                reader.pos = pos
                reader.skip()
                buf, pos = reader.buf, reader.pos
        reader.pos = pos
    parts.mesa_ids = builder.build()
    if parts.mesa_ids is None or len(parts.mesa_ids) != len(parts.mesa_area):
        raise Fallback


# ------------------------------------------------------------------------------------------ canonical out

_CHUNK = 4096  # mesas or areas per yielded chunk


def iter_areas(areas: tuple[Area, ...], last: int) -> Iterator[str]:
    """Yield the canonical text of the ``areas`` array in pieces (pre-order, closing parents as it goes)."""
    parts = ["["]
    open_: list[int] = []  # indices of the areas whose children are being written
    for i, area in enumerate(areas):
        while open_ and open_[-1] != area.parent:
            done = areas[open_.pop()]
            parts.append(f'],"code":{encode_basestring(done.code)},"name":{encode_basestring(done.name)}}}')
        if (areas[area.parent].children[0] if area.parent >= 0 else 0) != i:
            parts.append(",")
        if area.level != last:
            parts.append('{"children":[')
            open_.append(i)
        else:
            parts.append(f'{{"code":{encode_basestring(area.code)},"name":{encode_basestring(area.name)}}}')
        if len(parts) >= _CHUNK:
            yield "".join(parts)
            parts.clear()
    while open_:
        done = areas[open_.pop()]
        parts.append(f'],"code":{encode_basestring(done.code)},"name":{encode_basestring(done.name)}}}')
    parts.append("]")
    yield "".join(parts)


def iter_mesas(ids: MesaIds, area_col: array[int], registered_col: array[int], codes: list[str]) -> Iterator[str]:
    """Yield the canonical text of the ``mesas`` array in pieces (codes and ids never need escaping)."""
    yield "["
    for number, chunk in enumerate(ids.chunks()):
        lo = number * CHUNK
        hi = lo + len(chunk)
        text = ",".join(
            [
                f'{{"area":"{codes[a]}","id":"{m}","registered":{r}}}'
                for m, a, r in zip(chunk, area_col[lo:hi], registered_col[lo:hi], strict=True)
            ]
        )
        yield text if lo == 0 else "," + text
    yield "]"
