"""search.js in headless Chromium against shards written by build_search_index, on a static server."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from actas.publish import search_index
from actas.publish.search_index import SearchItem, build_search_index, tokens
from tests.site.conftest import StaticServer, Watched
from tests.site.test_search_index import LEVELS, Site, lookup, synthetic_items

SEARCH_JS = Path(__file__).resolve().parents[2] / "src" / "actas" / "publish" / "assets" / "search.js"
MESSAGES = {
    "results": "{n} resultados",
    "more": "Escriba más…",
    "none": "Sin resultados",
    "kinds": {
        "mesa": "Mesa",
        "estado": "Estado",
        "municipio": "Municipio",
        "parroquia": "Parroquia",
        "centro": "Centro",
    },
}
PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Buscar</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; img-src 'self' data:">
<link rel="icon" href="data:,">
<script defer src="{root}assets/search.js"></script></head>
<body>
<form class="search" role="search" action="search.html" method="get" data-search
      data-base="{base}" data-index="{root}search/">
  <label for="q">Buscar</label><input id="q" name="q" type="search" autocomplete="off">
  <button type="submit">Buscar</button>
</form>
<div class="search-results" aria-live="polite"></div>
<script type="application/json" id="search-messages">{messages}</script>
</body></html>
"""
RESULT = """() => {
  const box = document.querySelector(".search-results");
  return {
    state: box.dataset.state,
    note: box.querySelector(".search-count")?.textContent,
    codes: Array.from(box.querySelectorAll(".search-code"), (e) => e.textContent),
    kinds: Array.from(box.querySelectorAll(".search-kind"), (e) => e.textContent),
    hrefs: Array.from(box.querySelectorAll("a"), (e) => e.href),
  };
}"""
CLEAR = """() => {
  const box = document.querySelector(".search-results");
  box.replaceChildren();
  delete box.dataset.state;
}"""


@pytest.fixture(scope="module")
def items() -> list[SearchItem]:
    return synthetic_items(120)


@pytest.fixture(scope="module")
def files(items: list[SearchItem]) -> dict[str, bytes]:
    return build_search_index(items, levels=LEVELS)


def _page(root: str, base: str) -> str:
    return PAGE.format(root=root, base=base, messages=json.dumps(MESSAGES, ensure_ascii=False))


def write_site(tmp_path: Path, files: dict[str, bytes]) -> None:
    """A language directory es/ with a search page, an area page one level down, and the search files."""
    (tmp_path / "assets").mkdir()
    shutil.copy(SEARCH_JS, tmp_path / "assets" / "search.js")
    (tmp_path / "search").mkdir()
    for name, data in files.items():
        (tmp_path / "search" / name).write_bytes(data)
    (tmp_path / "es" / "area").mkdir(parents=True)
    (tmp_path / "es" / "mesa").mkdir()
    (tmp_path / "es" / "search.html").write_text(_page("../", "./"), encoding="utf-8")
    (tmp_path / "es" / "area" / "0101.html").write_text(_page("../../", "../"), encoding="utf-8")
    mesa = "<!doctype html><html lang='es'><head><link rel='icon' href='data:,'><title>Mesa</title></head></html>"
    (tmp_path / "es" / "mesa" / "010101001.01.html").write_text(mesa, encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, files: dict[str, bytes], static_server: Callable[[Path], StaticServer]) -> StaticServer:
    write_site(tmp_path, files)
    return static_server(tmp_path)


@contextlib.contextmanager
def opened(new_page: Callable[..., Watched], site: StaticServer) -> Iterator[Watched]:
    """The search page; when done, no console error and no request for a file that is not there."""
    page = new_page()
    page.page.goto(site.url + "es/search.html")
    yield page
    page.assert_clean()
    missing = [path for path in site.requested if not (site.root / urlsplit(path).path.lstrip("/")).is_file()]
    assert missing == []  # no 404: the root file names only shards that exist


@pytest.fixture
def watched(new_page: Callable[..., Watched], site: StaticServer) -> Iterator[Watched]:
    with opened(new_page, site) as page:
        yield page


def search(watched: Watched, text: str, *, submit: bool = True) -> dict[str, Any]:
    """Type a query (and press Enter, or let the debounce run it) and read what the page lists."""
    page = watched.page
    page.evaluate(CLEAR)
    page.fill("#q", text)
    if submit:
        page.press("#q", "Enter")
    page.wait_for_selector(".search-results[data-state]:not([aria-busy])")
    result: dict[str, Any] = page.evaluate(RESULT)
    return result


def shard_requests(site: StaticServer) -> list[str]:
    return [path for path in site.requested if path.startswith("/search/") and not path.endswith("index.json")]


