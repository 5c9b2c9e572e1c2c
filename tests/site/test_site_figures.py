"""The figures on the published pages equal `actas tally --json` for the same checkpoint, area by area.

Every area page at every level and the national page, in every language, is parsed and each number is read
back the language's way (es/pt: 1.234.567 and 51,2 %; en: 1,234,567 and 51.2%), then compared with the
tally the real command prints. Two elections: all actas logged, and a third of them missing (coverage below
100 %, areas with no acta at all).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actas.cli.main import cli
from actas.log.open import append_entries
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir

LANGS = ("es", "en", "pt")
MESAS, SEED = 300, 11
DASH = "–"  # a share or turnout over nothing

# How each language writes an integer and a one-decimal percentage.
_INTEGER = {"es": r"\d{1,3}(?:\.\d{3})*", "pt": r"\d{1,3}(?:\.\d{3})*", "en": r"\d{1,3}(?:,\d{3})*"}
_PERCENT = {"es": r"(\d+),(\d)[ \u00a0]?%", "pt": r"(\d+),(\d)[ \u00a0]?%", "en": r"(\d+)\.(\d)%"}
_SEPARATOR = {"es": ".", "pt": ".", "en": ","}


def parse_integer(text: str, lang: str) -> int:
    """An integer as the language writes it; anything else fails the test."""
    text = text.strip()
    assert re.fullmatch(_INTEGER[lang], text), f"{lang}: {text!r} is not an integer written the {lang} way"
    return int(text.replace(_SEPARATOR[lang], ""))


def parse_percent(text: str, lang: str) -> float | None:
    """A one-decimal percentage as the language writes it (None for the dash shown over nothing)."""
    text = text.strip()
    if text == DASH:
        return None
    match = re.fullmatch(_PERCENT[lang], text)
    assert match, f"{lang}: {text!r} is not a percentage written the {lang} way"
    return float(f"{match[1]}.{match[2]}")


def assert_percent(shown: str, part: int, whole: int, lang: str, where: str) -> None:
    """The page's rounded percentage is part/whole to one decimal (a dash when whole is 0)."""
    value = parse_percent(shown, lang)
    if whole <= 0:
        assert value is None, f"{where}: {shown!r} shown for a share of nothing"
        return
    assert value is not None, f"{where}: a dash shown for {part}/{whole}"
    exact = 100 * part / whole
    assert abs(value - exact) <= 0.05 + 1e-9, f"{where}: {shown!r} shown, {part}/{whole} is {exact:.4f} %"


def parse_coverage(text: str, lang: str) -> tuple[int, int, float | None]:
    """'5 de 5 actas recibidas (100,0 %)' → (received, expected, percent)."""
    match = re.fullmatch(r"(.*)\(([^()]*)\)\s*", text, re.S)
    assert match, f"{lang}: coverage {text!r} has no percentage in parentheses"
    numbers = [parse_integer(n, lang) for n in re.findall(r"\d[\d.,]*", match[1])]
    assert len(numbers) == 2, f"{lang}: coverage {text!r} does not name received and expected"
    return numbers[0], numbers[1], parse_percent(match[2], lang)


@dataclass
class ContestFigures:
    """What one section.contest[data-contest] of an area page shows."""

    fields: dict[str, str] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)  # hrefs in table.children
    mesas: list[tuple[str, str]] = field(default_factory=list)  # (href, text) in table.mesas


