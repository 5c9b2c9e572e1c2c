"""The published site as files: deterministic, incremental, well-formed, self-contained and small enough.

Checked on a 300-mesa simulated election; the 30,026-mesa sizes and times are `make bench`'s.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actas.cli.main import cli
from actas.core.manifest import parse_manifest
from actas.core.tiles import tile_path, tiles_for_size
from actas.log.open import append_entries
from actas.publish.bundle import PublishSummary, publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir

LANGS = ("es", "en", "pt")
MESAS, SEED = 300, 11
HELD_BACK = 137  # the acta (line of the simulation's actas file) logged only before the rebuild
MANIFESTS = {"MANIFEST", "MANIFEST.note"}
NATIONAL_BUDGET = 150 * 1024  # gzip bytes of the national page with its stylesheet and scripts
PAGE_BUDGET = 300 * 1024  # gzip bytes of any one HTML page
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# XML namespace names are identifiers that are never fetched; any other absolute URL would be a request off-site.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://www.w3.org/1999/xhtml"}


class PageShape(HTMLParser):
    """What a page is made of: lang, title, h1s, mains, ids, links and what it loads, and any unclosed tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.h1 = 0
        self.mains: list[str | None] = []  # the id of each <main>
        self.ids: set[str] = set()
        self.links: list[str] = []  # every href, src and form action
        self.loads: list[str] = []  # stylesheets, scripts and images the browser fetches with the page
        self.problems: list[str] = []
        self._open: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in VOID:
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)  # <rect …/> in inline SVG: nothing left open

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "title":
            self._in_title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "main":
            self.mains.append(a.get("id"))
        if "id" in a:
            if a["id"] in self.ids:
                self.problems.append(f"id {a['id']!r} twice")
            self.ids.add(a["id"])
        for name, value in a.items():
            if name in ("href", "src", "action") or name.endswith(":href"):
                self.links.append(value)
        if (tag == "link" and "stylesheet" in a.get("rel", "").split()) or (tag in ("script", "img") and "src" in a):
            self.loads.append(a.get("href") or a["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in VOID:
            return
        if not self._open or self._open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self._open[-1] if self._open else '(nothing)'}>")
            if tag in self._open:
                del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]
            return
        self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def shape(site: Path, relative: str) -> PageShape:
    """Parse one page and check its tags close in order."""
    text = (site / relative).read_text(encoding="utf-8")
    page = PageShape()
    if not text.lower().startswith("<!doctype html>"):
        page.problems.append("no <!doctype html> first")
    page.feed(text)
    page.close()
    if page._open:
        page.problems.append(f"never closed: {page._open}")
    return page


def resolve(page: str, href: str) -> str:
    """A relative link of a page as a path from the site root (query and fragment stripped)."""
    path = href.split("#", 1)[0].split("?", 1)[0]
    return posixpath.normpath(posixpath.join(posixpath.dirname(page), path))


def broken_links(site: Path, relative: str) -> list[str]:
    """The relative links (href, src, action) of a page that name no file of the site."""
    page = shape(site, relative)
    broken = []
    for href in page.links:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href):
            continue  # absolute URLs are test_no_request_leaves_the_site's business
        if href.startswith("#"):
            if href[1:] not in page.ids:
                broken.append(href)
            continue
        target = resolve(relative, href)
        if not href or href.startswith("//") or target.startswith("..") or not (site / target).is_file():
            broken.append(href)
    return broken


