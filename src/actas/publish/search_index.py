"""The site's search index: static JSON shards keyed by token prefix, so no page downloads the index whole.

Words. ``normalise`` decomposes (NFKD), drops combining marks, case-folds (``str.casefold``) and turns every
character other than a letter, a digit, ``.``, ``_`` or ``-`` into a space, so "Bolívar", "BOLIVAR" and
"bolivar" are one word. ``tokens`` then splits on spaces; a word holding a digit stays whole ("010203004.01",
"23-a"), since that is how codes are typed; other words also split at ``._-`` ("U.E." → "u", "e"). A code
is indexed whole and not by its dotted parts: its centre part is a prefix of it anyway, and a part like
"01" alone would put every mesa in one shard. An item's tokens are those of its name and of its code; a
mesa's name is its centre's name.

Groups. Items with the same name and context (a centre and its mesas, when the mesas carry the centre's
breadcrumb) form one group of at most ``GROUP_MAX`` members; a posting names a group, so a centre's name
words are stored once for all its mesas. Groups are numbered in rank order: best member kind (area levels
from the root, mesas last), then name.

Shards. Every distinct token posts its groups. The prefix tree of tokens is cut adaptively: a prefix whose
tokens post more than ``SHARD_LIMIT`` bytes of groups (counted once per token, an upper bound) is split
into its one-character-longer prefixes; the rest are leaves. The root is always split. A leaf's shard
``t-<prefix>.json`` holds every group with a token starting with the prefix. A split prefix that is itself
a token keeps that token's groups in pages ``x-<prefix>-<n>.json`` of at most ``SHARD_LIMIT`` bytes; when
more than ``MAX_FETCH`` pages would be needed (words like "escuela") only page 0, the best-ranked groups,
is written. A shard is ``{"c": [contexts], "g": [[name, context index, [[kind index, code(, url)], …]], …]}``
with the url left out when the kind's urls follow the template in the root file.

Root. ``index.json`` holds ``nodes`` (every split prefix → its child characters that have tokens, so no
shard that does not exist is ever asked for), ``exact`` (split prefixes that are tokens → page count),
``partial`` (those whose pages stop at page 0), ``kinds`` (in rank order), ``urls`` (kind → [before, after]
the code) and ``cap`` (``MAX_FETCH``). File names keep ``a-z0-9`` and write any other character as
``_<hex code point>_``: plain ASCII, no ``%``, whatever the script.

Lookup (search.js; mirrored by the tests). A query matches an item when each of its tokens is a prefix of
one of the item's tokens. For each query token: under a leaf it needs that leaf's shard; if it is itself a
split prefix it needs its pages and every shard below it; if the tree has no such prefix nothing matches.
The token needing fewest shards is used (ties: the longest); if it needs more than ``cap``, the client shows
the best groups of its page 0, when it has one, and asks the reader to type more. Ranking: the exact code
first; then items whose code a query token starts, mesas then areas by level, each by code; then the others,
areas by level then mesas, each by name. (Mesas go last for a name so "Bolívar" shows the state, not a
thousand mesas of Bolívar schools.)

Scale (the slow test, 1,000,041 mesas and 500,000 centres): about 17,000 files, 158 MB, shards ≤ 64 KB,
``index.json`` 93 KB (23 KB gzip). Limit: a query whose every word is in thousands of centres ("liceo simon
rodriguez" there) gets page 0 of one word and "type more"; an index of word pairs would answer it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actas.errors import MalformedError

FORMAT_VERSION = 1
SHARD_LIMIT = 64 * 1024  # bytes of groups one shard may hold
MAX_FETCH = 4  # shards one query may fetch
GROUP_MAX = 64  # members of one group
MESA = "mesa"
_JOINERS = "._-"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class SearchItem:
    """One thing the site's search can find: a mesa or an area."""

    kind: str  # "mesa" or the level name ("estado", …, "centro")
    code: str  # mesa id or area code
    name: str  # area name; for a mesa: its centre's name
    context: str  # breadcrumb text, e.g. "Zulia › Maracaibo › Bolívar"
    url: str  # relative to the language directory, e.g. "mesa/010203004.01.html"


class _Chars(dict[int, str | None]):
    """A ``str.translate`` table filled on first use: marks dropped, other characters per ``keep``."""

    def __init__(self, keep_others: bool) -> None:
        super().__init__()
        self.keep_others = keep_others

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)[0]
        value = None if category == "M" else char if self.keep_others or char in _JOINERS or category in "LN" else " "
        self[code] = value
        return value