class AreaPage(HTMLParser):
    """Reads an area page: its lang, h1, and per contest the data-field cells and the children and mesa links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = ""
        self.h1 = ""
        self.contests: dict[str, ContestFigures] = {}
        self._sections: list[str | None] = []  # contest id of each open section (None: not a contest)
        self._table = ""
        self._capture: tuple[str, str, list[str]] | None = None  # (tag, what, text) of the element being read
        self._link: tuple[str, list[str]] | None = None
        self._in_h1 = False

    @property
    def contest(self) -> ContestFigures | None:
        """The contest section the parser is inside, if any."""
        open_ids = [c for c in self._sections if c is not None]
        return self.contests[open_ids[-1]] if open_ids else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "html":
            self.lang = a.get("lang") or ""
        elif tag == "h1":
            self._in_h1 = True
        elif tag == "section":
            contest = a.get("data-contest") if "contest" in classes else None
            if contest is not None:
                assert contest not in self.contests, f"contest {contest} shown twice"
                self.contests[contest] = ContestFigures()
            self._sections.append(contest)
        elif tag == "table":
            self._table = next((c for c in ("children", "mesas") if c in classes), "")
        elif tag == "a" and self._table and self.contest is not None:
            self._link = (a.get("href") or "", [])
        if a.get("data-field") and self.contest is not None:
            self._capture = (tag, a["data-field"] or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False
        elif tag == "section" and self._sections:
            self._sections.pop()
        elif tag == "table":
            self._table = ""
        elif tag == "a" and self._link is not None:
            contest = self.contest
            assert contest is not None
            href, text = self._link
            if self._table == "children":
                contest.children.append(href)
            else:
                contest.mesas.append((href, "".join(text).strip()))
            self._link = None
        if self._capture is not None and tag == self._capture[0]:
            contest = self.contest
            assert contest is not None
            _, what, text = self._capture
            assert what not in contest.fields, f"data-field {what} twice in one contest"
            contest.fields[what] = "".join(text)
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.h1 += data
        if self._capture is not None:
            self._capture[2].append(data)
        if self._link is not None:
            self._link[1].append(data)


def read_page(site: Path, relative: str) -> AreaPage:
    """Parse one area page of the site."""
    page = AreaPage()
    page.feed((site / relative).read_text(encoding="utf-8"))
    page.close()
    return page


@dataclass(frozen=True)
class Published:
    """A simulated election's data directory, its published site and `actas tally --json` of it."""

    data: Path
    site: Path
    tally: dict[str, Any]  # results file path → its JSON
    definition: dict[str, Any]  # election.json
    _pages: dict[str, AreaPage] = field(default_factory=dict)  # parsed once, read by several tests

    def page(self, relative: str) -> AreaPage:
        """One area page of the site, parsed."""
        if relative not in self._pages:
            self._pages[relative] = read_page(self.site, relative)
        return self._pages[relative]

    def areas(self) -> list[tuple[dict[str, Any], int, str | None]]:
        """Every area of the definition as (area, level, parent code), in pre-order."""
        out: list[tuple[dict[str, Any], int, str | None]] = []

        def walk(area: dict[str, Any], level: int, parent: str | None) -> None:
            out.append((area, level, parent))
            for child in area.get("children", []):
                walk(child, level + 1, area["code"])

        for top in self.definition["areas"]:
            walk(top, 0, None)
        return out

    def tally_rows(self, contest: str) -> dict[str, dict[str, Any]]:
        """Area code ('' for the nation) → the tally's row, over every level of a contest."""
        rows: dict[str, dict[str, Any]] = {}
        for path, content in self.tally.items():
            if path.startswith(f"results/{contest}/"):
                for row in content["areas"]:
                    assert row["code"] not in rows, f"{row['code']!r} twice in the tally"
                    rows[row["code"]] = row
        return rows


def run_tally(data: Path) -> dict[str, Any]:
    """What `actas tally DATA_DIR --json` prints."""
    result = CliRunner().invoke(cli, ["tally", str(data), "--json"])
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.output)
    return value


@pytest.fixture(scope="module", params=["all-actas", "two-thirds"])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A 300-mesa simulated election (all actas logged, or every third one missing), published."""
    base = tmp_path_factory.mktemp(f"figures-{request.param}")
    data = base / "data"
    if request.param == "all-actas":
        simulate(data, mesas=MESAS, seed=SEED)
    else:
        actas = base / "actas.ndjson"
        simulate(data, mesas=MESAS, seed=SEED, actas_out=actas)
        lines = [line for line in actas.read_bytes().split(b"\n") if line]
        _, refused = append_entries(DataDir(data), [a for i, a in enumerate(lines) if i % 3])
        assert refused == []
    site = base / "site"
    publish_bundle(DataDir(data), site)
    definition = json.loads((data / "election.json").read_bytes())
    return Published(data, site, run_tally(data), definition)


def test_site_is_bound_to_the_tallied_checkpoint(published: Published) -> None:
    """The site's log/checkpoint is the checkpoint the tally is bound to (origin, size, root)."""
    lines = (published.site / "log" / "checkpoint").read_text(encoding="utf-8").split("\n")
    for content in published.tally.values():
        assert lines[:3] == [content["election"], str(content["checkpoint"]["size"]), content["checkpoint"]["root"]]
    assert sorted(p.name for p in published.site.iterdir() if (p / "index.html").is_file()) == sorted(LANGS)


@pytest.mark.parametrize("lang", LANGS)
def test_every_area_page_shows_the_tally(published: Published, lang: str) -> None:
    """Votes, shares, null, blank, cast, turnout and coverage of every area and the nation equal the tally."""
    pages = [("", f"{lang}/index.html")] + [
        (a["code"], f"{lang}/area/{a['code']}.html") for a, _, _ in published.areas()
    ]
    contests = [c["id"] for c in published.definition["contests"]]
    for contest in contests:
        assert sorted(published.tally_rows(contest)) == sorted(code for code, _ in pages)
    checked = 0
    rows = {contest: published.tally_rows(contest) for contest in contests}
    for code, relative in pages:
        page = published.page(relative)
        assert page.lang == lang, relative
        assert sorted(page.contests) == sorted(contests), relative
        for contest in contests:
            row = rows[contest][code]
            where = f"{relative} [{contest}]"
            assert page.h1.strip().startswith(row["name"]), where
            checked += _check_figures(page.contests[contest].fields, row, lang, where)
    assert checked > 0


