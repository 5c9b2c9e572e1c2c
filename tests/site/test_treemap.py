"""The squarified treemap: a layout that tiles its box exactly, and an SVG of keyboard-reachable area links."""

from __future__ import annotations

import gzip
import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.errors import MalformedError
from actas.publish.charts import option_colours
from actas.publish.treemap import Rect, Tile, label_colour, squarify, tile_fill, treemap_svg
from tests.site.conftest import StaticServer, Watched
from tests.site.test_charts import NASTY, SVG, XML_TEXT, parse, wcag_contrast

WEIGHTS = st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e9), st.integers(1, 10**6).map(float)), max_size=40)
BOXES = st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(1, 2e3), st.floats(1, 2e3))


def overlap(a: Rect, b: Rect) -> float:
    """The area two rectangles share."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(width, 0.0) * max(height, 0.0)


def check_layout(weights: list[float], box: tuple[float, float, float, float]) -> list[Rect]:
    """Every property a squarified layout must have, checked for one input."""
    x, y, w, h = box
    rects = squarify(weights, x, y, w, h)
    assert len(rects) == len(weights)
    total = math.fsum(weights)
    area = w * h
    tolerance = 1e-6 * area
    if total > 0:
        assert math.fsum(r.w * r.h for r in rects) == pytest.approx(area, rel=1e-6)
    for weight, rect in zip(weights, rects, strict=True):  # input order kept: each rect has its own weight's area
        assert rect.w >= 0
        assert rect.h >= 0
        expected = area * (weight / total) if total > 0 else 0.0
        assert rect.w * rect.h == pytest.approx(expected, abs=tolerance)
        if weight == 0:
            assert rect.w == rect.h == 0
        slack = 1e-9 * (w + h + abs(x) + abs(y))
        assert x - slack <= rect.x
        assert rect.x + rect.w <= x + w + slack
        assert y - slack <= rect.y
        assert rect.y + rect.h <= y + h + slack
    for a, b in itertools.combinations(rects, 2):
        assert overlap(a, b) <= tolerance
    return rects


@given(WEIGHTS, BOXES)
def test_squarify_tiles_the_box_in_proportion(weights: list[float], box: tuple[float, float, float, float]) -> None:
    check_layout(weights, box)


@given(st.lists(st.floats(1e-9, 1e12), min_size=2, max_size=30))
def test_squarify_very_skewed_weights(weights: list[float]) -> None:
    check_layout(weights, (0, 0, 800, 450))


@pytest.mark.parametrize(
    "weights",
    [
        [],
        [0.0],
        [5.0],
        [0.0, 0.0],
        [1e12, 1.0],
        [1.0, 1e12, 0.0, 1e-6],
        [1.0] * 300,
        [2.0**-k for k in range(60)],
        [5e-324],
        [3e-304, 3e-304],
    ],
)
def test_squarify_edge_cases(weights: list[float]) -> None:
    check_layout(weights, (10, 20, 800, 450))


def test_squarify_matches_the_example_of_bruls_et_al() -> None:
    # The paper's worked example: areas 6, 6, 4, 3, 2, 2, 1 in a 6 × 4 rectangle.
    rects = squarify([6, 6, 4, 3, 2, 2, 1], 0, 0, 6, 4)
    # Two squares on the left; 4 and 3 in a row at the top right; 2, 2 and 1 side by side below them.
    expected: list[tuple[float, ...]] = [
        (0, 0, 3, 2),
        (0, 2, 3, 2),
        (3, 0, 12 / 7, 7 / 3),
        (3 + 12 / 7, 0, 9 / 7, 7 / 3),
    ]
    expected += [(3, 7 / 3, 1.2, 5 / 3), (4.2, 7 / 3, 1.2, 5 / 3), (5.4, 7 / 3, 0.6, 5 / 3)]
    assert [(r.x, r.y, r.w, r.h) for r in rects] == [pytest.approx(e) for e in expected]


def test_squarify_makes_squares_of_equal_weights_in_a_square() -> None:
    rects = squarify([1, 1, 1, 1], 0, 0, 2, 2)
    assert sorted((r.x, r.y, r.w, r.h) for r in rects) == [(0, 0, 1, 1), (0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 1, 1)]


def test_squarify_keeps_aspect_ratios_moderate() -> None:
    weights = [float(k) for k in range(1, 25)]
    for rect in squarify(weights, 0, 0, 800, 450):
        assert max(rect.w / rect.h, rect.h / rect.w) < 4


def test_squarify_in_an_empty_box_gives_empty_rects() -> None:
    assert all(r.w * r.h == 0 for r in squarify([1.0, 2.0], 0, 0, 0, 10))


@pytest.mark.parametrize(
    ("weights", "box"),
    [
        ([-1.0], (0.0, 0.0, 1.0, 1.0)),
        ([math.nan], (0.0, 0.0, 1.0, 1.0)),
        ([math.inf], (0.0, 0.0, 1.0, 1.0)),
        ([1e308, 1e308], (0.0, 0.0, 1.0, 1.0)),  # each finite, the sum not
        ([1.0], (0.0, 0.0, -1.0, 1.0)),
        ([1.0], (0.0, math.nan, 1.0, 1.0)),
    ],
)
def test_squarify_rejects_bad_input(weights: list[float], box: tuple[float, float, float, float]) -> None:
    with pytest.raises(MalformedError):
        squarify(weights, *box)


# -- SVG ------------------------------------------------------------------------------------------------------


def tiles(n: int, zero: int | None = None) -> list[Tile]:
    colours = option_colours(3)
    return [
        Tile(f"Area {k}", 0.0 if k == zero else float(1000 + 7919 * k % 5000), colours[k % 3], (k % 5) / 4,
             f"area/{k}/", f"Area {k}: leader {k % 3}")
        for k in range(n)
    ]  # fmt: skip


def links(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}a")


@pytest.mark.parametrize("n", [0, 1, 24])
def test_treemap_has_one_titled_link_per_tile_in_order(n: int) -> None:
    svg = treemap_svg(tiles(n), "States", "Coloured by leader, shaded by coverage")
    root = parse(svg)
    assert root.get("role") == "group"  # its links must stay visible to assistive technology
    assert [a.get("href") for a in links(root)] == [f"area/{k}/" for k in range(n)]
    assert [a.findtext(f"{SVG}title") for a in links(root)] == [t.title for t in tiles(n)]
    assert svg == treemap_svg(tiles(n), "States", "Coloured by leader, shaded by coverage")


def test_treemap_leaves_out_zero_weight_tiles() -> None:
    root = parse(treemap_svg(tiles(5, zero=2), "t", "d"))
    assert [a.get("href") for a in links(root)] == ["area/0/", "area/1/", "area/3/", "area/4/"]


def test_treemap_fills_tiles_by_leader_and_coverage() -> None:
    root = parse(treemap_svg(tiles(5), "t", "d"))
    fills = [a.find(f"{SVG}rect").get("fill") for a in links(root)]  # type: ignore[union-attr]
    assert fills == [tile_fill(t.colour, t.coverage) for t in tiles(5)]
    assert tile_fill("#1f5fa8", 1.0) == "#1f5fa8"
    assert wcag_contrast(tile_fill("#1f5fa8", 0.0), "#ffffff") < wcag_contrast("#1f5fa8", "#ffffff")


@given(st.integers(0, 0xFFFFFF), st.floats(0, 1))
def test_tile_labels_stay_legible_on_any_fill(colour: int, coverage: float) -> None:
    fill = tile_fill(f"#{colour:06x}", coverage)
    assert wcag_contrast(fill, label_colour(fill)) >= 4.5


def test_treemap_labels_only_tiles_they_fit() -> None:
    big = Tile("Big", 1000.0, "#1f5fa8", 1.0, "big/", "Big")
    small = Tile("A rather long area name", 1.0, "#b3261e", 1.0, "small/", "Small")
    root = parse(treemap_svg([big, small], "t", "d"))
    assert [a.findtext(f"{SVG}text") for a in links(root)] == ["Big", None]
    assert [a.find(f"{SVG}text").get("fill") for a in links(root)[:1]] == ["#ffffff"]  # type: ignore[union-attr]


def test_treemap_escapes_caller_text() -> None:
    tile = Tile(NASTY, 1.0, "#1f5fa8", 0.5, 'a?b=1&c="2"', NASTY)
    root = parse(treemap_svg([tile], NASTY, NASTY))
    (link,) = links(root)
    assert link.get("href") == 'a?b=1&c="2"'
    assert link.findtext(f"{SVG}title") == NASTY
    assert link.findtext(f"{SVG}text") == NASTY
    assert root.findtext(f"{SVG}title") == NASTY
    assert root.findtext(f"{SVG}desc") == NASTY


@given(st.lists(st.tuples(XML_TEXT, st.floats(0, 1e6)), max_size=12))
def test_treemap_is_well_formed_for_any_text(items: list[tuple[str, float]]) -> None:
    parse(treemap_svg([Tile(text, w, "#1b7a3d", 0.5, "x/", text) for text, w in items], "t", "d"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Tile("A", -1.0, "#1f5fa8", 0.5, "a/", "A"),
        lambda: Tile("A", 1.0, "#1f5fa8", 1.5, "a/", "A"),
        lambda: Tile("A", 1.0, "navy", 0.5, "a/", "A"),
        lambda: Tile("A", 1.0, "#1f5fa8", 0.5, "javascript:alert(1)", "A"),
        lambda: treemap_svg([], "t", "d", width=0),
    ],
)
def test_treemap_rejects_bad_input(make: Callable[[], object]) -> None:
    with pytest.raises(MalformedError):
        make()


def test_treemap_of_many_areas_stays_small() -> None:
    svg = treemap_svg(tiles(335), "Municipalities", "d")  # Venezuela's municipalities
    assert len(gzip.compress(svg.encode())) < 16_000


def test_treemap_links_are_reachable_by_keyboard(
    tmp_path: Path, static_server: Callable[[Path], StaticServer], new_page: Callable[..., Watched]
) -> None:
    svg = treemap_svg(tiles(6), "States", "d")
    (tmp_path / "index.html").write_text(
        '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>treemap</title><body>{svg}</body></html>",
        encoding="utf-8",
    )
    (tmp_path / "area" / "0").mkdir(parents=True)
    (tmp_path / "area" / "0" / "index.html").write_text("<!doctype html><title>Area 0</title>", encoding="utf-8")
    watched = new_page(viewport={"width": 360, "height": 740})
    page = watched.page
    page.goto(static_server(tmp_path).url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.getAttribute('href')"))
    assert focused == [f"area/{k}/" for k in range(6)]
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/area/0/")
    assert page.title() == "Area 0"
    watched.assert_clean()
