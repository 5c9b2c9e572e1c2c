"""Server-side SVG charts for the results site: option colours, bar chart, histogram and line chart.

Every function returns SVG text to embed inline in a static page, so the pictures need no JavaScript. The SVG
scales to its container (``viewBox``, ``width="100%"``); caller text arrives already localized and is escaped
here. Coordinates are written with one decimal at most, so the same input gives byte-identical output.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from actas.errors import MalformedError

NEUTRAL = "#6e6e6e"  # areas without data; 5.1:1 on white, like every option colour
# Hue-distinct colours dark enough for text on white (≥ 4.5:1); more are generated when a ballot needs them.
_PALETTE = (
    "#1f5fa8", "#b3261e", "#1b7a3d", "#7b3fa0", "#9a5200",
    "#00748a", "#c0185a", "#5c6b00", "#4d4d9e", "#8c4a3b",
)  # fmt: skip
_MAX_COLOURS = 4096
_MIN_CONTRAST = 4.6  # a margin over WCAG's 4.5 so rounding to hex never drops below it
_HEX = re.compile(r"#[0-9a-fA-F]{6}\Z")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DASHES = ("", "7 4", "2 3", "9 3 2 3")  # line styles, so series differ by more than colour
FONT = 15
WIDTH = 480


def option_colours(n: int) -> list[str]:
    """Return ``n`` distinct colours, each with ≥ 4.5:1 contrast against white."""
    if n < 0 or n > _MAX_COLOURS:
        raise MalformedError(f"option_colours: n={n} is not in 0..{_MAX_COLOURS}")
    colours = list(_PALETTE[:n])
    seen = set(colours)
    step = 0
    while len(colours) < n:
        hue = (0.07 + step * 0.381966) % 1.0  # golden-ratio steps keep neighbours far apart in hue
        saturation = (0.75, 0.55, 0.9)[step % 3]
        lightness = 0.5
        colour = _hls_hex(hue, lightness, saturation)
        while contrast_ratio(colour, "#ffffff") < _MIN_CONTRAST:
            lightness -= 0.01
            colour = _hls_hex(hue, lightness, saturation)
        step += 1
        if colour not in seen:
            seen.add(colour)
            colours.append(colour)
    return colours


def _hls_hex(hue: float, lightness: float, saturation: float) -> str:
    rgb = colorsys.hls_to_rgb(hue, lightness, saturation)
    return "#" + "".join(f"{int(c * 255 + 0.5):02x}" for c in rgb)


def check_colour(colour: str, what: str) -> None:
    """Raise MalformedError unless ``colour`` is ``#rrggbb``."""
    if not _HEX.match(colour):
        raise MalformedError(f"{what}: {colour!r} is not a #rrggbb colour")


def relative_luminance(colour: str) -> float:
    """Return the WCAG 2 relative luminance of a ``#rrggbb`` colour."""
    check_colour(colour, "colour")
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """Return the WCAG 2 contrast ratio (1..21) between two ``#rrggbb`` colours."""
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix_colours(colour: str, other: str, weight: float) -> str:
    """Return ``weight`` of ``colour`` mixed with ``1 - weight`` of ``other``, per sRGB channel."""
    check_colour(colour, "colour")
    check_colour(other, "colour")
    check_fraction(weight, "weight")
    parts = (
        int(int(colour[i : i + 2], 16) * weight + int(other[i : i + 2], 16) * (1 - weight) + 0.5) for i in (1, 3, 5)
    )
    return "#" + "".join(f"{p:02x}" for p in parts)


def check_fraction(value: float, what: str) -> None:
    """Raise MalformedError unless ``value`` is a number in [0, 1]."""
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise MalformedError(f"{what}: {value!r} is not in [0, 1]")


def num(value: float) -> str:
    """Format a coordinate with one decimal at most (``12``, ``12.5``; never ``-0``)."""
    text = f"{value:.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def xml_text(text: str) -> str:
    """Escape caller text for XML character data (characters XML cannot carry become U+FFFD)."""
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_attr(text: str) -> str:
    """Escape caller text for a double-quoted XML attribute."""
    return xml_text(text).replace('"', "&quot;")


def text_width(text: str, size: float) -> float:
    """Estimate the width of ``text`` at font ``size``, generously, as no font metrics exist here."""
    return len(text) * 0.6 * size


def fit_text(text: str, width: float, size: float) -> str:
    """Return ``text``, shortened with an ellipsis when it would be wider than ``width``."""
    if text_width(text, size) <= width:
        return text
    keep = int(width / (0.6 * size)) - 1
    return text[: max(keep, 0)].rstrip() + "…" if keep > 0 else ""


