"""Commands of a polling station: ``actas transmit`` and ``actas receipts check``."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click

from actas.cli.commands import load_verifier
from actas.cli.output import console, out, progress_bar
from actas.core.b64 import b64encode
from actas.core.keys import Verifier
from actas.service.outbox import Outbox, default_outbox
from actas.service.transmit import Event, fetch_authority
from actas.service.transmit import transmit as run_transmit
from actas.verifier.readers import open_reader
from actas.verifier.receipts import DEFAULT_GRACE, ReceiptsReport, check_receipts, load_receipt_files

EXIT_FAILED = 1
SETTLED = frozenset({"accepted", "duplicate", "conflict", "rejected"})


def _read_actas(paths: tuple[Path, ...], outbox: Outbox) -> Counter[str]:
    """Queue every acta of the files (one per line); count them by where each already was."""
    queued: Counter[str] = Counter()
    for path in paths:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        # bytes.split on b"\n" only: splitlines() would also split inside an entry on other line breaks.
        for line in data.split(b"\n"):
            line = line.removesuffix(b"\r")
            if line.strip():
                queued[outbox.enqueue(line)] += 1
    return queued


def _authority(outbox: Outbox, url: str, key: str | None) -> Verifier:
    """--key if given (and pinned); else the outbox's pinned key; else the service's own, fetched and pinned."""
    if key is not None:
        authority = load_verifier(key)
        outbox.pin_authority(authority)
        return authority
    pinned = outbox.pinned_authority()
    if pinned is not None:
        return pinned
    authority = fetch_authority(url)
    outbox.pin_authority(authority)
    console.print(
        f"[yellow]note[/yellow]: trusting the service's own key {authority.name}+{authority.key_id_hex} "
        f"(pinned in {outbox.root / 'authority.vkey'}); pass --key with a key obtained independently"
    )
    return authority


@click.command()
@click.argument("acta_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--to", "url", required=True, metavar="URL", help="The results service, e.g. https://results.example.org."
)
@click.option(
    "--key",
    help="Authority verifier key (key string or file) every receipt must verify under. Without it: the key "
    "pinned in the outbox, else the service's own key, fetched and pinned on first use.",
)
@click.option(
    "--outbox",
    "outbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Outbox directory (default: $XDG_DATA_HOME/actas/outbox, i.e. ~/.local/share/actas/outbox).",
)
@click.option("--batch", type=click.IntRange(0, 10_000), default=0, help="Actas per NDJSON request (0: one by one).")
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    help="Stop retrying after this many seconds (default: keep trying until everything is sent).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def transmit(
    acta_files: tuple[Path, ...],
    url: str,
    key: str | None,
    outbox_dir: Path | None,
    batch: int,
    max_wait: float | None,
    as_json: bool,
) -> None:
    """Send signed actas (files of one acta per line) to the service and keep its verified receipts.

    Every acta is first written to the outbox, then sent with retries; what cannot be sent now stays there for
    the next run, which also sends the leftovers of earlier runs.
    """
    outbox = Outbox(outbox_dir or default_outbox())
    queued = _read_actas(acta_files, outbox)
    authority = _authority(outbox, url, key)
    total = len(outbox.pending())
    done = 0
    with progress_bar() as update:

        def on_event(event: Event) -> None:
            nonlocal done
            leaf = event.leaf_hash.hex()[:16] if event.leaf_hash is not None else ""
            if event.kind in SETTLED:
                done += 1
                update("transmit", done, total)
            if event.kind == "rejected":
                console.print(f"[red]rejected[/red] {leaf}…: {event.detail}")
            elif event.kind == "bad-receipt":
                console.print(f"[red]bad receipt[/red] {leaf}…: {event.detail}")
            elif event.kind == "retry":
                console.print(f"[yellow]retry[/yellow] in {event.delay:.1f} s: {event.detail}")

        summary = run_transmit(outbox, url, authority, batch=batch, deadline=max_wait, on_event=on_event)
    refused_before = queued["rejected"]
    if as_json:
        value = summary.to_value() | {"outbox": str(outbox.root), "files": dict(queued)}
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        out.print(
            f"sent {summary.sent}, duplicate {summary.duplicate}, conflict {summary.conflict}, "
            f"rejected {summary.rejected}, pending {summary.pending} "
            f"({summary.requests} requests, {summary.retries} retries); receipts in {outbox.root / 'receipts'}"
        )
        if queued["receipted"]:
            out.print(f"{queued['receipted']} acta(s) of these files already had a receipt")
        if refused_before:
            out.print(f"{refused_before} acta(s) of these files were rejected before: see {outbox.root / 'rejected'}")
        if summary.stopped:
            console.print(f"[yellow]stopped[/yellow]: {summary.stopped}; run again to send the rest")
    if summary.rejected or summary.pending or refused_before:
        sys.exit(EXIT_FAILED)


@click.group()
def receipts() -> None:
    """Receipts of the results service: check that the log kept its promises."""


@receipts.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--log",
    "location",
    required=True,
    metavar="URL_OR_DIR",
    help="The service's URL, a mirror's URL, or a directory holding log/ (a published bundle or a data directory).",
)
@click.option("--key", required=True, help="The authority verifier key you trust (key string or file).")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    help="Seconds a receipt may be older than the checkpoint and still be pending rather than missing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report, with the full evidence, as JSON.")
def check(paths: tuple[Path, ...], location: str, key: str, grace: float, as_json: bool) -> None:
    """Check that every receipt (.receipt files, or directories of them) is in the log's signed checkpoint.

    A receipt whose acta is not in a checkpoint read more than --grace seconds after the receipt was issued is
    MISSING; the receipt and the checkpoint, both signed by the authority, are the evidence.
    """
    files = load_receipt_files(paths)
    if not files:
        raise click.UsageError("no .receipt files among " + ", ".join(str(p) for p in paths))
    readable = [f for f in files if f.receipt is not None]
    unreadable = [f for f in files if f.receipt is None]
    report = check_receipts(
        [f.receipt for f in readable if f.receipt is not None], open_reader(location), load_verifier(key), grace=grace
    )
    names = [str(f.path) for f in readable]
    if as_json:
        value = report.to_value()
        for item, name in zip(value["receipts"], names, strict=True):
            item["path"] = name
        value["unreadable"] = [{"path": str(f.path), "error": f.error} for f in unreadable]
        value["ok"] = report.ok and not unreadable
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        _print_report(report, names, [(str(f.path), f.error) for f in unreadable])
    if not report.ok or unreadable:
        sys.exit(EXIT_FAILED)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_report(report: ReceiptsReport, names: list[str], unreadable: list[tuple[str, str]]) -> None:
    cp = report.checkpoint
    out.print(f"checkpoint {cp.origin} size {cp.size:,} root {b64encode(cp.root_hash)} read {_when(report.fetched_at)}")
    for result, name in zip(report.results, names, strict=True):
        leaf = result.receipt.leaf_hash.hex()
        if result.status == "missing":
            out.print(f"[red]MISSING[/red] {leaf} ({name}), receipt issued {_when(result.receipt.time)}")
            out.print(f"  {result.detail}")
            out.print(
                f"  evidence: the receipt (signed by {result.receipt.origin}, promising inclusion) and the checkpoint "
                f"of size {cp.size} (signed by the same key) without this leaf; --json prints both in full"
            )
        elif result.status == "invalid":
            out.print(f"[red]INVALID[/red] {leaf} ({name}): {result.detail}")
        elif result.status == "pending":
            out.print(f"[yellow]PENDING[/yellow] {leaf} ({name}): {result.detail}; check again later")
    for name, error in unreadable:
        out.print(f"[red]INVALID[/red] {name}: {error}")
    included = report.of("included")
    by_proof = sum(1 for r in included if r.how == "proof")
    out.print(
        f"{len(included)} included ({by_proof} by tlog-proof, {len(included) - by_proof} from the entries), "
        f"{len(report.of('pending'))} pending, {len(report.of('missing'))} missing, "
        f"{len(report.of('invalid')) + len(unreadable)} invalid"
    )


COMMANDS: list[click.Command] = [transmit, receipts]