def test_finds_a_mesa_by_its_full_code(watched: Watched, site: StaticServer) -> None:
    result = search(watched, "010101001.01", submit=False)
    assert result["state"] == "results"
    assert result["codes"][0] == "010101001.01"
    assert result["kinds"][0] == "Mesa"
    assert result["hrefs"][0] == site.url + "es/mesa/010101001.01.html"
    assert watched.page.url == site.url + "es/search.html"  # Enter did not submit the form away
    assert len(shard_requests(site)) == 1


def test_finds_mesas_by_a_code_prefix_ranked_as_python_does(
    watched: Watched, site: StaticServer, files: dict[str, bytes]
) -> None:
    expected = lookup(Site(files), "01010")
    result = search(watched, "01010")
    assert result["state"] == "results"
    assert result["note"] == f"{len(expected.items)} resultados"
    assert result["codes"] == [code for _, code in expected.items[:50]]
    assert len(result["codes"]) == 50 < len(expected.items)
    assert all(code.startswith("01010") for code in result["codes"])
    assert result["codes"] == sorted(result["codes"])  # a code: mesas by code
    assert set(result["kinds"]) == {"Mesa"}


def test_finds_a_centre_by_partial_name_without_accents(watched: Watched) -> None:
    result = search(watched, "liceo simon rod")
    assert result["state"] == "results"
    assert result["codes"][0] == "010101001"
    assert result["kinds"][0] == "Centro"
    assert "010101001.01" in result["codes"]


def test_garbage_says_no_match(watched: Watched) -> None:
    for garbage in ("zzqxv", "жжж", "liceo zzqxv"):
        result = search(watched, garbage)
        assert result == {"state": "none", "note": "Sin resultados", "codes": [], "kinds": [], "hrefs": []}


@pytest.mark.parametrize("shard_limit", [search_index.SHARD_LIMIT, 2500])
def test_rankings_match_the_python_mirror(
    new_page: Callable[..., Watched],
    static_server: Callable[[Path], StaticServer],
    tmp_path: Path,
    items: list[SearchItem],
    shard_limit: int,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search_index, "SHARD_LIMIT", shard_limit)  # small: deep splits, pages, "type more"
        files = build_search_index(items, levels=LEVELS)
    write_site(tmp_path, files)
    server = static_server(tmp_path)
    mirror = Site(files)
    queries = ["bolivar", "san", "010101", "0101", "u.e. jose", "Escuela Básica", "PARANÁ", "liceo 0101", "e", "01"]
    queries += [item.name for item in items[::37]]
    states = set()
    with opened(new_page, server) as watched:
        for query in queries:
            expected = lookup(mirror, query)
            result = search(watched, query)
            assert result["state"] == expected.state, query
            assert result["codes"] == [code for _, code in expected.items[:50]], query
            states.add(expected.state)
    assert ("more" in states) == (shard_limit < 3000)
    assert {"results", "none"} <= states


def test_query_in_the_url_runs_on_load_and_links_resolve(new_page: Callable[..., Watched], site: StaticServer) -> None:
    watched = new_page()
    page = watched.page
    page.goto(site.url + "es/area/0101.html?q=010101001.01")
    page.wait_for_selector(".search-results[data-state='results']")
    assert page.input_value("#q") == "010101001.01"
    page.click(".search-results a >> nth=0")
    page.wait_for_url(site.url + "es/mesa/010101001.01.html")
    watched.assert_clean()


def test_keyboard_moves_between_input_and_results(watched: Watched) -> None:
    page = watched.page
    search(watched, "0101010")
    page.focus("#q")
    page.keyboard.press("ArrowDown")
    first = page.evaluate("() => document.activeElement.textContent")
    page.keyboard.press("ArrowDown")
    second = page.evaluate("() => document.activeElement.textContent")
    assert first != second
    assert "0101010" in first
    assert "0101010" in second
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("() => document.activeElement.id") == "q"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    assert "0101010" in page.evaluate("() => document.activeElement.textContent")


def _samples() -> list[str]:
    """Every assigned BMP letter, digit, mark and punctuation in runs, and random mixes of them."""
    chars = [
        chr(code)
        for code in range(0x20, 0x10000)
        if unicodedata.category(chr(code))[0] in "LNMPSZ" and not 0xD800 <= code < 0xE000
    ]
    runs = ["".join(chars[start : start + 40]) for start in range(0, len(chars), 40)]
    rng = random.Random(5)
    mixes = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    return runs + mixes + ["Straße ΣΟΦΟΣ İstanbul ǰ ﬁn ½ Ⅻ ᏸ ꭰ ᲀ", "São João 23-A U.E. «Simón»"]


def test_tokens_in_the_browser_equal_python(watched: Watched) -> None:
    samples = _samples()
    browser_tokens = watched.page.evaluate("(texts) => texts.map((t) => actasSearch.tokens(t))", samples)
    differ = [
        (text, ours, theirs)
        for text, ours, theirs in zip(samples, map(tokens, samples), browser_tokens, strict=True)
        if ours != theirs
    ]
    assert differ == []
