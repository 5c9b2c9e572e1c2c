"""Commands for witnesses and key holders: ``actas witness`` and ``actas keygen``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from actas.cli.commands import EXIT_FAILED, load_verifier
from actas.cli.output import console, out
from actas.core.b64 import b64encode
from actas.errors import VerificationFailed


@click.command()
@click.option("--log", "log_url", required=True, metavar="URL", help="Base URL of the log service (/log/checkpoint).")
@click.option("--log-key", required=True, metavar="VKEY", help="The log's verifier key (key string or file).")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="This witness's private key file (PRIVATE+KEY+…, from `actas keygen`).",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory: the last cosigned checkpoint and evidence (default: "
    "$XDG_STATE_HOME/actas/witness/<origin hash>).",
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds per round.")
@click.option("--once", is_flag=True, help="Run one round and exit (exit 1 if the checkpoint was refused).")
def witness(log_url: str, log_key: str, key_file: Path, state_dir: Path | None, interval: float, once: bool) -> None:
    """Watch a log and cosign each checkpoint that extends the last one cosigned; keep evidence of forks."""
    from actas.service.witness import RoundResult, WitnessConfig, default_state_dir, run_witness, witness_once
    from actas.service.witness_state import load_signer

    verifier = load_verifier(log_key)
    state = state_dir if state_dir is not None else default_state_dir(verifier.name)
    config = WitnessConfig(log_url, verifier, load_signer(key_file), state)

    def show(result: RoundResult) -> None:
        cp = result.checkpoint
        where = f"size {cp.size:,} root {b64encode(cp.root_hash)}"
        if result.status == "rollback":
            evidence = f"; evidence in {result.evidence}" if result.evidence is not None else ""
            console.print(f"[yellow]refused[/yellow] {where}: smaller than the checkpoint already cosigned{evidence}")
        elif result.status != "unchanged" or once:
            accepted = f" (log accepted: {', '.join(result.accepted)})" if result.accepted else ""
            out.print(f"{result.status} {where}{accepted}")

    try:
        if once:
            result = witness_once(config)
            show(result)
            if result.status == "rollback":
                sys.exit(EXIT_FAILED)
            return
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
        out.print(f"witnessing {verifier.name} at {log_url} every {interval:g} s; state in {config.state_dir}")
        run_witness(config, interval, on_round=show)
    except VerificationFailed as exc:  # equivocation or inconsistency: the evidence path is in the message
        console.print(f"[red]REFUSED[/red] ({exc.code}): {exc}", soft_wrap=True)  # the path stays whole
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("name")
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Writes PREFIX.key (private, mode 0600) and PREFIX.vkey (verifier key); neither may exist.",
)
def keygen(name: str, prefix: Path) -> None:
    """Create an Ed25519 key pair as C2SP key strings (a witness's or an authority's; NAME is the key name)."""
    from actas.service.witness_state import write_key_pair

    private, public = write_key_pair(name, prefix, os.urandom(32))
    out.print(f"private key: {private} (keep it secret)")
    out.print(f"verifier key: {public}")
    out.print(public.read_text(encoding="utf-8").strip())


COMMANDS: list[click.Command] = [witness, keygen]
