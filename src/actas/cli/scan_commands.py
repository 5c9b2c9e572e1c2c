"""Paper-copy commands: ``actas scan`` (witness photos to JSON lines) and ``actas render`` (printable actas)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from actas.cli.output import console, out, progress_bar
from actas.core.election import Election
from actas.core.entries import ActaEntry, parse_entry
from actas.errors import ActasError, MalformedError, NotFoundError

if TYPE_CHECKING:  # the scanner pulls in the image libraries: imported only when a command runs
    from actas.scan.batch import ScanReport, ScanSummary

# What each status means, for the summary table (docs/scanning.md explains them at length).
MEANINGS = {
    "ok": "read, verified and counted",
    "duplicate-image": "the same file as an earlier one",
    "duplicate-payload": "another photo of an acta already read",
    "no-qr": "no QR code found",
    "bad-payload": "QR read, but not a valid acta payload",
    "bad-signature": "the device signature does not verify",
    "unknown-mesa": "mesa not in the election definition",
    "wrong-election": "acta of another election",
    "error": "unreadable file",
}


def _load_election(path: Path | None) -> Election | None:
    return None if path is None else Election.from_json(path.read_bytes())


@contextmanager
def _scan_progress() -> Iterator[Callable[[int, int | None], None]]:
    """Yield ``update(done, total)``; a counter with a rate on a terminal, nothing when stderr is piped."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    files = TextColumn("scan {task.completed:,.0f} files")
    columns = (SpinnerColumn(), files, TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("scan", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_summary(summary: ScanSummary, to: Console) -> None:
    """Counts per status, conflicting mesas and speed, as a table."""
    from actas.scan.batch import STATUSES

    table = Table(title=f"{summary.images:,} images from {summary.sources:,} files")
    table.add_column("status")
    table.add_column("images", justify="right")
    table.add_column("meaning")
    for status in STATUSES:
        table.add_row(status, f"{summary.counts[status]:,}", MEANINGS[status])
    to.print(table)
    to.print(f"conflicting mesas: {summary.conflicting_mesas:,}")
    to.print(f"{summary.images_per_second:,.1f} images/s ({summary.seconds:,.1f} s)")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: every core).")
@click.option(
    "--election",
    "definition",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Election definition (JSON): needed for CNE 2024 QR codes; checks mesas and the election origin.",
)
@click.option("--json", "as_json", is_flag=True, help="Write the JSON lines to stdout (the summary to stderr).")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("scan.jsonl"),
    show_default=True,
    help="File for the JSON lines, one per image (ignored with --json).",
)
def scan(paths: tuple[Path, ...], jobs: int | None, definition: Path | None, as_json: bool, out_file: Path) -> None:
    """Read the QR code of every witness photo or scan in PATHS (files, folders, zip archives).

    Each image gets one JSON line with its status (ok, duplicate-image, duplicate-payload, no-qr, bad-payload,
    bad-signature, unknown-mesa, wrong-election, error) and the acta it carries; a table of counts follows.
    """
    from actas.scan.batch import scan as run_scan
    from actas.verifier.runner import default_workers

    missing = [str(p) for p in (*paths, *([definition] if definition else [])) if not p.exists()]
    if missing:
        raise NotFoundError(f"no such file or folder: {', '.join(missing)}")
    election = _load_election(definition)
    if as_json:
        with _scan_progress() as update:
            report = run_scan(paths, election, jobs or default_workers(), update)
        _write_lines(report, sys.stdout)
    else:
        # Written beside the target and renamed at the end: an interrupted scan leaves the last result intact.
        partial = out_file.with_name(f".{out_file.name}.partial")
        try:
            with partial.open("w", encoding="utf-8") as sink:  # opened first: an unwritable --out fails at once
                with _scan_progress() as update:
                    report = run_scan(paths, election, jobs or default_workers(), update)
                _write_lines(report, sink)
            partial.replace(out_file)
        finally:
            partial.unlink(missing_ok=True)
    print_summary(report.summary, console if as_json else out)
    if not as_json:
        out.print(f"wrote {len(report.records):,} JSON lines to {out_file}")


def _write_lines(report: ScanReport, sink: IO[str]) -> None:
    """One JSON object per record, keys sorted, UTF-8 as is."""
    for record in report.records:
        sink.write(json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n")


def _read_entries(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, entry bytes) for each non-empty line; split on b"\\n" only, never on other line breaks."""
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if line.strip():
            yield f"{path}:{number}", line


@click.command()
@click.argument("entry_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--election",
    "definition",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Election definition (JSON) for the names printed on the acta.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files written.",
)
@click.option(
    "--format", "kind", type=click.Choice(["png", "pdf"]), default="png", show_default=True, help="File format."
)
@click.option(
    "--layout",
    type=click.Choice(["a4", "strip"]),
    default="a4",
    show_default=True,
    help="A4 page at 300 dpi, or an 80 mm thermal-printer strip.",
)
def render(
    entry_files: tuple[Path, ...], definition: Path, out_dir: Path, kind: str, layout: Literal["a4", "strip"]
) -> None:
    """Print signed actas as tally sheets with their signed QR code, for paper or for tests.

    Each input file holds signed acta entries, one per line (as written by simulate --actas-to). Writes
    <mesa>.png per acta (<mesa>.<contest>.png when the election has several contests), or one actas.pdf with
    --format pdf.
    """
    from actas.scan.render import render_pdf, render_png

    election = Election.from_json(definition.read_bytes())
    entries = [item for path in entry_files for item in _read_entries(path)]
    if not entries:
        raise MalformedError(f"no acta entries in {', '.join(str(p) for p in entry_files)}")
    names: list[str] = []
    used: set[str] = set()
    for where, entry in entries:  # every line is checked before anything is written
        try:
            names.append(_file_name(entry, election, used))
        except ActasError as exc:
            raise MalformedError(f"{where}: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "pdf":
        target = out_dir / "actas.pdf"
        target.write_bytes(render_pdf([entry for _, entry in entries], election, layout))
        out.print(f"wrote {target} ({len(entries):,} pages)")
        return
    with progress_bar() as update:
        for done, ((where, entry), name) in enumerate(zip(entries, names, strict=True), 1):
            try:
                image = render_png(entry, election, layout)
            except ActasError as exc:
                raise MalformedError(f"{where}: {exc}") from None
            (out_dir / name).write_bytes(image)
            out.print(str(out_dir / name))
            update("render", done, len(entries))
    out.print(f"wrote {len(entries):,} PNG files to {out_dir}")


def _file_name(entry: bytes, election: Election, used: set[str]) -> str:
    """``<mesa>.png`` (with the contest when there are several), numbered if taken already in this run."""
    parsed = parse_entry(entry).entry
    if not isinstance(parsed, ActaEntry):
        raise MalformedError("not an acta entry")
    stem = parsed.acta.mesa if len(election.contests) == 1 else f"{parsed.acta.mesa}.{parsed.acta.contest}"
    name, number = f"{stem}.png", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.png"
    used.add(name)
    return name


COMMANDS: list[click.Command] = [scan, render]
