"""The results site's HTML pages: one per area at every level, one per mesa, and the fixed pages.

Pages are rendered with Jinja2 (autoescaping) from views built here; numbers are written the language's way
(:mod:`actas.publish.locales`). Every link is relative, so the site works from any host, path or mirror.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup, escape

from actas.core.note import parse_note
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileCoord, tile_path
from actas.publish import charts, treemap
from actas.publish.locales import LANGUAGES, Locale, locale
from actas.publish.site_data import TURNOUT_BINS, LoggedActa, MesaRecord, SiteData

COSIGNATURE_SIZE = 72  # a tlog-cosignature after its key id: 8-byte timestamp and Ed25519 signature
MAX_TABLE_MESAS = 5000  # a last-level area lists its mesas; beyond this the search finds them
MIN_TURNOUT_ACTAS = 20  # a distribution of fewer actas says nothing
_INLINE_IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp")  # browsers show these; PDF, TIFF, HEIC are linked


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actas.publish", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


def script_json(value: object) -> Markup:
    """JSON safe inside a <script type="application/json"> element: no '</script' or '<!--' can change its end."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


@dataclass(frozen=True)
class PageContext:
    """What every page needs: the language, where the site root is, and the hashed asset names."""

    lang: str
    path: str  # the page's path inside its language directory, e.g. "area/01.html"
    assets: Mapping[str, str]  # logical name ("style.css") → hashed path ("assets/style.1a2b3c4d5e.css")

    @property
    def depth(self) -> int:
        """How many directories below the language directory the page is."""
        return self.path.count("/")

    @property
    def lang_root(self) -> str:
        """Relative URL of the language directory."""
        return "../" * self.depth

    @property
    def root(self) -> str:
        """Relative URL of the site root."""
        return "../" * (self.depth + 1)


