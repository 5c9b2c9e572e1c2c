"""Commands of the results service: ``actas serve``."""

from __future__ import annotations

from pathlib import Path

import click

from actas.cli.commands import load_verifier


def _limit(value: str, what: str) -> tuple[float, float]:
    """'RATE' or 'RATE/BURST' (requests per second; burst defaults to twice the rate)."""
    rate_text, _, burst_text = value.partition("/")
    try:
        rate = float(rate_text)
        burst = float(burst_text) if burst_text else max(1.0, 2 * rate)
    except ValueError:
        raise click.BadParameter(f"{what}: expected RATE or RATE/BURST, got {value!r}") from None
    if rate < 0 or burst < 1:
        raise click.BadParameter(f"{what}: rate must be >= 0 and burst >= 1")
    return rate, burst


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--db", metavar="URL", help="postgresql://… to share one store among several processes or hosts.")
@click.option("--db-schema", default="public", show_default=True, help="PostgreSQL schema holding this log.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("-p", "--processes", type=click.IntRange(1, 64), default=1, show_default=True, help="Service processes.")
@click.option(
    "-j",
    "--workers",
    type=click.IntRange(0, 256),
    default=0,
    help="Per service process: N processes checking single POSTs, N checking batches, and one sequencing; "
    "0: all in the process.",
)
@click.option(
    "--rate-per-address",
    default="0",
    metavar="RATE[/BURST]",
    help="Requests/s per client address, a batch one per line (0: off).",
)
@click.option("--rate-per-device", default="0", metavar="RATE[/BURST]", help="Actas/s per device key (0: off).")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY", help="Accept cosignatures from this key.")
@click.option("--no-sequencer", is_flag=True, help="Only ingest and serve; never sequence (PostgreSQL).")
@click.option(
    "--site",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also serve this published results site (actas publish --out), with caching and live updates.",
)
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), help="How much to log."
)
def serve(
    data_dir: Path,
    db: str | None,
    db_schema: str,
    host: str,
    port: int,
    processes: int,
    workers: int,
    rate_per_address: str,
    rate_per_device: str,
    witnesses: tuple[str, ...],
    no_sequencer: bool,
    site: Path | None,
    log_level: str,
) -> None:
    """Run the results service over a data directory: ingest with receipts, the log, results, events."""
    from actas.service.ratelimit import Limit
    from actas.service.runtime import ServiceConfig
    from actas.service.server import serve as run_server

    if db is not None and not db.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter("--db: expected a postgresql:// URL")
    config = ServiceConfig(
        data_dir=data_dir,
        db=db,
        db_schema=db_schema,
        sequence=not no_sequencer,
        workers=workers,
        address_limit=Limit(*_limit(rate_per_address, "--rate-per-address")),
        device_limit=Limit(*_limit(rate_per_device, "--rate-per-device")),
        witnesses=tuple(load_verifier(w) for w in witnesses),
        site=site,
    )
    run_server(config, host, port, log_level, processes)


COMMANDS: list[click.Command] = [serve]
