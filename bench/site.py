"""``make bench``: the results site of a Venezuela-sized election (30,026 mesas), as `actas publish` writes it.

Figures, each beside a baseline measured in the same run (the machine is shared and noisy):

* full publication time, files and bytes — beside the time this machine takes just to write the same files;
* the national page's total transfer (HTML, stylesheet, scripts; gzip) and the largest page (gzip);
* a rebuild after one new acta: which files it rewrote, and its time.

    python bench/site.py --mesas 30026
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from actas.core.manifest import MANIFEST, parse_manifest
from actas.log.open import append_entries
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir

NATIONAL_TARGET_KB = 150
PAGE_TARGET_KB = 300
PUBLISH_TARGET_S = 120


def line(name: str, value: str, note: str = "") -> None:
    """Print one figure."""
    print(f"{name:<46} {value:>16}  {note}", flush=True)


def gzip_size(path: Path) -> int:
    """Bytes on the wire with gzip (as any web server sends HTML, CSS and JS)."""
    return len(gzip.compress(path.read_bytes(), compresslevel=6, mtime=0))


def write_baseline(site: Path, scratch: Path) -> float:
    """Seconds to write the same files (names and bytes) with nothing else to do: this machine's floor."""
    files = [p for p in site.rglob("*") if p.is_file()]
    contents = [(p.relative_to(site), p.read_bytes()) for p in files]
    started = time.perf_counter()
    for relative, data in contents:
        target = scratch / relative
        try:
            target.write_bytes(data)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return time.perf_counter() - started


def national_transfer(site: Path) -> tuple[int, list[str]]:
    """Gzip bytes of the national page and every stylesheet and script it loads."""
    page = site / "es" / "index.html"
    html = page.read_text(encoding="utf-8")
    loaded = re.findall(r'(?:href|src)="\.\./(assets/[^"]+)"', html)
    return gzip_size(page) + sum(gzip_size(site / a) for a in loaded), ["es/index.html", *loaded]


def kind(path: str) -> str:
    """A file's kind, for the rebuild's summary."""
    parts = path.split("/")
    if parts[0] in ("es", "en", "pt"):
        return f"{parts[1]} pages" if len(parts) > 2 else "language index pages"
    return parts[0] if len(parts) > 1 else path


def main(argv: list[str] | None = None) -> None:
    """Run the site benchmark once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesas", type=int, default=30_026)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=Path("bench-out/site"))
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    print(f"actas site bench: {args.mesas:,} mesas, {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    # Every acta but the last is logged; the last arrives after the first publication.
    actas_file = args.out / "actas.ndjson"
    simulate(args.out / "data", args.mesas, args.seed, actas_out=actas_file)
    actas = actas_file.read_bytes().splitlines()
    data = DataDir(args.out / "data")
    append_entries(data, actas[:-1])
    site = args.out / "site"

    started = time.perf_counter()
    summary = publish_bundle(data, site)
    seconds = time.perf_counter() - started
    floor = write_baseline(site, args.out / "baseline")
    shutil.rmtree(args.out / "baseline")
    verdict = "meets" if seconds <= PUBLISH_TARGET_S else "MISSES"
    line("baseline: write the same files, nothing else", f"{floor:.1f} s")
    line(
        "publish bundle + site (full)",
        f"{seconds:.1f} s",
        f"{seconds / floor:.1f}× baseline; {verdict} the {PUBLISH_TARGET_S} s target",
    )
    line("files / bytes", f"{summary.files:,}", f"{summary.total_bytes / 1e6:,.0f} MB")
    pages = [p for p in site.glob("*/**/*.html")]
    largest = max(pages, key=gzip_size)
    size = gzip_size(largest)
    verdict = "meets" if size <= PAGE_TARGET_KB * 1024 else "MISSES"
    line(
        "largest HTML page (gzip)",
        f"{size / 1024:.1f} KB",
        f"{largest.relative_to(site)}; {verdict} ≤ {PAGE_TARGET_KB} KB",
    )
    total, parts = national_transfer(site)
    verdict = "meets" if total <= NATIONAL_TARGET_KB * 1024 else "MISSES"
    line(
        "national page total transfer (gzip)",
        f"{total / 1024:.1f} KB",
        f"{len(parts)} files; {verdict} ≤ {NATIONAL_TARGET_KB} KB",
    )

    before = parse_manifest((site / MANIFEST).read_bytes())
    append_entries(data, actas[-1:])
    started = time.perf_counter()
    again = publish_bundle(data, site)
    seconds = time.perf_counter() - started
    after = parse_manifest((site / MANIFEST).read_bytes())
    changed = sorted(p for p, digest in after.items() if before.get(p) != digest)
    line("rebuild after one new acta", f"{seconds:.1f} s", f"{again.written:,} files written of {again.files:,}")
    for name, count in sorted(Counter(kind(p) for p in changed).items()):
        line(f"  changed: {name}", f"{count:,}")
    check = hashlib.sha256((site / MANIFEST).read_bytes()).hexdigest()[:16]
    line("MANIFEST sha256 (prefix)", check)


if __name__ == "__main__":
    main()
