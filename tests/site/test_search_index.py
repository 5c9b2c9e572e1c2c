"""The sharded search index: tokenisation, shard bounds, determinism, and lookup as search.js does it."""

from __future__ import annotations

import functools
import gzip
import json
import random
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.errors import MalformedError
from actas.publish import search_index
from actas.publish.search_index import (
    SearchItem,
    build_search_index,
    encode_prefix,
    exact_file,
    leaf_file,
    normalise,
    tokens,
)

LEVELS = ("estado", "municipio", "parroquia", "centro")
FIRST = "Simón Andrés José María Luisa Rómulo Cecilio Teresa Francisco Antonio João Cândido Ezequiel Josefa Ramón"
FIRST += " Inés Tomás Lucía Germán Begoña"
LAST = "Bolívar Rodríguez Bello Martí Gallegos Acosta Cáceres Parra Miranda Sucre Pessoa Portinari Zamora Muñoz Peña"
LAST += " Ibáñez Núñez Araújo Conceição Gonçalves"
SCHOOLS = ("Liceo", "Unidad Educativa", "Escuela Básica", "Colegio", "U.E.", "Escola Estadual", "Grupo Escolar")
PLACES = ("Bolívar", "Zulia", "Mérida", "Táchira", "Anzoátegui", "Amapá", "Paraná", "São Paulo", "Maranhão", "Ceará")
SYLLABLES = ("ca", "ra", "bo", "ño", "lu", "mé", "ta", "ri", "go", "zú", "pa", "ne", "quí", "ve", "sa", "lo")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def synthetic_items(centres: int, seed: int = 0) -> list[SearchItem]:
    """A Venezuelan-shaped area tree (codes 2+2+2+3 digits, mesas ``<centre>.<nn>``) with Spanish and
    Portuguese names; centre 0 is "Liceo Simón Rodríguez" in state "Bolívar"; 1–3 mesas a centre."""
    rng = random.Random(seed)
    people = [f"{first} {last}" for first in FIRST.split() for last in LAST.split()] + [
        f"{_word(rng)} {_word(rng)}" for _ in range(600)
    ]
    items: list[SearchItem] = []
    per_state = 10 * 8 * 8
    states = max(1, -(-centres // per_state))
    width = max(2, len(str(states)))
    made = 0
    for s in range(states):
        state_code = f"{s + 1:0{width}d}"
        state_name = PLACES[s] if s < len(PLACES) else f"{_word(rng)} {_word(rng)}"
        items.append(SearchItem("estado", state_code, state_name, "", f"area/{state_code}.html"))
        for m in range(10):
            muni_code = f"{state_code}{m + 1:02d}"
            muni_name = rng.choice(people) if m % 2 else f"{_word(rng)}"
            items.append(SearchItem("municipio", muni_code, muni_name, state_name, f"area/{muni_code}.html"))
            for p in range(8):
                par_code = f"{muni_code}{p + 1:02d}"
                par_name = f"{rng.choice(('San', 'Santa', 'Nossa Senhora de'))} {_word(rng)}"
                par_context = f"{state_name} › {muni_name}"
                items.append(SearchItem("parroquia", par_code, par_name, par_context, f"area/{par_code}.html"))
                context = f"{par_context} › {par_name}"
                for c in range(8):
                    if made == centres:
                        return items
                    code = f"{par_code}{c + 1:03d}"
                    name = "Liceo Simón Rodríguez" if made == 0 else f"{rng.choice(SCHOOLS)} {rng.choice(people)}"
                    items.append(SearchItem("centro", code, name, context, f"area/{code}.html"))
                    for k in range(rng.randint(1, 3)):
                        mesa = f"{code}.{k + 1:02d}"
                        items.append(SearchItem("mesa", mesa, name, context, f"mesa/{mesa}.html"))
                    made += 1
    return items


# --- lookup as search.js does it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    token: str
    none: bool
    files: tuple[str, ...]
    over: bool
    page: str | None


@dataclass(frozen=True)
class Found:
    state: str  # "empty", "none", "results" or "more"
    items: list[tuple[str, str]]  # (kind, code), ranked; all of them (the page shows the first 50)
    fetched: tuple[str, ...]


def plan(index: dict[str, Any], token: str) -> Plan:
    """The shards a query token needs (search.js ``plan``)."""
    nodes, prefix = index["nodes"], ""
    for char in token:
        if char not in nodes[prefix]:
            return Plan(token, True, (), False, None)
        prefix += char
        if prefix not in nodes:
            return Plan(token, False, (leaf_file(prefix),), False, None)
    files: list[str] = []
    over = False
    for node, children in nodes.items():
        if node.startswith(token):
            over = over or node in index["partial"]
            files.extend(exact_file(node, page) for page in range(index["exact"].get(node, 0)))
            files.extend(leaf_file(node + c) for c in children if node + c not in nodes)
    page = exact_file(token, 0) if token in index["exact"] else None
    return Plan(token, False, tuple(files), over or len(files) > index["cap"], page)


def _rank(plan: Plan) -> tuple[bool, int, int]:
    return (plan.over, len(plan.files), -len(plan.token))


@functools.cache
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(tokens(text))


def _matches(index: dict[str, Any], shards: list[dict[str, Any]], query: list[str]) -> list[tuple[str, str]]:
    whole = " ".join(query)
    areas = len([kind for kind in index["kinds"] if kind != "mesa"])
    found: dict[tuple[str, str], tuple[Any, ...]] = {}  # (kind, code) → sort key
    for shard in shards:
        for name, _, members in shard["g"]:
            name_tokens = _tokens(name)
            for member in members:
                kind, code = index["kinds"][member[0]], member[1]
                code_tokens = _tokens(code)
                own = name_tokens + code_tokens
                if (kind, code) in found or not all(any(t.startswith(q) for t in own) for q in query):
                    continue
                by_code = any(t.startswith(q) for q in query for t in code_tokens)
                level = (0 if by_code else areas) if kind == "mesa" else member[0] + by_code
                exact = " ".join(code_tokens) == whole
                found[kind, code] = (
                    (not exact, False, level, code, kind)
                    if by_code
                    else (not exact, True, level, normalise(name), name, code, kind)
                )
    return sorted(found, key=lambda key: found[key])


class Site:
    """The search files with each one parsed once, as the browser's cache would."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.parsed: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """A file's JSON; a KeyError is a shard search.js would have fetched that is not there (a 404)."""
        if name not in self.parsed:
            self.parsed[name] = json.loads(self.files[name])
        return self.parsed[name]


def lookup(site: Site | dict[str, bytes], text: str) -> Found:
    """What search.js finds for ``text``."""
    site = site if isinstance(site, Site) else Site(site)
    index = site.get("index.json")
    query = tokens(text)
    if not query:
        return Found("empty", [], ())
    plans = []
    for token in query:
        one = plan(index, token)
        if one.none:
            return Found("none", [], ())
        plans.append(one)
    best = min(plans, key=_rank)
    if best.over:
        with_page = [one for one in plans if one.page is not None]
        if not with_page:
            return Found("more", [], ())
        chosen = min(with_page, key=_rank)
        assert chosen.page is not None
        return Found("more", _matches(index, [site.get(chosen.page)], query), (chosen.page,))
    shards = [site.get(name) for name in best.files]
    found = _matches(index, shards, query)
    return Found("results" if found else "none", found, best.files)


# --- tokenisation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bolívar", ["bolivar"]),
        ("BOLÍVAR", ["bolivar"]),
        ("São João", ["sao", "joao"]),
        ("ÑANDÚ Straße", ["nandu", "strasse"]),
        ("U.E. «Simón Rodríguez»", ["u", "e", "simon", "rodriguez"]),
        ("Escuela 23-A", ["escuela", "23-a"]),
        ("010203004.01", ["010203004.01"]),
        ("  Nº 5, Conceição—Gonçalves ", ["no", "5", "conceicao", "goncalves"]),
        ("Москва", ["москва"]),
        ("…", []),
    ],
)
def test_tokens_fold_accents_case_and_punctuation(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


@given(st.text())
def test_normalise_is_idempotent_and_tokens_are_clean(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert tokens(once) == tokens(text)
    for token in tokens(text):
        assert token == normalise(token)
        assert token.strip("._-") == token
        assert all(c in "._-" or unicodedata.category(c)[0] in "LN" for c in token)


@given(st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "M", "P"]), min_size=1))
def test_a_typed_prefix_of_a_token_is_a_prefix_token(word: str) -> None:
    # What a reader types is a prefix of a word; it must tokenise to one prefix of the same token. (A word
    # with joiners is whole only once a digit is typed: "ab-c" is "ab", "c" until "ab-c1".)
    for token in tokens(word):
        for end in range(1, len(token) + 1):
            typed = token[:end]
            if not any(c in "._-" for c in typed) or any(unicodedata.category(c)[0] == "N" for c in typed):
                assert tokens(typed) == [typed.strip("._-")]
                assert token.startswith(tokens(typed)[0])


