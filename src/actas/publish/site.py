"""Write the results site into a bundle directory: pages in every language, assets, search index, open data.

Layout (beside the bundle's log, keys, results and images)::

    index.html                     chooses a language (works without JavaScript)
    <lang>/index.html              national results          (lang: es, en, pt)
    <lang>/area/<code>.html        every area, every level
    <lang>/mesa/<id>.html          every mesa: its actas, checks, witness copies, in-browser verification
    <lang>/search.html, data.html, verify.html
    assets/<name>.<hash>.<ext>     stylesheet and scripts, named by the SHA-256 of their bytes (immutable)
    search/…                       the sharded search index
    data/actas-<contest>.csv, .parquet, data/areas/<code>.json, data/areas/national.json

Writing is incremental: a file whose bytes equal what the previous MANIFEST lists is not rewritten, so a
rebuild after one new acta touches only the pages that changed (and the files every checkpoint changes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from actas.core import canonical
from actas.core.manifest import MANIFEST, parse_manifest
from actas.errors import MalformedError
from actas.publish import fixed_pages
from actas.publish.locales import DEFAULT_LANGUAGE, LANGUAGES
from actas.publish.open_data import ActaRow, write_actas_files
from actas.publish.pages import PageRenderer
from actas.publish.search_index import SearchItem, build_search_index
from actas.publish.site_data import SiteData
from actas.publish.verify_messages import MESSAGES as VERIFY_MESSAGES

ASSETS = ("style.css", "site.js", "search.js", "verify.js")
Progress = Callable[[str, int, int], None]


@dataclass
class SiteWriter:
    """Writes files under a directory, skipping those whose bytes the previous MANIFEST already lists."""

    out: Path
    previous: dict[str, str]
    hashes: dict[str, str] = field(default_factory=dict)  # path → SHA-256 of every file of this build
    sizes: dict[str, int] = field(default_factory=dict)
    written: int = 0

    @classmethod
    def open(cls, out: Path) -> SiteWriter:
        """A writer for ``out``, reading the previous build's MANIFEST if there is a valid one."""
        previous: dict[str, str] = {}
        with contextlib.suppress(OSError, MalformedError):  # no previous build (or a broken one): write all
            previous = parse_manifest((out / MANIFEST).read_bytes())
        return cls(out, previous)

    def put(self, relative: str, content: bytes) -> None:
        """Write one file (atomically) unless it already holds exactly these bytes."""
        digest = hashlib.sha256(content).hexdigest()
        self.hashes[relative] = digest
        self.sizes[relative] = len(content)
        path = self.out / relative
        if self.previous.get(relative) == digest and _holds(path, content):
            return
        _replace(path, content)
        self.written += 1

    def keep(self, relative: str, digest: str, size: int) -> None:
        """List a file that is already in place with a known hash."""
        self.hashes[relative] = digest
        self.sizes[relative] = size

    def put_file(self, relative: str, produce: Callable[[Path], None]) -> None:
        """Have ``produce`` write a file to a temporary path, then keep it only if it changed."""
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            produce(Path(tmp))
            digest = file_sha256(Path(tmp))
            self.hashes[relative] = digest
            self.sizes[relative] = os.path.getsize(tmp)
            if self.previous.get(relative) == digest and path.exists() and file_sha256(path) == digest:
                return
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            self.written += 1
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _holds(path: Path, content: bytes) -> bool:
    """Whether the file on disk still holds exactly these bytes (it may have been altered since it was listed)."""
    try:
        return path.stat().st_size == len(content) and path.read_bytes() == content
    except OSError:
        return False