def _check_figures(fields: dict[str, str], row: dict[str, Any], lang: str, where: str) -> int:
    """Compare one contest section's cells with a tally row; returns the number of cells compared."""
    votes: list[int] = row["votes"]
    expected_fields = {f"votes-{i}" for i in range(len(votes))} | {f"share-{i}" for i in range(len(votes))}
    expected_fields |= {"null", "blank", "cast", "turnout", "coverage"}
    assert expected_fields <= fields.keys(), f"{where}: missing cells {sorted(expected_fields - fields.keys())}"
    extra = {f for f in fields if re.fullmatch(r"(votes|share)-\d+", f)} - expected_fields
    assert not extra, f"{where}: cells for options that do not exist: {sorted(extra)}"
    valid = sum(votes)
    for i, count in enumerate(votes):
        assert parse_integer(fields[f"votes-{i}"], lang) == count, f"{where}: votes-{i}"
        assert_percent(fields[f"share-{i}"], count, valid, lang, f"{where}: share-{i}")
    for name in ("null", "blank", "cast"):
        assert parse_integer(fields[name], lang) == row[name], f"{where}: {name}"
    assert_percent(fields["turnout"], row["cast"], row["registered_counted"], lang, f"{where}: turnout")
    received, expected, _ = parse_coverage(fields["coverage"], lang)
    assert (received, expected) == (row["actas"], row["mesas"]), f"{where}: coverage {fields['coverage']!r}"
    pct = re.fullmatch(r".*\(([^()]*)\)\s*", fields["coverage"], re.S)
    assert pct is not None
    assert_percent(pct[1], row["actas"], row["mesas"], lang, f"{where}: coverage")
    return len(expected_fields)


@pytest.mark.parametrize("lang", LANGS)
def test_children_tables_link_every_child(published: Published, lang: str) -> None:
    """An area's children table (in every contest) links to exactly its children's pages, which exist."""
    children: dict[str, list[str]] = {"": [a["code"] for a in published.definition["areas"]]}
    for area, _, _ in published.areas():
        children[area["code"]] = [c["code"] for c in area.get("children", [])]
    for code, kids in children.items():
        relative = f"{lang}/index.html" if code == "" else f"{lang}/area/{code}.html"
        page = published.page(relative)
        want = sorted(f"{lang}/area/{k}.html" for k in kids)
        for contest, figures in page.contests.items():
            got = sorted(_resolve(relative, href) for href in figures.children)
            assert got == want, f"{relative} [{contest}]"
        for target in want:
            assert (published.site / target).is_file(), target


@pytest.mark.parametrize("lang", LANGS)
def test_last_level_areas_list_every_mesa(published: Published, lang: str) -> None:
    """A last-level area's mesa table lists every mesa of that area (and no other), each linking to its page."""
    by_area: dict[str, list[str]] = {}
    for mesa in published.definition["mesas"]:
        by_area.setdefault(mesa["area"], []).append(mesa["id"])
    leaves = [a["code"] for a, _, _ in published.areas() if not a.get("children")]
    assert sorted(by_area) == sorted(leaves)
    for code in leaves:
        relative = f"{lang}/area/{code}.html"
        page = published.page(relative)
        for contest, figures in page.contests.items():
            assert sorted(text for _, text in figures.mesas) == sorted(by_area[code]), f"{relative} [{contest}]"
            for href, text in figures.mesas:
                target = _resolve(relative, href)
                assert target == f"{lang}/mesa/{text}.html", f"{relative}: {href}"
                assert (published.site / target).is_file(), target


def test_area_json_equals_the_tally(published: Published) -> None:
    """data/areas/<code>.json (and national.json) hold exactly the tally's rows, for every area and no other."""
    contests = [c["id"] for c in published.definition["contests"]]
    rows = {c: published.tally_rows(c) for c in contests}
    codes = sorted(rows[contests[0]])
    names = sorted(p.stem for p in (published.site / "data" / "areas").glob("*.json"))
    assert names == sorted("national" if code == "" else code for code in codes)
    for code in codes:
        value = json.loads((published.site / "data" / "areas" / f"{code or 'national'}.json").read_bytes())
        assert value["area"] == code
        assert [c["contest"] for c in value["contests"]] == contests
        for entry in value["contests"]:
            tallied = published.tally[f"results/{entry['contest']}/national.json"]
            assert entry["options"] == tallied["options"], code
            assert entry["totals"] == rows[entry["contest"]][code], code


def _resolve(page: str, href: str) -> str:
    """A relative href of a page as a path from the site root."""
    href = href.split("#", 1)[0].split("?", 1)[0]
    return posixpath.normpath(posixpath.join(posixpath.dirname(page), href))