_DROP_MARKS = _Chars(keep_others=True)
_WORD_CHARS = _Chars(keep_others=False)
_INNER_JOINERS = re.compile(r"[._-]+")


def normalise(text: str) -> str:
    """Text without accents, case or punctuation: words of letters, digits and ``._-`` joined by one space."""
    # Marks are dropped before and after folding: folding "İ" or "ǰ" can bring a mark back.
    folded = unicodedata.normalize("NFKD", text).translate(_DROP_MARKS).casefold()
    return " ".join(unicodedata.normalize("NFKD", folded).translate(_WORD_CHARS).split())


def _has_digit(word: str) -> bool:
    return not word.isalpha() and any(unicodedata.category(c)[0] == "N" for c in word)


def tokens(text: str) -> list[str]:
    """The search tokens of a text, in order: words with a digit whole, others also split at ``._-``."""
    out: list[str] = []
    for word in normalise(text).split(" "):
        word = word.strip(_JOINERS)
        if not word:
            continue
        if _has_digit(word):
            out.append(word)
        else:
            out.extend(part for part in _INNER_JOINERS.split(word) if part)
    return out


def encode_prefix(prefix: str) -> str:
    """A token prefix as a file-name part: ``a-z0-9`` kept, any other character as ``_<hex>_``."""
    return "".join(c if c in _SAFE else f"_{ord(c):x}_" for c in prefix)


def leaf_file(prefix: str) -> str:
    """File name (under search/) of the shard of every token starting with ``prefix``."""
    return f"t-{encode_prefix(prefix)}.json"


def exact_file(prefix: str, page: int) -> str:
    """File name (under search/) of page ``page`` of the groups whose token is exactly ``prefix``."""
    return f"x-{encode_prefix(prefix)}-{page}.json"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode("ascii")


def _context_depth(context: str) -> int:
    return context.count("›") + 1 if context.strip() else 0


def _kind_order(items: Sequence[SearchItem], levels: Sequence[str]) -> list[str]:
    """Area kinds from the root down (given ``levels`` first, others by breadcrumb depth), then ``mesa``."""
    depth: dict[str, int] = {}
    for item in items:
        if item.kind != MESA:
            depth[item.kind] = min(depth.get(item.kind, 1 << 30), _context_depth(item.context))
    listed = [kind for kind in levels if kind in depth]
    others = sorted((d, kind) for kind, d in depth.items() if kind not in listed)
    order = listed + [kind for _, kind in others]
    return [*order, MESA] if any(item.kind == MESA for item in items) else order


def _url_template(items: Sequence[SearchItem]) -> tuple[str, str] | None:
    """``(before, after)`` such that every item's url is ``before + code + after``, if there is one."""
    first = items[0]
    starts = [i for i in range(len(first.url)) if first.url.startswith(first.code, i)]
    for start in starts:
        before, after = first.url[:start], first.url[start + len(first.code) :]
        if all(item.url == before + item.code + after for item in items):
            return before, after
    return None


def _check(items: Sequence[SearchItem]) -> None:
    seen: set[tuple[str, str]] = set()
    for n, item in enumerate(items):
        for field in ("kind", "code", "name", "url"):
            if not getattr(item, field):
                raise MalformedError(f"search item {n}: {field} is empty")
        if not tokens(item.code):
            raise MalformedError(f"search item {n}: code {item.code!r} has no letter or digit")
        if (item.kind, item.code) in seen:
            raise MalformedError(f"search item {n}: {item.kind} {item.code!r} appears twice")
        seen.add((item.kind, item.code))


@dataclass(frozen=True)
class _Group:
    name: str
    context: str
    members: tuple[tuple[int, str, str], ...]  # (kind index, code, url or "")
    size: int  # bytes of its record, context included: the upper bound used to cut shards


def _groups(items: Sequence[SearchItem], kinds: list[str], templated: set[str]) -> list[_Group]:
    """Items grouped by (name, context), chunked to ``GROUP_MAX`` members, in rank order."""
    rank = {kind: n for n, kind in enumerate(kinds)}
    by_key: dict[tuple[str, str], list[SearchItem]] = defaultdict(list)
    for item in items:
        by_key[item.name, item.context].append(item)
    groups: list[tuple[tuple[int, str, str, str, str], _Group]] = []
    for (name, context), members in by_key.items():
        members.sort(key=lambda item: (rank[item.kind], item.code))
        for start in range(0, len(members), GROUP_MAX):
            chunk = tuple(
                (rank[m.kind], m.code, "" if m.kind in templated else m.url) for m in members[start : start + GROUP_MAX]
            )
            size = len(_dumps([name, context, [list(m) for m in chunk]])) + 4
            key = (chunk[0][0], normalise(name), name, context, chunk[0][1])
            groups.append((key, _Group(name, context, chunk, size)))
    groups.sort(key=lambda pair: pair[0])
    return [group for _, group in groups]


