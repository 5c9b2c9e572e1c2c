"""The site's fixed pages: the language chooser, search, open data and how to verify."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from markupsafe import escape

from actas.publish.locales import LANGUAGES, locale
from actas.publish.open_data import COLUMN_TEXTS, csv_columns
from actas.publish.site_data import SiteData

CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'"


def language_chooser(title: str, default: str) -> bytes:
    """The root index.html: links to each language and a refresh to the default one (no JavaScript needed)."""
    links = "\n".join(
        f'<li><a href="{code}/index.html" hreflang="{code}" lang="{code}">{escape(locale(code).lang_name)}</a></li>'
        for code in LANGUAGES
    )
    return (
        "<!doctype html>\n"
        f'<html lang="{default}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n<link rel="icon" href="data:,">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<meta http-equiv="refresh" content="0; url={default}/index.html">\n'
        f'<title>{escape(title)}</title>\n</head>\n<body>\n<main id="main">\n<h1>{escape(title)}</h1>\n'
        f'<nav aria-label="{escape(locale(default).choose_language)}"><ul>\n{links}\n</ul></nav>\n'
        "</main>\n</body>\n</html>\n"
    ).encode()


def bodies(site: SiteData, lang: str, assets: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """(path, heading, trusted HTML body) of each fixed page of a language."""
    t = locale(lang)
    yield "search.html", t.nav_search, f"<noscript><p>{escape(t.search_nojs)}</p></noscript>\n"
    yield "data.html", t.data_title, _data_body(site, lang)
    yield "verify.html", t.verify_title, _verify_body(site, lang)


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _data_body(site: SiteData, lang: str) -> str:
    t = locale(lang)
    election = site.election
    items = []
    for contest in election.contests:
        label = t.text("data_actas", contest=contest.name)
        items.append(
            f"<li>{escape(label)}: {_link(f'../data/actas-{contest.id}.csv', 'CSV')} · "
            f"{_link(f'../data/actas-{contest.id}.parquet', 'Parquet')}</li>"
        )
        for level in ("national", *election.levels):
            name = f"{contest.id}/{level}.json"
            items.append(f"<li>{escape(t.data_results)}: {_link(f'../results/{name}', name)}</li>")
    items += [
        f"<li>{escape(t.data_areas)}: {_link('../data/areas/national.json', 'national.json')}</li>",
        f"<li>{escape(t.data_log)}: {_link('../log/checkpoint', 'log/checkpoint')}, log/tile/…</li>",
        f"<li>{escape(t.data_keys)}: {_link('../keys/authority.vkey', 'keys/authority.vkey')}</li>",
        f"<li>{escape(t.data_election)}: {_link('../election.json', 'election.json')}</li>",
        f"<li>{escape(t.data_manifest)}: {_link('../MANIFEST', 'MANIFEST')} · "
        f"{_link('../MANIFEST.note', 'MANIFEST.note')}</li>",
        f"<li>{escape(t.data_images)}</li>",
    ]
    texts = {key: t.strings["col_" + key] for key in COLUMN_TEXTS}
    tables = []
    for contest in election.contests:  # options and tickets differ by contest, and so do their columns
        rows = "".join(
            f'<tr><th scope="row"><code>{escape(name)}</code></th><td>{escape(meaning)}</td></tr>'
            for name, meaning in csv_columns(contest, election.levels, texts)
        )
        tables.append(
            f"<h3>{escape(contest.name)} (<code>data/actas-{escape(contest.id)}.csv</code>)</h3>\n"
            f'<div class="table-wrap"><table><caption>{escape(t.data_columns)}: {escape(contest.name)}</caption>'
            f'<thead><tr><th scope="col">{escape(t.column)}</th>'
            f'<th scope="col">{escape(t.meaning)}</th></tr></thead><tbody>{rows}</tbody></table></div>\n'
        )
    return (
        f"<p>{escape(t.data_intro)}</p>\n<ul>\n" + "\n".join(items) + "\n</ul>\n"
        f"<h2>{escape(t.data_columns)}</h2>\n" + "".join(tables)
    )


def _verify_body(site: SiteData, lang: str) -> str:
    t = locale(lang)
    key = str(site.results.authority)
    return (
        f"<p>{escape(t.verify_page_intro)}</p>\n"
        f"<p>{escape(t.verify_key)}</p>\n<pre><code>{escape(key)}</code></pre>\n"
        f"<ol>\n<li><p>{escape(t.verify_step_install)}</p><pre><code>python3 -m pip install ./actas</code></pre></li>\n"
        f"<li><p>{escape(t.verify_step_run)}</p>"
        f'<pre><code class="verify-command">actas verify &lt;URL&gt; --key {escape(key)}</code></pre></li>\n'
        f"<li><p>{escape(t.verify_step_mirror)}</p>"
        f'<pre><code class="verify-command">actas mirror-check &lt;URL&gt; --key {escape(key)}</code></pre>'
        "</li>\n</ol>\n"
        f"<p>{escape(t.verify_one)}</p>\n"
    )
