"""A treemap of areas for the results site: squarified layout and SVG, one link per area.

The layout is the squarified treemap of Bruls, Huizing and van Wijk (2000): items, largest first, are laid in
rows along the shorter side of the space left, and a row grows while that does not worsen its worst aspect
ratio. Each tile is filled with its leading option's colour, mixed with white as coverage falls, and links to
its area's page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from actas.errors import MalformedError
from actas.publish.charts import (
    check_colour,
    check_fraction,
    contrast_ratio,
    mix_colours,
    num,
    svg_document,
    text_width,
    xml_attr,
    xml_text,
)

_LABEL_SIZES = (14, 11)  # the label is drawn at the first size that fits its tile, else not at all
_PAD = 4


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle: top-left corner, width and height."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Tile:
    """One area: its label, weight (e.g. electors), leader's colour, coverage in [0, 1], link and tooltip."""

    label: str
    weight: float
    colour: str
    coverage: float
    href: str
    title: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise MalformedError(f"tile {self.label!r} weight: {self.weight!r} is not a finite number ≥ 0")
        check_colour(self.colour, f"tile {self.label!r} colour")
        check_fraction(self.coverage, f"tile {self.label!r} coverage")
        if urlsplit(self.href).scheme not in ("", "http", "https"):
            raise MalformedError(f"tile {self.label!r} href: {self.href!r} is not a relative or http(s) link")


def squarify(weights: Sequence[float], x: float, y: float, w: float, h: float) -> list[Rect]:
    """Lay ``weights`` out as rectangles tiling the box, areas proportional to weights, in input order.

    Zero weights get zero-size rectangles at the box's corner; if every weight is zero, all rectangles are.
    """
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
        raise MalformedError(f"squarify: box ({x}, {y}, {w}, {h}) needs finite numbers and sizes ≥ 0")
    if not all(math.isfinite(v) and v >= 0 for v in weights):
        raise MalformedError("squarify: weights must be finite numbers ≥ 0")
    try:
        total = math.fsum(weights)
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise MalformedError("squarify: the weights' sum is not finite")
    x, y, w, h = float(x), float(y), float(w), float(h)
    rects = [Rect(x, y, 0.0, 0.0)] * len(weights)
    # Shares first, then areas: dividing the box by a tiny total would overflow.
    areas = [v / total * (w * h) if total > 0 else 0.0 for v in weights]
    # Largest first, ties in input order, so the layout depends only on the input.
    order = sorted((i for i, a in enumerate(areas) if a > 0), key=lambda i: (-areas[i], i))
    for i, rect in zip(order, _layout([areas[i] for i in order], x, y, w, h), strict=True):
        rects[i] = rect
    return rects


def _worst(total: float, largest: float, smallest: float, side: float) -> float:
    """The worst aspect ratio of a row of areas summing to ``total`` laid along ``side``."""
    square, total_square = side * side, total * total
    if total_square == 0 or square * smallest == 0:  # underflow: sizes too small to compare, call it awful
        return math.inf
    return max(square * largest / total_square, total_square / (square * smallest))


def _layout(areas: list[float], x: float, y: float, w: float, h: float) -> list[Rect]:
    """Squarify positive ``areas`` (sorted, largest first, summing to about w·h) into the box."""
    rects: list[Rect] = []
    start = 0
    while start < len(areas):
        side = min(w, h)
        if side <= 0:  # rounding used the box up: what is left has no area to speak of
            rects.extend(Rect(x, y, 0.0, 0.0) for _ in areas[start:])
            break
        end, total = start + 1, areas[start]
        while end < len(areas):
            grown = total + areas[end]
            if _worst(grown, areas[start], areas[end], side) > _worst(total, areas[start], areas[end - 1], side):
                break
            end, total = end + 1, grown
        last = end == len(areas)
        if w >= h:  # a column at the left, rectangles stacked downwards
            thickness = w if last else min(total / h, w)
            spans = _split(areas[start:end], total, y, h)
            rects.extend(Rect(x, at, thickness, size) for at, size in spans)
            x, w = x + thickness, max(w - thickness, 0.0)
        else:  # a row at the top, rectangles side by side
            thickness = h if last else min(total / w, h)
            rects.extend(Rect(at, y, size, thickness) for at, size in _split(areas[start:end], total, x, w))
            y, h = y + thickness, max(h - thickness, 0.0)
        start = end
    return rects


def _split(areas: list[float], total: float, origin: float, length: float) -> list[tuple[float, float]]:
    """Split ``length`` from ``origin`` among ``areas`` in proportion, as (start, size); the last ends at the end."""
    spans, at = [], origin
    for k, area in enumerate(areas):
        size = origin + length - at if k == len(areas) - 1 else length * area / total
        spans.append((at, max(size, 0.0)))
        at += size
    return spans


def label_colour(fill: str) -> str:
    """Return black or white, whichever contrasts more with ``fill`` (always ≥ 4.5:1)."""
    return "#000000" if contrast_ratio(fill, "#000000") >= contrast_ratio(fill, "#ffffff") else "#ffffff"


def tile_fill(colour: str, coverage: float) -> str:
    """Return the tile colour: the leader's colour, mixed with white as coverage falls (a quarter at none)."""
    return mix_colours(colour, "#ffffff", 0.25 + 0.75 * coverage)


def treemap_svg(
    tiles: Sequence[Tile], title: str, desc: str, width: float = 800, height: float = 450, *, ident: str = ""
) -> str:
    """Draw the treemap: each tile a keyboard-reachable link with its tooltip, labelled when the label fits.

    The root is a ``group`` (not ``img``, whose children would be hidden from assistive technology) labelled
    by the title and description; tiles of zero weight, or too small to draw, are left out.
    """
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise MalformedError(f"treemap_svg: size {width}×{height} must be positive")
    parts = []
    for tile, rect in zip(tiles, squarify([t.weight for t in tiles], 0, 0, width, height), strict=True):
        if rect.w < 0.05 or rect.h < 0.05:  # zero weight, or too small to draw: no invisible focus stops
            continue
        fill = tile_fill(tile.colour, tile.coverage)
        parts.append(
            f'<a class="tile" href="{xml_attr(tile.href)}"><title>{xml_text(tile.title)}</title>'
            f'<rect x="{num(rect.x)}" y="{num(rect.y)}" width="{num(rect.w)}" height="{num(rect.h)}" '
            f'fill="{fill}" stroke="#ffffff"/>{_label(tile.label, rect, label_colour(fill))}</a>'
        )
    return svg_document("treemap", (width, height), title, desc, "".join(parts), ident, role="group")


def _label(label: str, rect: Rect, colour: str) -> str:
    """The tile's label at its top-left corner, at the largest size that fits, or nothing."""
    for size in _LABEL_SIZES:
        if text_width(label, size) + 2 * _PAD <= rect.w and size * 1.2 + 2 * _PAD <= rect.h:
            x, y = num(rect.x + _PAD), num(rect.y + _PAD + size)
            return f'<text x="{x}" y="{y}" font-size="{size}" fill="{colour}">{xml_text(label)}</text>'
    return ""