def _postings(groups: Sequence[_Group]) -> dict[str, list[int]]:
    """Token → numbers of the groups with an item having that token (ascending)."""
    postings: dict[str, list[int]] = defaultdict(list)
    for gid, group in enumerate(groups):
        words = set(tokens(group.name))
        for _, code, _ in group.members:
            words.update(tokens(code))
        for word in words:
            postings[word].append(gid)
    return postings


def _shard(groups: Sequence[_Group], gids: Iterable[int]) -> bytes:
    """One shard file: its groups in rank order and their contexts once each."""
    chosen = [groups[gid] for gid in sorted(set(gids))]
    contexts = sorted({group.context for group in chosen})
    where = {context: n for n, context in enumerate(contexts)}
    records = [
        [group.name, where[group.context], [[k, code, url] if url else [k, code] for k, code, url in group.members]]
        for group in chosen
    ]
    return _dumps({"c": contexts, "g": records})


def _pages(groups: Sequence[_Group], gids: list[int]) -> list[list[int]]:
    """Groups cut into pages of at most ``SHARD_LIMIT`` bytes (a page holds at least one group)."""
    pages: list[list[int]] = [[]]
    used = 0
    for gid in gids:
        if pages[-1] and used + groups[gid].size > SHARD_LIMIT:
            pages.append([])
            used = 0
        pages[-1].append(gid)
        used += groups[gid].size
    return pages


def build_search_index(items: Iterable[SearchItem], *, levels: Sequence[str] = ()) -> dict[str, bytes]:
    """The search files (path under search/ → bytes): ``index.json`` and the shards it names.

    ``levels`` ranks area kinds from the root down; without it kinds rank by how deep their breadcrumbs are.
    """
    listed = sorted(items, key=lambda item: (item.kind, item.code))
    _check(listed)
    kinds = _kind_order(listed, levels)
    by_kind: dict[str, list[SearchItem]] = defaultdict(list)
    for item in listed:
        by_kind[item.kind].append(item)
    urls = {kind: template for kind, members in by_kind.items() if (template := _url_template(members))}
    groups = _groups(listed, kinds, set(urls))
    postings = _postings(groups)
    words = sorted(postings)
    weights = [0]
    for word in words:
        weights.append(weights[-1] + sum(groups[gid].size for gid in postings[word]))

    files: dict[str, bytes] = {}
    nodes: dict[str, str] = {}
    exact: dict[str, int] = {}
    partial: list[str] = []
    # Each entry: a prefix and the range of ``words`` that start with it (contiguous, as words are sorted).
    todo: list[tuple[str, int, int]] = [("", 0, len(words))]
    while todo:
        prefix, lo, hi = todo.pop()
        if prefix and weights[hi] - weights[lo] <= SHARD_LIMIT:
            files[leaf_file(prefix)] = _shard(groups, (gid for word in words[lo:hi] for gid in postings[word]))
            continue
        if lo < hi and words[lo] == prefix:
            pages = _pages(groups, postings[prefix])
            if len(pages) > MAX_FETCH:
                pages = pages[:1]
                partial.append(prefix)
            exact[prefix] = len(pages)
            for n, page in enumerate(pages):
                files[exact_file(prefix, n)] = _shard(groups, page)
            lo += 1
        children = []
        depth = len(prefix)
        while lo < hi:
            char = words[lo][depth]
            end = lo
            while end < hi and words[end][depth] == char:
                end += 1
            children.append(char)
            todo.append((prefix + char, lo, end))
            lo = end
        nodes[prefix] = "".join(children)

    root = {
        "cap": MAX_FETCH,
        "exact": exact,
        "kinds": kinds,
        "nodes": nodes,
        "partial": sorted(partial),
        "urls": {kind: list(template) for kind, template in urls.items()},
        "v": FORMAT_VERSION,
    }
    files["index.json"] = _dumps(root)
    return dict(sorted(files.items()))
