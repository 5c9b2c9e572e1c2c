"""``actas mirror-check``: a copy of a bundle, checked against the authority's signed MANIFEST."""

from __future__ import annotations

import sys

import click

from actas.cli.commands import EXIT_FAILED, load_verifier
from actas.cli.output import console, out, progress_bar

SHOWN = 50  # names listed per kind of problem; all are counted


@click.command(name="mirror-check")
@click.argument("location", metavar="URL_OR_DIR")
@click.option("--key", required=True, metavar="VKEY", help="The authority's verifier key (key string or file).")
@click.option("-j", "--jobs", "workers", type=click.IntRange(min=1), help="Verification processes (default: all).")
def mirror_check(location: str, key: str, workers: int | None) -> None:
    """Check a mirror: signed MANIFEST, every file's SHA-256, missing/extra/altered files, and the log."""
    from actas.verifier.mirror import check_mirror

    with progress_bar() as update:
        report = check_mirror(location, load_verifier(key), workers, lambda d, t: update("files", d, t))
    if report.manifest is not None:
        note = report.manifest
        out.print(f"MANIFEST signed by the authority for {note.origin} at checkpoint size {note.size:,}")
        out.print(f"{report.listed:,} files listed")
    for kind, names in (("missing", report.missing), ("altered", report.altered), ("extra", report.extra)):
        out.print(f"{kind}: {len(names):,}")
        for name in names[:SHOWN]:
            out.print(f"  {kind} {name}")
    if not report.extra_checked:
        out.print("extra: not checkable over HTTP (a server does not list what else it holds)")
    if report.log is not None:
        out.print(f"log: {'verifies' if report.log.ok else 'does NOT verify'} ({report.log.size:,} entries)")
        for failure in report.log.failures[:SHOWN]:
            out.print(f"  step {failure.step} {failure.where}: {failure.message}")
    if report.manifest_error is not None:
        console.print(f"[red]MANIFEST[/red]: {report.manifest_error}")
    out.print("MIRROR OK" if report.ok else "MIRROR NOT OK")
    if not report.ok:
        sys.exit(EXIT_FAILED)


COMMANDS: list[click.Command] = [mirror_check]
