"""``actas observe``: a witness's paper copies, read from photos and logged as signed observations."""

from __future__ import annotations

import os
from pathlib import Path

import click

from actas.cli.output import console, out, progress_bar
from actas.storage.layout import DataDir


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--witness-key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The witness's private key file (PRIVATE+KEY+…, from `actas keygen`); it signs each observation.",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Scanning processes (default: every core).")
def observe(data_dir: Path, images: tuple[Path, ...], key_file: Path, jobs: int | None) -> None:
    """Scan photos of printed actas (files, folders, zips) and log each copy read as a signed observation."""
    from actas.service.observations import observe_images
    from actas.service.witness_state import load_signer

    witness = load_signer(key_file)
    with progress_bar() as update:
        summary = observe_images(
            DataDir(data_dir),
            list(images),
            witness,
            jobs or os.cpu_count() or 1,
            lambda done, total: update("scan", done, total or done),
        )
    out.print(
        f"{summary.scanned:,} images: {summary.logged:,} observations logged, {summary.already:,} already in the log, "
        f"{summary.not_read:,} without a usable copy, {len(summary.rejected):,} refused"
    )
    for name, reason in summary.rejected[:50]:
        console.print(f"[yellow]refused[/yellow] {name}: {reason}")
    unread = [r for r in summary.records if r.status not in ("ok", "duplicate-payload", "duplicate-image")]
    for record in unread[:50]:
        console.print(f"[yellow]{record.status}[/yellow] {record.path}: {record.reason or ''}")


COMMANDS: list[click.Command] = [observe]