class PageRenderer:
    """Renders every kind of page of one site in one language."""

    def __init__(self, site: SiteData, lang: str, assets: Mapping[str, str], images: Mapping[str, str]) -> None:
        self.site = site
        self.images = images  # image SHA-256 → its published path (images/<sha256>.<ext>)
        self.t: Locale = locale(lang)
        self.lang = lang
        self.assets = assets
        self.env = _environment()
        self.election = site.election
        self.colours = [charts.option_colours(len(c.options)) for c in self.election.contests]
        self.languages = [(code, locale(code).lang_name) for code in LANGUAGES]
        self._search = script_json(self._search_messages())
        self._templates = {name: self.env.get_template(name) for name in ("area.html", "mesa.html", "page.html")}
        self._ticket_cells = [
            [(escape(k.name), escape(c.options[k.option].name)) for k in c.tickets] for c in self.election.contests
        ]
        self._option_cells = [[escape(o.name) for o in c.options] for c in self.election.contests]
        self.mesas_in_area: dict[int, list[int]] = {}
        for mesa in site.mesas:
            self.mesas_in_area.setdefault(mesa.area, []).append(mesa.index)

    # -- shared ---------------------------------------------------------------------------------------------

    def _search_messages(self) -> dict[str, Any]:
        kinds = {level: level[:1].upper() + level[1:] for level in self.election.levels} | {"mesa": self.t.mesa}
        return {
            "results": self.t.search_results,
            "more": self.t.search_more,
            "none": self.t.search_none,
            "kinds": kinds,
        }

    def _base(self, path: str, title: str, crumbs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        ctx = PageContext(self.lang, path, self.assets)
        return {
            "lang": self.lang,
            "t": self.t,
            "path": path,
            "root": ctx.root,
            "lang_root": ctx.lang_root,
            "assets": self.assets,
            "title": title,
            "election_title": self.election.title,
            "languages": self.languages,
            "crumbs": crumbs,
            "search_messages": self._search,
        }

    def _crumbs(self, area: int | None, lang_root: str, last_link: bool = False) -> list[tuple[str, str]]:
        crumbs = [(self.t.national, f"{lang_root}index.html")]
        if area is not None:
            for index in self.election.area_path(area):
                a = self.election.areas[index]
                crumbs.append((a.name, f"{lang_root}area/{a.code}.html"))
        if not last_link:
            crumbs[-1] = (crumbs[-1][0], "")
        return crumbs

    def _leader(self, contest: int, votes: Sequence[int]) -> tuple[str, str]:
        if not votes or max(votes) == 0:
            return self.t.none_yet, charts.NEUTRAL
        best = max(range(len(votes)), key=lambda i: (votes[i], -i))
        return self.election.contests[contest].options[best].name, self.colours[contest][best]

    # -- area pages -----------------------------------------------------------------------------------------

    def area_page(self, area: int | None) -> tuple[str, bytes]:
        """The page of an area (None: the national page) and its path inside the language directory."""
        election, t = self.election, self.t
        path = "index.html" if area is None else f"area/{election.areas[area].code}.html"
        ctx = PageContext(self.lang, path, self.assets)
        if area is None:
            heading, level_name, code = election.title, "", ""
            children = [i for i, a in enumerate(election.areas) if a.parent < 0]
            last = self.site.last_leaf
        else:
            a = election.areas[area]
            heading, level_name, code = a.name, election.levels[a.level], a.code
            children = list(a.children)
            last = self.site.area_last[area]
        child_level = election.levels[election.areas[children[0]].level] if children else t.mesa
        contests = [self._contest_view(i, area, children, ctx) for i in range(len(election.contests))]
        values = self._base(path, heading, self._crumbs(area, ctx.lang_root))
        values |= {
            "heading": heading,
            "level_name": level_name,
            "area_code": code,
            "as_of": t.text("as_of", n=t.integer(last + 1 if last >= 0 else 0)),
            "contests": contests,
            "child_level": child_level,
            "json_href": f"data/areas/{code or 'national'}.json",
            "checkpoint_line": self._checkpoint_line() if area is None else "",
        }
        return path, self._templates["area.html"].render(values).encode()

    def _checkpoint_line(self) -> str:
        """The national page (which changes with every entry anyway) names the checkpoint and its cosigning."""
        t, results = self.t, self.site.results
        cp = results.checkpoint
        text = t.text("published_checkpoint", size=t.integer(cp.size), root=cp.root_hash.hex()[:16])
        note = parse_note(self.site.checkpoint_note) if self.site.checkpoint_note else None
        times = [
            int.from_bytes(sig.signature[:8], "big")
            for sig in (note.signatures if note else ())
            if sig.name != cp.origin and len(sig.signature) == COSIGNATURE_SIZE
        ]
        if not times:
            return f"{text} {t.not_cosigned}"
        latest = datetime.fromtimestamp(max(times), tz=UTC).strftime("%Y-%m-%d %H:%M")
        return f"{text} {t.text('cosigned', n=t.integer(len(times)), time=latest)}"

    def _contest_view(self, contest: int, area: int | None, children: list[int], ctx: PageContext) -> dict[str, Any]:
        t, election, site = self.t, self.election, self.site
        spec = election.contests[contest]
        totals = site.area_totals(contest, area)
        votes: list[int] = list(totals["votes"])  # type: ignore[call-overload]
        valid = sum(votes)
        actas, mesas = int(totals["actas"]), int(totals["mesas"])  # type: ignore[call-overload]
        cast, counted_registered = int(totals["cast"]), int(totals["registered_counted"])  # type: ignore[call-overload]
        colours = self.colours[contest]
        options = [
            {"name": o.name, "colour": colours[i], "votes": t.integer(votes[i]), "share": t.percent(votes[i], valid)}
            for i, o in enumerate(spec.options)
        ]
        bars = [
            charts.Bar(
                o.name, votes[i] / valid if valid else 0.0, colours[i], f"{options[i]['votes']} · {options[i]['share']}"
            )
            for i, o in enumerate(spec.options)
        ]
        leader, _ = self._leader(contest, votes)
        view: dict[str, Any] = {
            "id": spec.id,
            "name": spec.name,
            "coverage": t.text(
                "actas_received", received=t.integer(actas), expected=t.integer(mesas), pct=t.percent(actas, mesas)
            ),
            "turnout": t.percent(cast, counted_registered),
            "leader": leader,
            "copies": t.integer(site.copies(contest, area)),
            "options": options,
            "null": t.integer(int(totals["null"])),  # type: ignore[call-overload]
            "blank": t.integer(int(totals["blank"])),  # type: ignore[call-overload]
            "cast": t.integer(cast),
            "registered": t.integer(int(totals["registered"])),  # type: ignore[call-overload]
            "bars": charts.bar_chart(bars, title=f"{spec.name}: {t.results_chart}", desc=t.results_chart_desc),
            "treemap": "",
            "turnout_chart": self._turnout_chart(contest, area),
            "history": self._history_chart(contest) if area is None else "",
            "children": [],
            "children_caption": "",
            "mesas": [],
        }
        view["option_rows"] = Markup(
            "".join(
                '<tr><th scope="row"><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true" focusable="false">'
                f'<rect width="10" height="10" fill="{o["colour"]}"/></svg>{escape(o["name"])}</th>'
                f'<td class="num" data-field="votes-{i}">{o["votes"]}</td>'
                f'<td class="num" data-field="share-{i}">{o["share"]}</td></tr>'
                for i, o in enumerate(options)
            )
        )
        view["child_rows"] = view["mesa_rows"] = Markup()
        if children:
            view["children"], tiles = self._children(contest, children, ctx)
            view["child_rows"] = Markup(
                "".join(
                    f'<tr><th scope="row"><a href="{k["href"]}">{escape(k["name"])}</a></th>'
                    f'<td class="num">{k["coverage"]}</td><td class="num">{k["turnout"]}</td>'
                    f"<td>{escape(k['leader'])}</td></tr>"
                    for k in view["children"]
                )
            )
            level = election.levels[election.areas[children[0]].level]
            view["children_caption"] = t.text("children_table", level=level)
            if len(children) > 1:
                view["treemap"] = treemap.treemap_svg(tiles, title=t.treemap, desc=t.treemap_desc)
        elif area is not None:
            view["mesas"] = self._mesa_rows(contest, area, ctx)
            view["mesa_rows"] = Markup(
                "".join(
                    f'<tr><th scope="row"><a href="{m["href"]}">{m["id"]}</a></th><td>{escape(m["status"])}</td>'
                    f'<td class="num">{m["turnout"]}</td><td>{escape(m["copies"])}</td></tr>'
                    for m in view["mesas"]
                )
            )
        return view

    def _children(
        self, contest: int, children: list[int], ctx: PageContext
    ) -> tuple[list[dict[str, str]], list[treemap.Tile]]:
        t, site = self.t, self.site
        rows, tiles = [], []
        for index in children:
            a = self.election.areas[index]
            totals = site.area_totals(contest, index)
            votes = list(totals["votes"])  # type: ignore[call-overload]
            actas, mesas = int(totals["actas"]), int(totals["mesas"])  # type: ignore[call-overload]
            leader, colour = self._leader(contest, votes)
            href = f"{ctx.lang_root}area/{a.code}.html"
            coverage = t.percent(actas, mesas)
            rows.append(
                {
                    "name": a.name,
                    "href": href,
                    "coverage": coverage,
                    "turnout": t.percent(int(totals["cast"]), int(totals["registered_counted"])),  # type: ignore[call-overload]
                    "leader": leader,
                }
            )
            weight = float(int(totals["registered"]))  # type: ignore[call-overload]
            tiles.append(
                treemap.Tile(
                    a.name,
                    weight,
                    colour,
                    actas / mesas if mesas else 0.0,
                    href,
                    f"{a.name}: {leader}; {t.coverage} {coverage}",
                )
            )
        return rows, tiles

    def _mesa_rows(self, contest: int, area: int, ctx: PageContext) -> list[dict[str, str]]:
        t, contest_id = self.t, self.election.contests[contest].id
        rows = []
        for index in self.mesas_in_area.get(area, [])[:MAX_TABLE_MESAS]:
            mesa = self.site.mesas[index]
            actas = mesa.actas.get(contest_id, [])
            counted = next((a for a in actas if a.status == "counted"), None)
            status = self._status(actas)
            turnout = "–"
            if counted is not None:
                acta = counted.entry.acta
                turnout = t.percent(acta.null + acta.blank + sum(acta.options), acta.registered)
            check = mesa.checks.get(contest_id)
            copies = t.text(f"crosscheck_{check.status}") if check is not None else t.integer(0)
            rows.append(
                {
                    "id": mesa.id,
                    "href": f"{ctx.lang_root}mesa/{mesa.id}.html",
                    "status": status,
                    "turnout": turnout,
                    "copies": copies,
                }
            )
        return rows

    def _status(self, actas: list[LoggedActa]) -> str:
        if not actas:
            return self.t.status_missing
        statuses = {a.status for a in actas}
        if "counted" in statuses and len(actas) > 1:
            return self.t.status_conflicted
        return self.t.text(f"status_{actas[0].status}") if "counted" not in statuses else self.t.status_counted

    def _turnout_chart(self, contest: int, area: int | None) -> str:
        t = self.t
        counts = self.site.turnout_bins(contest, area)
        if sum(counts) < MIN_TURNOUT_ACTAS:
            return ""  # a distribution of a handful of actas says nothing
        step = 100 // TURNOUT_BINS
        edges = [f"{k * step}%" for k in range(TURNOUT_BINS + 1)]
        titles = [
            t.text("turnout_bin", low=f"{k * step}%", high=f"{(k + 1) * step}%", n=t.integer(n))
            for k, n in enumerate(counts)
        ]
        svg = charts.histogram(counts, edges, title=t.turnout_chart, desc=t.turnout_chart_desc, bar_titles=titles)
        rows = "".join(
            f'<tr><th scope="row">{k * step}–{(k + 1) * step}%</th><td class="num">{t.integer(n)}</td></tr>'
            for k, n in enumerate(counts)
        )
        head = f'<tr><th scope="col">{escape(t.turnout)}</th><th scope="col" class="num">{escape(t.mesas)}</th></tr>'
        return svg + _as_table(t, t.turnout_chart, head, rows)

    def _history_chart(self, contest: int) -> str:
        t, site = self.t, self.site
        points = site.history
        if len(points) < 2:
            return ""
        spec = site.election.contests[contest]
        expected = sum(site.expected_mesas[i] for i, a in enumerate(site.election.areas) if a.parent < 0)
        series = []
        for k, option in enumerate(spec.options):
            line = []
            for p in points:
                total = sum(p.votes[contest])
                line.append((float(p.size), p.votes[contest][k] / total if total else 0.0))
            series.append(charts.Series(option.name, self.colours[contest][k], line))
        series.append(
            charts.Series(
                t.coverage,
                charts.NEUTRAL,
                [(float(p.size), p.actas[contest] / expected if expected else 0.0) for p in points],
            )
        )
        last = points[-1].size
        x_ticks = [(float(last * k // 4), t.integer(last * k // 4)) for k in range(5)]
        y_ticks = [(k / 4, t.fraction(k / 4, 0)) for k in range(5)]
        svg = charts.line_chart(
            series,
            x_label=t.log_size,
            y_label=t.share,
            title=t.history_chart,
            desc=t.history_chart_desc,
            x_ticks=x_ticks,
            y_ticks=y_ticks,
        )
        head = "".join(f'<th scope="col" class="num">{escape(line.label)}</th>' for line in series)
        head = f'<tr><th scope="col">{escape(t.log_size)}</th>{head}</tr>'
        rows = "".join(
            f'<tr><th scope="row">{t.integer(p.size)}</th>'
            + "".join(f'<td class="num">{t.fraction(line.points[i][1])}</td>' for line in series)
            + "</tr>"
            for i, p in enumerate(points)
        )
        return svg + _as_table(t, t.history_chart, head, rows)

    # -- mesa pages -----------------------------------------------------------------------------------------

    def mesa_page(self, mesa: MesaRecord) -> tuple[str, bytes]:
        """The page of one mesa: each contest's acta, its checks, witness copies and in-browser verification."""
        path = f"mesa/{mesa.id}.html"
        ctx = PageContext(self.lang, path, self.assets)
        crumbs = [*self._crumbs(mesa.area, ctx.lang_root, last_link=True), (f"{self.t.mesa} {mesa.id}", "")]
        values = self._base(path, f"{self.t.mesa} {mesa.id}", crumbs)
        place = " › ".join(self.election.areas[i].name for i in self.election.area_path(mesa.area))
        actas = [self._acta_view(mesa, c, ctx) for c in range(len(self.election.contests))]
        values |= {
            "mesa_id": mesa.id,
            "place": place,
            "registered": self.t.integer(mesa.registered),
            "actas": actas,
            "authority_key": str(self.site.results.authority),
        }
        return path, self._templates["mesa.html"].render(values).encode()

    def _acta_view(self, mesa: MesaRecord, contest: int, ctx: PageContext) -> dict[str, Any]:
        t, spec = self.t, self.election.contests[contest]
        logged = mesa.actas.get(spec.id, [])
        shown = next((a for a in logged if a.status == "counted"), logged[0] if logged else None)
        view: dict[str, Any] = {
            "heading": t.text("acta_for", contest=spec.name),
            "status": self._status(logged),
            "status_class": shown.status if shown else "missing",
            "logged": shown is not None,
            "copies": [],
        }
        check = mesa.checks.get(spec.id)
        if check is not None:
            view["copies"] = [
                {
                    "text": t.text("copy", leaf=t.integer(c.leaf), witness=_key_id(c.witness)),
                    "image": self.images.get(c.image, ""),
                    "inline": self.images.get(c.image, "").endswith(_INLINE_IMAGES),
                }
                for c in check.copies
            ]
            view["crosscheck_status"] = check.status
            view["crosscheck"] = t.text(f"crosscheck_{check.status}")
            view["differences"] = [
                t.text("difference", field=d.field, official=d.official, witness=d.witness) for d in check.differences
            ]
        if shown is None:
            return view
        acta = shown.entry.acta
        cast = acta.null + acta.blank + sum(acta.options)
        view |= {
            # Built here rather than looped in the template: these tables are most of the 90,000 mesa pages.
            "tickets": Markup(
                "".join(
                    f'<tr><th scope="row">{name}</th><td>{option}</td>'
                    f'<td class="num" data-count="tickets">{t.integer(v)}</td></tr>'
                    for (name, option), v in zip(self._ticket_cells[contest], acta.tickets, strict=False)
                )
            ),
            "options": Markup(
                "".join(
                    f'<tr><th scope="row">{name}</th><td class="num" data-count="options">{t.integer(v)}</td></tr>'
                    for name, v in zip(self._option_cells[contest], acta.options, strict=False)
                )
            ),
            "null": t.integer(acta.null),
            "blank": t.integer(acta.blank),
            "cast": t.integer(cast),
            "registered": t.integer(acta.registered),
            "turnout": t.percent(cast, acta.registered),
            "findings": [
                {
                    "severity": f.severity,
                    "severity_label": t.text(f"severity_{f.severity}"),
                    "rule": f.rule,
                    "message": f.message,
                }
                for f in shown.findings
            ],
            "signature": t.text("signature_ok" if shown.signature_ok else "signature_bad", device=shown.device_id),
            "enrollment": t.text("enrolled", leaf=t.integer(shown.enroll_leaf))
            if shown.enroll_leaf is not None
            else t.not_enrolled,
            "conflict": t.text("conflict", leaves=", ".join(t.integer(a.leaf) for a in logged))
            if len(logged) > 1
            else "",
            "leaf_text": t.text("log_entry", leaf=t.integer(shown.leaf)),
            "bundle": _bundle_path(shown.leaf, self.site.results.checkpoint.size),
            "sha256": shown.sha256,
            "verify_data": script_json(
                {
                    "base": ctx.root,
                    "origin": self.election.origin,
                    "authority": str(self.site.results.authority),
                    "leaf": shown.leaf,
                    "mesa": mesa.id,
                    "contest": spec.id,
                    "device": acta.device,
                    "enroll_leaf": shown.enroll_leaf if shown.enroll_leaf is not None else -1,
                }
            ),
        }
        return view

    # -- fixed pages ----------------------------------------------------------------------------------------

    def fixed_page(self, path: str, heading: str, body: str) -> tuple[str, bytes]:
        """A page of prose (search, data, how to verify); ``body`` is trusted HTML built by the caller."""
        values = self._base(path, heading, [(self.t.national, "index.html"), (heading, "")])
        values |= {"heading": heading, "body": Markup(body)}
        return path, self._templates["page.html"].render(values).encode()


def _as_table(t: Locale, caption: str, head: str, rows: str) -> str:
    """A chart's figures as a table, folded away (for screen readers and anyone who wants the numbers)."""
    return (
        f'<details><summary>{escape(t.as_table)}</summary><div class="table-wrap"><table>'
        f"<caption>{escape(caption)}</caption><thead>{head}</thead><tbody>{rows}</tbody></table></div></details>"
    )


def _key_id(key: str) -> str:
    parts = key.split("+")
    return "+".join(parts[:2]) if len(parts) >= 2 else key


def _bundle_path(leaf: int, size: int) -> str:
    """The path of the full entry bundle holding a leaf, or "" while it is in the partial one.

    A partial bundle's path names the tree size, so linking it would change the page at every checkpoint.
    """
    index = leaf // TILE_WIDTH
    return tile_path(TileCoord(ENTRIES, index)) if index < size // TILE_WIDTH else ""