def tree(root: Path) -> dict[str, Path]:
    """Every file under a directory by its path from there."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def pages_of(site: Path) -> list[str]:
    """Every HTML page of a site."""
    return [name for name in tree(site) if name.endswith(".html")]


def areas_of(definition: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """Every area of an election definition, in pre-order, with the codes from its top-level area down to it."""
    out: list[tuple[list[str], dict[str, Any]]] = []

    def walk(areas: list[dict[str, Any]], path: list[str]) -> None:
        for area in areas:
            out.append(([*path, area["code"]], area))
            walk(area.get("children", []), [*path, area["code"]])

    walk(definition["areas"], [])
    return out


def gzip_size(path: Path) -> int:
    """Bytes on the wire with gzip, as a web server sends them (the benchmark's measure)."""
    return len(gzip.compress(path.read_bytes(), compresslevel=6, mtime=0))


# -- a site published twice, by two processes ----------------------------------------------------------------


@dataclass(frozen=True)
class TwoBuilds:
    """One data directory published into two new directories by two processes."""

    data: Path
    first: Path
    second: Path


def _publish_in_process(data: Path, out: Path, hash_seed: str) -> None:
    """`actas publish` in its own interpreter, with its own string-hash seed (set orders differ between them)."""
    command = [sys.executable, "-m", "actas", "publish", str(data), "--out", str(out)]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> TwoBuilds:
    """A simulated election, published twice."""
    base = tmp_path_factory.mktemp("builds")
    simulate(base / "data", mesas=MESAS, seed=SEED)
    _publish_in_process(base / "data", base / "first", "1")
    _publish_in_process(base / "data", base / "second", "2")
    return TwoBuilds(base / "data", base / "first", base / "second")


def test_two_publications_are_byte_identical(builds: TwoBuilds) -> None:
    """Two publications of the same data directory hold the same files with the same bytes, MANIFEST included."""
    first, second = tree(builds.first), tree(builds.second)
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name].read_bytes() != second[name].read_bytes()]
    assert differ == []
    assert (builds.first / "MANIFEST").read_bytes() == (builds.second / "MANIFEST").read_bytes()
    listed = parse_manifest((builds.first / "MANIFEST").read_bytes())
    assert set(listed) == set(first) - MANIFESTS  # nothing left over (no temporary file), nothing unlisted


def test_every_page_is_well_formed(builds: TwoBuilds) -> None:
    """Each page closes its tags in order, names its language as its directory does, has a title, one h1, main#main."""
    problems: dict[str, list[str]] = {}
    pages = pages_of(builds.first)
    assert len(pages) > len(LANGS) * MESAS
    for relative in pages:
        page = shape(builds.first, relative)
        found = list(page.problems)
        top = relative.split("/", 1)[0]
        if top in LANGS and page.lang != top:
            found.append(f"lang={page.lang!r} in {top}/")
        if top not in LANGS and page.lang not in LANGS:
            found.append(f"lang={page.lang!r}")
        if not page.title.strip():
            found.append("no <title>")
        if page.h1 != 1:
            found.append(f"{page.h1} <h1>")
        if page.mains != ["main"]:
            found.append(f'<main> ids {page.mains}, not one <main id="main">')
        if found:
            problems[relative] = found
    assert problems == {}