@given(st.text(), st.text())
def test_file_names_are_ascii_and_injective(a: str, b: str) -> None:
    assert re.fullmatch(r"[a-z0-9_]*", encode_prefix(a))
    assert (encode_prefix(a) == encode_prefix(b)) == (a == b)
    assert leaf_file(a) != exact_file(b, 0)


# --- the index -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items() -> list[SearchItem]:
    return synthetic_items(1200)


@pytest.fixture(scope="module")
def files(items: list[SearchItem]) -> dict[str, bytes]:
    return build_search_index(items, levels=LEVELS)


def named_by_index(files: dict[str, bytes]) -> set[str]:
    """Every shard the root file says exists."""
    index = json.loads(files["index.json"])
    names = {"index.json"}
    for node, children in index["nodes"].items():
        names.update(exact_file(node, page) for page in range(index["exact"].get(node, 0)))
        names.update(leaf_file(node + c) for c in children if node + c not in index["nodes"])
    return names


def test_every_file_is_named_by_the_index_and_safe(files: dict[str, bytes]) -> None:
    assert set(files) == named_by_index(files)
    assert len(files) > 20
    for name in files:
        assert re.fullmatch(r"index\.json|t-[a-z0-9_]+\.json|x-[a-z0-9_]+-[0-9]+\.json", name), name