def _replace(path: Path, content: bytes) -> None:
    """Write through a temporary name and rename, so a reader never sees half a page.

    Not fsynced: the site is derived and can be rebuilt at will. One publisher writes a directory at a time
    (the caller holds the data directory's lock), so the temporary name need not be unique.
    """
    tmp = path.parent / f".{path.name}.tmp"
    try:
        tmp.write_bytes(content)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def hashed_assets() -> dict[str, tuple[str, bytes]]:
    """Each asset's logical name → (content-hashed path, bytes)."""
    folder = resources.files("actas.publish").joinpath("assets")
    out = {}
    for name in ASSETS:
        data = folder.joinpath(name).read_bytes()
        if name == "verify.js":
            # Every language's messages once, in the cached script, rather than in each of the mesa pages.
            messages = json.dumps(VERIFY_MESSAGES, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            data += b"globalThis.actasVerifyMessages = " + messages.encode() + b";\n"  # read on click
        stem, ext = name.rsplit(".", 1)
        out[name] = (f"assets/{stem}.{hashlib.sha256(data).hexdigest()[:12]}.{ext}", data)
    return out


def write_site(
    site: SiteData, writer: SiteWriter, images: dict[str, str], progress: Progress | None = None, jobs: int = 0
) -> None:
    """Write every page, asset, search shard and open-data file of the site (languages in parallel processes)."""
    assets = hashed_assets()
    for path, data in assets.values():
        writer.put(path, data)
    names = {name: path for name, (path, _) in assets.items()}
    jobs = jobs or min(len(LANGUAGES), os.cpu_count() or 1)
    if jobs > 1 and len(site.mesas) >= PARALLEL_FROM:
        global _JOB
        _JOB = (site, names, images, writer.out, writer.previous)
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for done, (hashes, sizes, written) in enumerate(pool.imap_unordered(_language_job, LANGUAGES), 1):
                    writer.hashes.update(hashes)
                    writer.sizes.update(sizes)
                    writer.written += written
                    if progress is not None:
                        progress("languages", done, len(LANGUAGES))
        finally:
            _JOB = None
    else:
        for done, lang in enumerate(LANGUAGES, 1):
            write_language(site, writer, lang, names, images)
            if progress is not None:
                progress("languages", done, len(LANGUAGES))
    election = site.election
    writer.put("index.html", fixed_pages.language_chooser(election.title, DEFAULT_LANGUAGE))
    for path, data in build_search_index(search_items(site), levels=site.election.levels).items():
        writer.put(f"search/{path}", data)
    for path, data in area_json_files(site):
        writer.put(path, data)
    for contest in election.contests:
        rows = list(acta_rows(site, contest.id))

        def both(csv_path: Path, rows: list[ActaRow] = rows, contest_id: str = contest.id) -> None:
            spec = next(c for c in election.contests if c.id == contest_id)
            parquet = csv_path.with_suffix(".parquet.tmp")
            try:
                write_actas_files(csv_path, parquet, spec, election.levels, rows)
                writer.put(f"data/actas-{contest_id}.parquet", parquet.read_bytes())
            finally:
                parquet.unlink(missing_ok=True)

        writer.put_file(f"data/actas-{contest.id}.csv", both)


PARALLEL_FROM = 2000  # mesas; below this, starting processes costs more than it saves
_JOB: tuple[SiteData, dict[str, str], dict[str, str], Path, dict[str, str]] | None = None  # for forked workers


def _language_job(lang: str) -> tuple[dict[str, str], dict[str, int], int]:
    assert _JOB is not None
    site, names, images, out, previous = _JOB
    writer = SiteWriter(out, previous)
    write_language(site, writer, lang, names, images)
    return writer.hashes, writer.sizes, writer.written


def write_language(
    site: SiteData, writer: SiteWriter, lang: str, names: dict[str, str], images: dict[str, str]
) -> None:
    """Write every page of one language."""
    pages = PageRenderer(site, lang, names, images)
    for area in [None, *range(len(site.election.areas))]:
        path, html = pages.area_page(area)
        writer.put(f"{lang}/{path}", html)
    for mesa in site.mesas:
        path, html = pages.mesa_page(mesa)
        writer.put(f"{lang}/{path}", html)
    for path, heading, body in fixed_pages.bodies(site, lang, names):
        writer.put(f"{lang}/{path}", pages.fixed_page(path, heading, body)[1])


def search_items(site: SiteData) -> Iterator[SearchItem]:
    """Every area and mesa as a search item (urls relative to a language directory)."""
    election = site.election
    for index, area in enumerate(election.areas):
        path = election.area_path(index)
        context = " › ".join(election.areas[i].name for i in path[:-1])
        yield SearchItem(election.levels[area.level], area.code, area.name, context, f"area/{area.code}.html")
    for mesa in site.mesas:
        # The centre's name and breadcrumb, as its centre has: the index stores them once for both.
        path = election.area_path(mesa.area)
        centre = election.areas[mesa.area].name
        context = " › ".join(election.areas[i].name for i in path[:-1])
        yield SearchItem("mesa", mesa.id, centre, context, f"mesa/{mesa.id}.html")


def area_json_files(site: SiteData) -> Iterator[tuple[str, bytes]]:
    """Per-area JSON (totals of every contest, bound to the log position the figures are complete at)."""
    election = site.election
    for area in [None, *range(len(election.areas))]:
        last = site.last_leaf if area is None else site.area_last[area]
        value = {
            "area": "" if area is None else election.areas[area].code,
            "complete_at": last + 1 if last >= 0 else 0,
            "origin": election.origin,
            "contests": [
                {
                    "contest": c.id,
                    "options": [o.id for o in c.options],
                    "totals": site.area_totals(i, area),
                    "witness_copies": site.copies(i, area),
                }
                for i, c in enumerate(election.contests)
            ],
        }
        name = "national" if area is None else election.areas[area].code
        yield f"data/areas/{name}.json", canonical.encode(value)


def acta_rows(site: SiteData, contest: str) -> Iterator[ActaRow]:
    """Every logged acta of a contest as an open-data row, in log order."""
    election = site.election
    logged = [(a, m) for m in site.mesas for a in m.actas.get(contest, [])]
    logged.sort(key=lambda pair: pair[0].leaf)
    for acta, mesa in logged:
        value = acta.entry.acta
        yield ActaRow(
            leaf=acta.leaf,
            mesa=value.mesa,
            contest=value.contest,
            areas=tuple(election.areas[i].code for i in election.area_path(mesa.area)),
            registered=value.registered,
            tickets=tuple(value.tickets),
            options=tuple(value.options),
            null=value.null,
            blank=value.blank,
            counted=acta.status == "counted",
            status=acta.status,
            findings=tuple(f.rule for f in acta.findings),
            device=value.device,
            entry_sha256=acta.sha256,
        )