def svg_document(
    kind: str, size: tuple[float, float], title: str, desc: str, body: str, ident: str = "", role: str = "img"
) -> str:
    """Wrap chart ``body`` in an accessible, responsive ``<svg>`` labelled by its title and description.

    ``ident`` (an XML name) prefixes the ids of title and desc; by default it is derived from the content, so
    two different charts on one page never share ids.
    """
    title, desc = xml_text(title), xml_text(desc)
    ident = ident or kind[0] + hashlib.sha256(f"{title}\n{desc}\n{body}".encode()).hexdigest()[:10]
    if not _IDENT.match(ident):
        raise MalformedError(f"ident: {ident!r} is not a letter followed by letters, digits, '-' or '_'")
    width, height = size
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" viewBox="0 0 {num(width)} '
        f'{num(height)}" width="100%" role="{role}" aria-labelledby="{ident}-t {ident}-d" font-family="inherit">'
        f'<title id="{ident}-t">{title}</title><desc id="{ident}-d">{desc}</desc>{body}</svg>'
    )


@dataclass(frozen=True)
class Bar:
    """One option's bar: its label, its share in [0, 1], its colour and the caller's formatted figures."""

    label: str
    share: float
    colour: str
    text: str  # e.g. "1,234,567 · 51.2%", formatted by the caller for the page's language
    title: str = ""  # tooltip; "label: text" when empty

    def __post_init__(self) -> None:
        check_fraction(self.share, f"bar {self.label!r} share")
        check_colour(self.colour, f"bar {self.label!r} colour")


def bar_chart(bars: Sequence[Bar], title: str, desc: str, *, ident: str = "") -> str:
    """Draw horizontal bars, one row per bar: label left and figures right above a bar of its share."""
    row, bar_top, bar_height = 46, 20, 18
    parts = []
    for i, bar in enumerate(bars):
        y = i * row
        figures = fit_text(bar.text, WIDTH / 2, FONT)
        label = fit_text(bar.label, WIDTH - text_width(figures, FONT) - 12, FONT)
        length = bar.share * WIDTH
        if 0 < length < 1:
            length = 1.0  # a tiny share stays visible
        tip = bar.title or f"{bar.label}: {bar.text}"
        parts.append(
            f"<g><title>{xml_text(tip)}</title>"
            f'<text y="{y + 14}">{xml_text(label)}</text>'
            f'<text x="{WIDTH}" y="{y + 14}" text-anchor="end">{xml_text(figures)}</text>'
            f'<rect y="{y + bar_top}" width="{WIDTH}" height="{bar_height}" fill-opacity="0.1"/>'
            f'<rect y="{y + bar_top}" width="{num(length)}" height="{bar_height}" fill="{bar.colour}"/></g>'
        )
    body = f'<g fill="currentColor" font-size="{FONT}">{"".join(parts)}</g>'
    return svg_document("bar", (WIDTH, max(len(bars) * row - 8, 1)), title, desc, body, ident)


def _y_axis(ticks: Sequence[tuple[float, str]], y_max: float, plot: tuple[float, float, float, float]) -> str:
    """Horizontal grid lines with their labels, right-aligned left of the ``plot`` (left, top, width, height)."""
    left, top, width, height = plot
    parts = []
    for value, label in ticks:
        y = top + height - min(max(value / y_max, 0.0), 1.0) * height
        parts.append(
            f'<path d="M{num(left)} {num(y)}h{num(width)}" stroke="currentColor" stroke-opacity="0.2"/>'
            f'<text x="{num(left - 6)}" y="{num(y + 4)}" text-anchor="end">{xml_text(label)}</text>'
        )
    return "".join(parts)


def histogram(
    counts: Sequence[int],
    edges: Sequence[str],
    title: str,
    desc: str,
    bar_titles: Sequence[str],
    *,
    y_ticks: Sequence[tuple[float, str]] = (),
    colour: str = _PALETTE[0],
    ident: str = "",
) -> str:
    """Draw vertical bars of ``counts``; ``edges`` label the len(counts) + 1 bin boundaries, thinned to fit."""
    if len(edges) != len(counts) + 1 or len(bar_titles) != len(counts):
        raise MalformedError(f"histogram: {len(counts)} counts need {len(counts) + 1} edges and as many titles")
    if any(isinstance(c, bool) or c < 0 for c in counts):
        raise MalformedError("histogram: counts must be non-negative integers")
    check_colour(colour, "histogram colour")
    left = max([text_width(edges[0], FONT) / 2 + 2, *(text_width(label, FONT) + 10 for _, label in y_ticks)])
    right = text_width(edges[-1], FONT) / 2 + 2
    top, height = 8.0, 220.0
    width = WIDTH - left - right
    y_max = max([1.0, *counts, *(v for v, _ in y_ticks)])
    step = width / max(len(counts), 1)
    parts = [_y_axis(y_ticks, y_max, (left, top, width, height))]
    for i, (count, tip) in enumerate(zip(counts, bar_titles, strict=True)):
        x = left + i * step
        bar = count / y_max * height
        parts.append(
            f'<g><title>{xml_text(tip)}</title><rect x="{num(x)}" y="{num(top)}" width="{num(step)}" '
            f'height="{num(height)}" fill-opacity="0"/><rect x="{num(x + 0.5)}" y="{num(top + height - bar)}" '
            f'width="{num(max(step - 1, 0.5))}" height="{num(bar)}" fill="{colour}"/></g>'
        )
    every = max(1, math.ceil((max(text_width(e, FONT) for e in edges) + 8) / step))
    # Prefer a spacing that also labels the last edge (20 bins: every 4th, not every 3rd).
    every = next((k for k in range(every, 2 * every) if len(counts) % k == 0), every)
    baseline = top + height
    parts.append(f'<path d="M{num(left)} {num(baseline)}h{num(width)}" stroke="currentColor"/>')
    for i in range(0, len(edges), every):
        parts.append(f'<text x="{num(left + i * step)}" y="{num(baseline + 20)}" text-anchor="middle">')
        parts.append(f"{xml_text(edges[i])}</text>")
    body = f'<g fill="currentColor" font-size="{FONT}">{"".join(parts)}</g>'
    return svg_document("histogram", (WIDTH, baseline + 28), title, desc, body, ident)