def test_shards_are_bounded_and_root_is_small(files: dict[str, bytes]) -> None:
    sizes = [len(data) for name, data in files.items() if name != "index.json"]
    assert max(sizes) <= search_index.SHARD_LIMIT
    assert len(files["index.json"]) < 8_000


def test_output_is_deterministic(items: list[SearchItem], files: dict[str, bytes]) -> None:
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert build_search_index(shuffled, levels=LEVELS) == files
    for data in files.values():
        value = json.loads(data)
        assert json.dumps(value, sort_keys=True, separators=(",", ":")).encode() == data


def test_every_item_is_found_by_its_code_first(items: list[SearchItem], files: dict[str, bytes]) -> None:
    site = Site(files)
    for item in items:
        found = lookup(site, item.code)
        assert found.items[0] == (item.kind, item.code), item


def test_every_item_is_found_by_each_name_word(items: list[SearchItem], files: dict[str, bytes]) -> None:
    site = Site(files)
    cache: dict[str, set[tuple[str, str]]] = {}
    for item in items:
        for word in item.name.split():
            if word not in cache:
                found = lookup(site, word)
                assert found.state == "results", word
                cache[word] = set(found.items)
            assert (item.kind, item.code) in cache[word], (word, item)


def test_partial_name_without_accents(files: dict[str, bytes]) -> None:
    found = lookup(files, "liceo simon rod")
    assert found.state == "results"
    assert ("centro", "010101001") in found.items
    assert found.items.index(("centro", "010101001")) < found.items.index(("mesa", "010101001.01"))
    assert len(found.fetched) == 1


def test_ranking(files: dict[str, bytes]) -> None:
    by_code = lookup(files, "0101010").items
    kinds = [kind for kind, _ in by_code]
    assert kinds == sorted(kinds, key=lambda kind: kind != "mesa")  # a code: mesas first
    assert by_code[:2] == sorted(by_code[:2])
    assert lookup(files, "010101").items[0] == ("parroquia", "010101")  # the exact code before the rest
    by_name = lookup(files, "bolivar").items
    assert by_name[0] == ("estado", "01")  # a name: areas from the root down, mesas last
    levels = [(*LEVELS, "mesa").index(kind) for kind, _ in by_name]
    assert levels == sorted(levels)


def test_garbage_finds_nothing_without_fetching(files: dict[str, bytes]) -> None:
    assert lookup(files, "zzqxv").state == "none"
    assert len(lookup(files, "zzqxv").fetched) <= 1
    assert lookup(files, "жжж") == Found("none", [], ())  # no token starts so: the root file says it
    assert lookup(files, "liceo zzqxv").state == "none"
    assert lookup(files, " ¿? ").state == "empty"


def test_non_latin_names_get_hex_file_names() -> None:
    items = [SearchItem("estado", f"{n:02d}", f"Москва {n}", "", f"area/{n:02d}.html") for n in range(3)]
    items.append(SearchItem("estado", "99", "東京都", "", "area/99.html"))
    files = build_search_index(items)
    assert any("_43c_" in name for name in files)
    assert lookup(files, "моск").items == [("estado", "00"), ("estado", "01"), ("estado", "02")]
    assert lookup(files, "東京").items == [("estado", "99")]