def _sample(builds: TwoBuilds) -> list[str]:
    """The root index and, per language: national, search, data, verify, one area per level, a few mesas."""
    definition = json.loads((builds.data / "election.json").read_bytes())
    per_level: dict[int, str] = {}
    for path, area in areas_of(definition):
        per_level.setdefault(len(path), area["code"])
    mesas = [m["id"] for m in definition["mesas"]]
    sample = ["index.html"]
    for lang in LANGS:
        sample += [f"{lang}/{name}.html" for name in ("index", "search", "data", "verify")]
        sample += [f"{lang}/area/{code}.html" for _, code in sorted(per_level.items())]
        sample += [f"{lang}/mesa/{mesas[i]}.html" for i in (0, len(mesas) // 2, len(mesas) - 1)]
    return sample


def test_relative_links_resolve_to_files(builds: TwoBuilds) -> None:
    """Every relative href, src and action on a sample of pages names a file of the site."""
    sample = _sample(builds)
    assert len(sample) == 1 + len(LANGS) * (4 + 4 + 3)  # four levels: estado … centro
    broken = {page: links for page in sample if (links := broken_links(builds.first, page))}
    assert broken == {}


def test_no_request_leaves_the_site(builds: TwoBuilds) -> None:
    """No HTML, CSS or JavaScript file names an absolute http(s) or protocol-relative URL (no third-party request)."""
    offsite: dict[str, list[str]] = {}
    for name, path in tree(builds.first).items():
        if not name.endswith((".html", ".css", ".js")):
            continue
        text = path.read_text(encoding="utf-8")
        urls = [u for u in re.findall(r"https?://[^\s\"'<>()`]+", text, re.I) if u not in NAMESPACES]
        urls += re.findall(r"(?:href|src|action)\s*=\s*[\"']?//[^\s\"'>]*", text, re.I)
        urls += re.findall(r"url\(\s*[\"']?//[^)]*\)", text, re.I)
        urls += re.findall(r"@import\s+[\"']//[^\"']*", text, re.I)
        urls += re.findall(r"[\"'`]//[A-Za-z0-9][^\"'`\s]*[\"'`]", text) if name.endswith(".js") else []
        if urls:
            offsite[name] = urls
    assert offsite == {}


def test_pages_fit_the_transfer_budget(builds: TwoBuilds) -> None:
    """The national page with its stylesheet and scripts is ≤ 150 KB gzip; no HTML page is over 300 KB gzip."""
    for lang in LANGS:
        relative = f"{lang}/index.html"
        loads = shape(builds.first, relative).loads
        assert any(x.endswith(".css") for x in loads), loads
        assert any(x.endswith(".js") for x in loads), loads
        total = gzip_size(builds.first / relative) + sum(gzip_size(builds.first / resolve(relative, x)) for x in loads)
        assert total <= NATIONAL_BUDGET, (relative, total)
    largest = max(pages_of(builds.first), key=lambda name: gzip_size(builds.first / name))
    assert gzip_size(builds.first / largest) <= PAGE_BUDGET, largest


# -- a rebuild after one new acta ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """A file's SHA-256 and where it sits on disk (a rewrite changes the mtime even for the same bytes)."""

    sha256: str
    mtime_ns: int
    inode: int


def snapshot(root: Path) -> dict[str, FileState]:
    """The state of every file under a directory."""
    out = {}
    for name, path in tree(root).items():
        stat = path.stat()
        out[name] = FileState(hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_ino)
    return out


@dataclass(frozen=True)
class Rebuild:
    """A site published with all actas but one, then again into the same directory once that one is logged."""

    data: Path
    site: Path
    mesa: str
    areas: list[str]  # the codes of the mesa's area and its ancestors
    contests: list[str]
    before: dict[str, FileState]
    after: dict[str, FileState]
    sizes: tuple[int, int]
    summary: PublishSummary
    changed: set[str]  # files that are new or whose bytes differ after the rebuild


@pytest.fixture(scope="module")
def rebuild(tmp_path_factory: pytest.TempPathFactory) -> Rebuild:
    """All actas but one logged (with `actas log append`) and published; then the last one logged and republished."""
    base = tmp_path_factory.mktemp("rebuild")
    data, site, actas = base / "data", base / "site", base / "actas.ndjson"
    simulate(data, mesas=MESAS, seed=SEED, actas_out=actas)
    lines = [line for line in actas.read_bytes().split(b"\n") if line]
    held = lines.pop(HELD_BACK)
    (base / "most.ndjson").write_bytes(b"".join(line + b"\n" for line in lines))
    appended = CliRunner().invoke(cli, ["log", "append", str(data), str(base / "most.ndjson")])
    assert appended.exit_code == 0, appended.output
    first = publish_bundle(DataDir(data), site)
    before = snapshot(site)
    counts, refused = append_entries(DataDir(data), [held])
    assert (counts["appended"], refused) == (1, [])
    second = publish_bundle(DataDir(data), site)
    assert second.size == first.size + 1
    after = snapshot(site)
    definition = json.loads((data / "election.json").read_bytes())
    mesa = json.loads(held)["mesa"]
    area = next(m["area"] for m in definition["mesas"] if m["id"] == mesa)
    return Rebuild(
        data=data,
        site=site,
        mesa=mesa,
        areas=next(path for path, a in areas_of(definition) if a["code"] == area),
        contests=[c["id"] for c in definition["contests"]],
        before=before,
        after=after,
        sizes=(first.size, second.size),
        summary=second,
        changed={name for name, state in after.items() if name not in before or before[name].sha256 != state.sha256},
    )


def _tiles(size: int) -> set[str]:
    return {"log/" + tile_path(coord) for coord in tiles_for_size(size)}


def test_rebuild_rewrites_only_what_the_new_acta_changes(rebuild: Rebuild) -> None:
    """Changed: the mesa's pages, its areas' and the national pages and JSON, open data, results, log, MANIFEST."""
    old, new = rebuild.sizes
    expected = set(MANIFESTS) | {"log/checkpoint"} | (_tiles(new) - _tiles(old))
    for lang in LANGS:
        expected |= {f"{lang}/mesa/{rebuild.mesa}.html", f"{lang}/index.html"}
        expected |= {f"{lang}/area/{code}.html" for code in rebuild.areas}
    expected |= {f"data/areas/{code}.json" for code in [*rebuild.areas, "national"]}
    expected |= {f"data/actas-{c}.{ext}" for c in rebuild.contests for ext in ("csv", "parquet")}
    expected |= {name for name in rebuild.after if name.startswith("results/") and name.endswith(".json")}
    unexpected, missing = sorted(rebuild.changed - expected), sorted(expected - rebuild.changed)
    assert (unexpected, missing) == ([], []), f"{len(unexpected)} unexpected: {unexpected[:12]}…; missing: {missing}"


def test_rebuild_leaves_unchanged_files_untouched(rebuild: Rebuild) -> None:
    """A file whose bytes did not change is not rewritten: same inode, same modification time."""
    same = [name for name, state in rebuild.after.items() if name in rebuild.before and name not in rebuild.changed]
    assert len(same) > len(rebuild.after) // 2
    touched = [name for name in same if rebuild.before[name] != rebuild.after[name]]
    assert touched == []


def test_rebuild_summary_counts_what_it_wrote(rebuild: Rebuild) -> None:
    """PublishSummary.written is the number of changed files (like .files, MANIFEST and its note not counted)."""
    assert rebuild.summary.written == len(rebuild.changed - MANIFESTS)
    assert rebuild.summary.files == len(rebuild.after) - len(MANIFESTS)
    assert rebuild.summary.size == rebuild.sizes[1]


def test_rebuild_removes_the_earlier_partial_tiles(rebuild: Rebuild) -> None:
    """The partial tiles of the earlier tree size are gone; every tile of the new size is there."""
    old, new = rebuild.sizes
    gone = _tiles(old) - _tiles(new)
    assert gone, "the scenario must replace a partial tile"
    assert all(".p/" in name for name in gone)
    assert set(rebuild.before) - set(rebuild.after) == gone
    assert {name for name in rebuild.after if name.startswith("log/tile/")} == _tiles(new)


def test_rebuilt_pages_link_only_to_files_that_exist(rebuild: Rebuild) -> None:
    """No page of the rebuilt site links to a removed file (the entry bundle a mesa page points to, above all)."""
    broken = {page: links for page in pages_of(rebuild.site) if (links := broken_links(rebuild.site, page))}
    assert broken == {}


def test_rebuilt_site_passes_mirror_check(rebuild: Rebuild) -> None:
    """`actas mirror-check SITE --key VKEY` finds nothing missing, altered or extra, and the log verifies."""
    key = (rebuild.data / "keys" / "authority.vkey").read_text(encoding="utf-8").strip()
    result = CliRunner().invoke(cli, ["mirror-check", str(rebuild.site), "--key", key, "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "MIRROR OK" in result.output