@dataclass(frozen=True)
class Series:
    """One line: its legend label, colour and (x, y) points; optional per-point tooltips draw point markers."""

    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    point_titles: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_colour(self.colour, f"series {self.label!r} colour")
        try:
            points = tuple((float(x), float(y)) for x, y in self.points)
        except (TypeError, ValueError) as error:
            raise MalformedError(f"series {self.label!r}: a point is not a pair of numbers ({error})") from None
        if not all(math.isfinite(v) for point in points for v in point):
            raise MalformedError(f"series {self.label!r}: a point is not a finite number")
        if self.point_titles and len(self.point_titles) != len(points):
            raise MalformedError(f"series {self.label!r}: {len(self.point_titles)} point titles, {len(points)} points")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "point_titles", tuple(self.point_titles))


def line_chart(
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    title: str,
    desc: str,
    *,
    y_max: float = 1.0,
    x_ticks: Sequence[tuple[float, str]] = (),
    y_ticks: Sequence[tuple[float, str]] = (),
    ident: str = "",
) -> str:
    """Draw lines over x (e.g. log size) and y in [0, y_max] (e.g. a share), with axis labels and a legend."""
    if not (math.isfinite(y_max) and y_max > 0):
        raise MalformedError(f"line_chart: y_max {y_max!r} must be a positive number")
    xs = [x for s in series for x, _ in s.points] + [x for x, _ in x_ticks]
    low, high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    high = high if high > low else low + 1
    left = max((text_width(label, FONT) for _, label in y_ticks), default=0.0) + 10
    right = max((text_width(label, FONT) / 2 for _, label in x_ticks), default=0.0) + 8
    top, height = 28.0, 220.0
    width = WIDTH - left - right
    baseline = top + height

    def xpos(x: float) -> str:
        return num(left + (x - low) / (high - low) * width)

    def ypos(y: float) -> str:
        return num(baseline - min(max(y, 0.0), y_max) / y_max * height)

    parts = [
        f'<text x="{num(left)}" y="16">{xml_text(fit_text(y_label, WIDTH - left, FONT))}</text>',
        _y_axis(y_ticks, y_max, (left, top, width, height)),
        f'<path d="M{num(left)} {num(baseline)}h{num(width)}" stroke="currentColor"/>',
    ]
    for x, label in x_ticks:
        parts.append(f'<text x="{xpos(x)}" y="{num(baseline + 20)}" text-anchor="middle">{xml_text(label)}</text>')
    parts.append(f'<text x="{num(left + width / 2)}" y="{num(baseline + 42)}" text-anchor="middle">')
    parts.append(f"{xml_text(x_label)}</text>")
    for i, line in enumerate(series):
        points = " ".join(f"{xpos(x)},{ypos(y)}" for x, y in line.points)
        parts.append(f'<polyline points="{points}" fill="none"{_stroke(line.colour, i)}>')
        parts.append(f"<title>{xml_text(line.label)}</title></polyline>")
        tips = line.point_titles or ((line.label,) if len(line.points) == 1 else ())
        for (x, y), tip in zip(line.points, tips, strict=False):  # tips: one per point, or none
            parts.append(f'<circle cx="{xpos(x)}" cy="{ypos(y)}" r="3.5" fill="{line.colour}">')
            parts.append(f"<title>{xml_text(tip)}</title></circle>")
    legend, x, y = [], 0.0, baseline + 70
    for i, line in enumerate(series):
        label = fit_text(line.label, WIDTH - 34, FONT)
        item = 34 + text_width(label, FONT) + 16
        if x > 0 and x + item > WIDTH:
            x, y = 0.0, y + 24
        legend.append(f'<path d="M{num(x)} {num(y - 5)}h28"{_stroke(line.colour, i)}/>')
        legend.append(f'<text x="{num(x + 34)}" y="{num(y)}">{xml_text(label)}</text>')
        x += item
    body = f'<g fill="currentColor" font-size="{FONT}">{"".join(parts + legend)}</g>'
    return svg_document("line", (WIDTH, y + 8 if series else baseline + 50), title, desc, body, ident)


def _stroke(colour: str, index: int) -> str:
    """Stroke attributes of the ``index``-th line: its colour and a dash pattern, so lines differ by shape too."""
    dash = _DASHES[index % len(_DASHES)]
    return f' stroke="{colour}" stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "")