def test_urls_follow_a_template_or_are_stored() -> None:
    items = [
        SearchItem("centro", "001", "Liceo A", "", "area/001.html"),
        SearchItem("mesa", "001.1", "Liceo A", "", "x"),
    ]
    files = build_search_index(items)
    index = json.loads(files["index.json"])
    assert index["urls"]["centro"] == ["area/", ".html"]
    assert json.loads(files[lookup(files, "001.1").fetched[0]])["g"][0][2][1] == [1, "001.1", "x"]


def test_bad_items_are_refused() -> None:
    good = SearchItem("centro", "001", "Liceo A", "", "area/001.html")
    with pytest.raises(MalformedError, match="appears twice"):
        build_search_index([good, good])
    with pytest.raises(MalformedError, match="code"):
        build_search_index([replace(good, code="..")])
    with pytest.raises(MalformedError, match="url is empty"):
        build_search_index([replace(good, url="")])


# --- small limits: splitting, pages and partial pages --------------------------------------------------------


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "SHARD_LIMIT", 3000)
    monkeypatch.setattr(search_index, "MAX_FETCH", 3)


@pytest.mark.usefixtures("small_limits")
def test_small_limits_split_deep_and_still_find_everything(items: list[SearchItem]) -> None:
    files = build_search_index(items, levels=LEVELS)
    index = json.loads(files["index.json"])
    assert set(files) == named_by_index(files)
    assert index["partial"]  # words too common for 3 pages keep page 0 only
    assert max(len(node) for node in index["nodes"]) >= 6
    assert max(len(data) for name, data in files.items() if name != "index.json") <= 3000
    site = Site(files)
    more = 0
    for item in items[::7]:
        assert lookup(site, item.code).items[0] == (item.kind, item.code)
        found = lookup(site, f"{item.name} {item.code[:4]}")
        assert len(found.fetched) <= 3
        if found.state == "more":
            more += 1
        else:
            assert (item.kind, item.code) in found.items
    assert more < len(items[::7]) // 10


names = st.text(alphabet="aábcçdeéfgiíñoóõsuúz .-", min_size=1, max_size=24).filter(lambda n: bool(tokens(n)))


@settings(max_examples=40, deadline=None)
@given(st.lists(names, min_size=1, max_size=80))
def test_property_every_item_found_by_code_and_name(names: list[str]) -> None:
    items = [SearchItem("centro", f"{n:03d}", name, "X", f"area/{n:03d}.html") for n, name in enumerate(names)]
    items += [SearchItem("mesa", f"{n:03d}.01", name, "X", f"mesa/{n:03d}.01.html") for n, name in enumerate(names)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search_index, "SHARD_LIMIT", 400)
        files = build_search_index(items)
    assert set(files) == named_by_index(files)
    site = Site(files)
    for item in items:
        assert lookup(site, item.code).items[0] == (item.kind, item.code)
        found = lookup(site, item.name)
        assert found.state == "more" or (item.kind, item.code) in found.items


# --- scale (make test-slow) ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_scale_one_million_mesas() -> None:
    items = synthetic_items(500_000)
    mesas = sum(item.kind == "mesa" for item in items)
    started = time.perf_counter()
    files = build_search_index(items, levels=LEVELS)
    seconds = time.perf_counter() - started
    root = gzip.compress(files["index.json"], mtime=0)
    shards = [len(data) for name, data in files.items() if name != "index.json"]
    site = Site(files)
    centres = [item for item in items if item.kind == "centro"][::1000]
    by_name = [lookup(site, item.name) for item in centres]
    found = sum(("centro", item.code) in result.items for item, result in zip(centres, by_name, strict=True))
    print(
        f"\nsearch index: {len(items):,} items ({mesas:,} mesas) in {seconds:.0f} s; {len(files):,} files, "
        f"{sum(shards) / 1e6:,.0f} MB; index.json {len(files['index.json']):,} B ({len(root):,} B gzip); "
        f"largest shard {max(shards):,} B, mean {sum(shards) // len(shards):,} B; "
        f"{found} of {len(centres)} centres found by their full name, the others 'type more'"
    )
    assert mesas > 900_000
    assert len(root) <= 30_000
    assert max(shards) <= search_index.SHARD_LIMIT
    for item, result in zip(centres, by_name, strict=True):
        assert lookup(site, item.code).items[0] == ("centro", item.code)
        assert result.state == "more" or ("centro", item.code) in result.items
    assert lookup(site, "bolivar").items[0] == ("estado", "001")  # too common: the best of its first page
