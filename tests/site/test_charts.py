"""Server-side SVG charts: colours meet WCAG contrast, charts are well-formed, accessible, escaped and stable."""

from __future__ import annotations

import gzip
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.errors import MalformedError
from actas.publish.charts import (
    NEUTRAL,
    WIDTH,
    Bar,
    Series,
    bar_chart,
    contrast_ratio,
    fit_text,
    histogram,
    line_chart,
    mix_colours,
    num,
    option_colours,
)
from tests.site.conftest import StaticServer, Watched

SVG = "{http://www.w3.org/2000/svg}"
GEOMETRY = {"x", "y", "width", "height", "cx", "cy", "r", "points", "d", "viewBox"}
NASTY = "a<b & \"c\" > 'd'"
# Text as XML can carry it: no surrogates, no control characters but tab and newline (\r is normalised away).
XML_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=40).filter(
    lambda s: not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", s)
)


def wcag_contrast(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio, written out here independently of the module under test."""

    def luminance(colour: str) -> float:
        def linear(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def parse(svg: str) -> ET.Element:
    """Parse chart output and check what every chart shares: root, size, labels."""
    assert svg.startswith("<svg")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "100%"
    assert re.fullmatch(r"0 0 \d+(\.\d)? \d+(\.\d)?", root.get("viewBox", ""))
    assert root.get("font-family") == "inherit"
    label_ids = root.get("aria-labelledby", "").split()
    assert [root.find(f".//*[@id='{i}']").tag for i in label_ids] == [f"{SVG}title", f"{SVG}desc"]  # type: ignore[union-attr]
    assert "style=" not in svg  # a strict CSP would block inline style attributes
    for element in root.iter():
        for name, value in element.attrib.items():
            if name in GEOMETRY:
                assert not re.search(r"\d\.\d\d|e[+-]?\d", value), f"{name}={value!r}: not one fixed decimal"
    return root


def texts(root: ET.Element, tag: str) -> list[str]:
    """The text of every element ``tag`` under root, in document order."""
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}{tag}")]


# -- colours --------------------------------------------------------------------------------------------------


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the lightest AA grey
    assert contrast_ratio("#777777", "#ffffff") < 4.5


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 11, 38, 120])
def test_option_colours_are_distinct_and_readable_on_white(n: int) -> None:
    colours = option_colours(n)
    assert len(colours) == n
    assert len(set(colours)) == n
    for colour in colours:
        assert re.fullmatch(r"#[0-9a-f]{6}", colour)
        assert wcag_contrast(colour, "#ffffff") >= 4.5  # text
        assert wcag_contrast(colour, "#ffffff") >= 3.0  # graphics
    assert option_colours(n) == colours
    assert option_colours(n + 3)[:n] == colours  # adding an option never recolours the others


def test_neutral_colour_is_readable_and_not_an_option_colour() -> None:
    assert wcag_contrast(NEUTRAL, "#ffffff") >= 4.5
    assert NEUTRAL not in option_colours(10)


def test_option_colours_rejects_a_negative_count() -> None:
    with pytest.raises(MalformedError):
        option_colours(-1)


def test_mix_colours_ends_and_middle() -> None:
    assert mix_colours("#1f5fa8", "#ffffff", 1.0) == "#1f5fa8"
    assert mix_colours("#1f5fa8", "#ffffff", 0.0) == "#ffffff"
    assert mix_colours("#000000", "#ffffff", 0.5) == "#808080"


def test_num_keeps_one_decimal_and_no_negative_zero() -> None:
    values = (0.0, -0.0, -0.04, 12.0, 12.25, 12.349, 1 / 3)
    assert [num(v) for v in values] == ["0", "0", "0", "12", "12.2", "12.3", "0.3"]


def test_fit_text_shortens_with_an_ellipsis() -> None:
    assert fit_text("short", 1000, 15) == "short"
    shortened = fit_text("a very long candidate name indeed", 100, 15)
    assert shortened.endswith("…")
    assert len(shortened) < 15


# -- bar chart ------------------------------------------------------------------------------------------------


def bars(n: int) -> list[Bar]:
    colours = option_colours(n)
    shares = [1 / (k + 2) for k in range(n)]
    return [Bar(f"Option {k}", shares[k], colours[k], f"{k * 1000:,} · {shares[k]:.1%}") for k in range(n)]


@pytest.mark.parametrize("n", [0, 1, 12])
def test_bar_chart_has_one_titled_mark_per_bar(n: int) -> None:
    svg = bar_chart(bars(n), "Results", "Votes per option")
    root = parse(svg)
    assert root.get("role") == "img"
    assert texts(root, "title")[0] == "Results"
    assert texts(root, "desc") == ["Votes per option"]
    marks = [g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None]
    assert [m.findtext(f"{SVG}title") for m in marks] == [f"{b.label}: {b.text}" for b in bars(n)]
    assert svg == bar_chart(bars(n), "Results", "Votes per option")  # deterministic


def test_bar_lengths_follow_shares_and_tiny_shares_stay_visible() -> None:
    chart = [Bar("A", 0.5, "#1f5fa8", "50%"), Bar("B", 0.0001, "#b3261e", "0.01%"), Bar("C", 0.0, "#1b7a3d", "0%")]
    root = parse(bar_chart(chart, "t", "d"))
    filled = [r for r in root.iter(f"{SVG}rect") if r.get("fill", "").startswith("#")]
    assert [float(r.get("width", "")) for r in filled] == [WIDTH / 2, 1.0, 0.0]
    assert [r.get("fill") for r in filled] == ["#1f5fa8", "#b3261e", "#1b7a3d"]


def test_bar_chart_text_uses_the_page_colour() -> None:
    root = parse(bar_chart(bars(2), "t", "d"))
    group = root.find(f"{SVG}g")
    assert group is not None
    assert group.get("fill") == "currentColor"
    assert all(t.get("fill") is None for t in root.iter(f"{SVG}text"))


def test_bar_chart_escapes_caller_text() -> None:
    svg = bar_chart([Bar(NASTY, 0.5, "#1f5fa8", NASTY, title=NASTY)], NASTY, NASTY)
    root = parse(svg)
    assert texts(root, "title") == [NASTY, NASTY]
    assert texts(root, "desc") == [NASTY]
    assert NASTY in texts(root, "text")


@given(label=XML_TEXT, text=XML_TEXT, share=st.floats(0, 1))
def test_bar_chart_is_well_formed_for_any_text(label: str, text: str, share: float) -> None:
    root = parse(bar_chart([Bar(label, share, "#1f5fa8", text)], label, text))
    assert texts(root, "title") == [label, f"{label}: {text}"]


def test_bar_chart_shortens_long_labels_but_keeps_them_whole_in_the_tooltip() -> None:
    label = "Candidate " * 12
    root = parse(bar_chart([Bar(label, 0.5, "#1f5fa8", "1,234,567 · 50.0%")], "t", "d"))
    shown = texts(root, "text")[0]
    assert shown.endswith("…")
    assert len(shown) < len(label)
    assert texts(root, "title")[1] == f"{label}: 1,234,567 · 50.0%"


def test_text_that_xml_cannot_carry_is_replaced() -> None:
    root = parse(bar_chart([Bar("a\x00b\x1fc", 0.5, "#1f5fa8", "x")], "t\udc00", "d"))
    assert texts(root, "title")[0] == "t\ufffd"
    assert texts(root, "text")[0] == "a\ufffdb\ufffdc"


@pytest.mark.parametrize(
    ("share", "colour"), [(1.5, "#1f5fa8"), (-0.1, "#1f5fa8"), (math.nan, "#1f5fa8"), (0.5, "red"), (0.5, "#12345")]
)
def test_bar_rejects_bad_share_or_colour(share: float, colour: str) -> None:
    with pytest.raises(MalformedError):
        Bar("A", share, colour, "x")


# -- histogram ------------------------------------------------------------------------------------------------


def turnout(counts: list[int]) -> str:
    n = len(counts)
    edges = [f"{round(100 * k / max(n, 1))}%" for k in range(n + 1)]
    titles = [f"{edges[k]}–{edges[k + 1]}: {c:,} mesas" for k, c in enumerate(counts)]
    return histogram(counts, edges, "Turnout", "Mesas by turnout", titles, y_ticks=[(0, "0"), (100, "100")])


@pytest.mark.parametrize("counts", [[], [7], [0, 0, 0], [0, 3, 40, 100, 41, 2, 0, 1, 0, 0] * 2])
def test_histogram_draws_one_titled_bar_per_bin(counts: list[int]) -> None:
    root = parse(turnout(counts))
    marks = [g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None]
    assert len(marks) == len(counts)
    heights = [float(g.findall(f"{SVG}rect")[1].get("height", "")) for g in marks]
    top = max(counts, default=0)
    for count, height in zip(counts, heights, strict=True):
        assert height == pytest.approx(220 * count / max(top, 100), abs=0.05)
    assert turnout(counts) == turnout(counts)


def test_histogram_labels_first_and_last_edge_when_bins_allow() -> None:
    shown = texts(parse(turnout([1] * 20)), "text")
    assert "0%" in shown
    assert "100%" in shown


def test_histogram_rejects_mismatched_edges_or_titles() -> None:
    with pytest.raises(MalformedError):
        histogram([1, 2], ["0", "1"], "t", "d", ["a", "b"])
    with pytest.raises(MalformedError):
        histogram([1, 2], ["0", "1", "2"], "t", "d", ["a"])
    with pytest.raises(MalformedError):
        histogram([1, -2], ["0", "1", "2"], "t", "d", ["a", "b"])


def test_histogram_escapes_caller_text() -> None:
    root = parse(histogram([1], [NASTY, NASTY], NASTY, NASTY, [NASTY]))
    assert texts(root, "title") == [NASTY, NASTY]
    assert texts(root, "text") == [NASTY, NASTY]


# -- line chart -----------------------------------------------------------------------------------------------


def history(series: list[Series]) -> str:
    return line_chart(
        series,
        "Log size",
        "Share",
        "Results over time",
        "Shares and coverage as the log grew",
        x_ticks=[(0, "0"), (5000, "5,000"), (10000, "10,000")],
        y_ticks=[(0, "0%"), (0.5, "50%"), (1, "100%")],
    )


def sample_series() -> list[Series]:
    colours = option_colours(2)
    return [
        Series("A", colours[0], [(0, 0.0), (5000, 0.55), (10000, 0.52)]),
        Series("B", colours[1], [(0, 0.0), (5000, 0.45), (10000, 0.48)]),
        Series("Coverage", NEUTRAL, [(0, 0.0), (5000, 0.4), (10000, 1.2)], point_titles=["0", "40%", "100%"]),
    ]


def test_line_chart_has_a_titled_line_and_legend_entry_per_series() -> None:
    svg = history(sample_series())
    root = parse(svg)
    lines = root.findall(f".//{SVG}polyline")
    assert [line.findtext(f"{SVG}title") for line in lines] == ["A", "B", "Coverage"]
    assert len({line.get("stroke-dasharray") for line in lines}) == 3  # told apart without colour too
    assert {"A", "B", "Coverage", "Log size", "Share", "5,000", "50%"} <= set(texts(root, "text"))
    assert [c.findtext(f"{SVG}title") for c in root.iter(f"{SVG}circle")] == ["0", "40%", "100%"]
    assert svg == history(sample_series())


def test_line_chart_points_stay_inside_the_plot() -> None:
    root = parse(history(sample_series()))
    width = float(root.get("viewBox", "").split()[2])
    for line in root.iter(f"{SVG}polyline"):
        for point in line.get("points", "").split():
            x, y = (float(v) for v in point.split(","))
            assert 0 <= x <= width
            assert 28 <= y <= 248  # 1.2 is drawn at the top (y_max), not above it


def test_line_chart_single_point_and_no_series() -> None:
    root = parse(history([Series("Only", "#1f5fa8", [(3, 0.5)])]))
    assert [c.findtext(f"{SVG}title") for c in root.iter(f"{SVG}circle")] == ["Only"]
    parse(line_chart([], "x", "y", "t", "d"))


def test_line_chart_escapes_caller_text() -> None:
    root = parse(line_chart([Series(NASTY, "#1f5fa8", [(0, 0), (1, 1)])], NASTY, NASTY, NASTY, NASTY))
    assert texts(root, "title") == [NASTY, NASTY]
    assert texts(root, "text").count(NASTY) == 3  # y label, x label, legend


@pytest.mark.parametrize(
    "make",
    [
        lambda: Series("A", "blue", [(0, 0)]),
        lambda: Series("A", "#1f5fa8", [(0, math.nan)]),
        lambda: Series("A", "#1f5fa8", [(0, 0)], point_titles=["a", "b"]),
        lambda: line_chart([], "x", "y", "t", "d", y_max=0),
    ],
)
def test_line_chart_rejects_bad_input(make: Callable[[], object]) -> None:
    with pytest.raises(MalformedError):
        make()


# -- in a browser ---------------------------------------------------------------------------------------------


def test_charts_fit_a_phone_and_stay_small(
    tmp_path: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    many = [c * 37 % 1000 for c in range(50)]
    charts = [bar_chart(bars(10), "Results", "d"), turnout(many), history(sample_series())]
    assert all(len(gzip.compress(c.encode())) < 4000 for c in charts)
    body = "".join(f"<figure>{c}</figure>" for c in charts)
    (tmp_path / "index.html").write_text(
        '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>charts</title><body>{body}</body></html>",
        encoding="utf-8",
    )
    watched = new_page(viewport={"width": 360, "height": 740})
    watched.page.goto(static_server(tmp_path).url)
    assert watched.page.evaluate("document.documentElement.scrollWidth") <= 360
    sizes = watched.page.evaluate(
        "[...document.querySelectorAll('svg')].map(s => [s.getBoundingClientRect().width,"
        " s.getBoundingClientRect().height, s.viewBox.baseVal.width, s.viewBox.baseVal.height])"
    )
    for width, height, view_width, view_height in sizes:
        assert 200 < width <= 360
        assert height == pytest.approx(width * view_height / view_width, rel=0.02)  # scales, keeps its shape
    watched.assert_clean()
