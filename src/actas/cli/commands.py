"""The commands of ``actas``; thin wrappers around library calls."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import click

from actas.cli.output import console, out, progress_bar
from actas.cli.render import print_national, print_report
from actas.core.keys import Verifier
from actas.errors import ActasError, KeyFormatError, ProofError, SignatureError
from actas.storage.layout import DataDir
from actas.verifier.readers import open_reader
from actas.verifier.runner import verify as run_verify

EXIT_FAILED = 1


def program_name() -> str:
    """How to invoke actas again from here: ``actas`` when it is on PATH, else the path it was run by."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which("actas")
    if on_path is not None and Path(on_path).resolve() == invoked.resolve():
        return "actas"
    if invoked.name == "actas" and invoked.exists():
        return os.path.relpath(invoked)
    return "actas"


def load_verifier(value: str) -> Verifier:
    """A verifier key given as a key string or as a file holding one."""
    text = value.strip()
    path = Path(value)
    if "+" not in text or path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            raise KeyFormatError(f"{value}: not a key string and not a readable key file ({exc})") from None
    return Verifier.parse(text)


def _workers_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "-j",
        "--workers",
        type=click.IntRange(min=0),
        default=None,
        help="Worker processes (default: every core).",
    )(fn)


@click.command()
@click.option(
    "--mesas",
    type=click.IntRange(1, 2_000_000),
    default=30_026,
    show_default=True,
    help="Number of mesas (polling stations); 30,026 is Venezuela 2024's.",
)
@click.option("--seed", type=int, default=2024, show_default=True, help="Seed: the same seed gives the same bundle.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Directory for the data directory (data/) and the published bundle (bundle/).",
)
@_workers_option
def demo(mesas: int, seed: int, out_dir: Path, workers: int | None) -> None:
    """Simulate a national election, log it, publish the bundle and its results site, and verify it."""
    from actas.demo import run_demo

    with progress_bar() as update:
        result = run_demo(out_dir, mesas, seed, workers, update)
    print_national(result.election, result.report)
    print_report(result.report, brief=True)
    out.print(f"\nbundle:      {result.bundle}")
    out.print(f"results site: python3 -m http.server -d {result.bundle} 8000, then open http://127.0.0.1:8000/")
    out.print(f"data dir:    {result.data.root}")
    out.print(f"timings:     {result.timings}")
    out.print("verify it yourself:")
    out.print(f"  {program_name()} verify {result.bundle} --key {result.authority}")
    out.print("serve it live (stations transmit, witnesses cosign): README.md, 'Run the results service'")
    out.print("print, photograph and scan paper copies, cross-check them: README.md, 'Paper copies'")
    if not result.report.ok:
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("bundle")
@click.option(
    "--key",
    "key",
    help="The authority verifier key you trust (key string or file). Required unless --trust-bundle-key.",
)
@click.option(
    "--trust-bundle-key",
    is_flag=True,
    help="Use the bundle's own keys/authority.vkey. This proves only that the bundle is consistent with "
    "itself: anyone can sign a fake log with a key of their own.",
)
@click.option("--json", "json_out", type=click.Path(allow_dash=True), help="Write a JSON report here ('-' = stdout).")
@click.option(
    "--since",
    "since",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier signed checkpoint: prove the log grew from it append-only and, when that checkpoint "
    "was verified here before, read only the entries after it.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where verified states are kept for --since (default: ~/.cache/actas/verified).",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="A witness whose cosignature the checkpoint must carry (key string or file; repeatable).",
)
@click.option(
    "--min-witnesses",
    type=click.IntRange(min=0),
    help="How many of the --witness keys must have cosigned (default: all of them).",
)
@_workers_option
def verify(
    bundle: str,
    key: str | None,
    trust_bundle_key: bool,
    json_out: str | None,
    since: Path | None,
    state_dir: Path | None,
    witness_keys: tuple[str, ...],
    min_witnesses: int | None,
    workers: int | None,
) -> None:
    """Verify a published bundle (directory or http(s) URL) from its bytes alone."""
    from actas.core.witness_check import distinct_witnesses
    from actas.verifier.state import default_state_dir

    witnesses = distinct_witnesses([load_verifier(w) for w in witness_keys])
    if min_witnesses is not None and min_witnesses > len(witnesses):
        raise click.UsageError(f"--min-witnesses {min_witnesses}: only {len(witnesses)} distinct --witness key(s)")
    reader = open_reader(bundle)
    if key is None and not trust_bundle_key:
        raise click.UsageError("pass --key with the authority key you trust (or --trust-bundle-key)")
    if key is None:
        authority = Verifier.parse(reader.read("keys/authority.vkey").decode("utf-8", "replace").strip())
        console.print(
            f"[yellow]note[/yellow]: trusting the bundle's own key {authority.name}+{authority.key_id_hex}: "
            "this shows only that the bundle is consistent with itself"
        )
    else:
        authority = load_verifier(key)
    started = time.perf_counter()
    with progress_bar() as update:
        report = run_verify(
            reader,
            authority,
            workers,
            lambda done, total: update("verify", done, total),
            since=since.read_bytes() if since is not None else None,
            state_dir=state_dir or default_state_dir(),
            witnesses=witnesses,
            min_witnesses=min_witnesses,
        )
    elapsed = time.perf_counter() - started
    if json_out:
        text = json.dumps({**report.to_value(), "seconds": round(elapsed, 3)}, indent=2, ensure_ascii=False)
        if json_out == "-":
            click.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
    if json_out != "-":
        print_report(report)
        if report.witnesses is not None:
            cosigned = ", ".join(s.label for s in report.witnesses.statuses if s.status == "valid") or "none"
            out.print(f"witnesses: {report.witnesses.valid} of {report.witnesses.required} required ({cosigned})")
        read = report.size - (report.since or 0)
        note = f" (incremental: entries from {report.since:,})" if report.since is not None else ""
        out.print(f"{read:,} entries read in {elapsed:.1f} s{note}")
    if not report.ok:
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--level", help="Also list every area of this level (e.g. estado).")
@click.option("--json", "as_json", is_flag=True, help="Print the results files as JSON.")
def tally(data_dir: Path, level: str | None, as_json: bool) -> None:
    """Totals per option and turnout from a log's entries, bound to its checkpoint."""
    from actas.publish.results import compute_results

    results = compute_results(DataDir(data_dir))
    if as_json:
        click.echo(json.dumps({p: json.loads(b) for p, b in results.files.items()}, indent=2, ensure_ascii=False))
        return
    from actas.cli.render import print_results

    print_results(results, level)


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--mesa", required=True, help="Mesa id.")
@click.option("--contest", help="Contest id (default: the only one, or the first).")
@click.option("--entry-out", type=click.Path(path_type=Path), help="Also write the acta entry bytes here.")
def proof(data_dir: Path, mesa: str, contest: str | None, entry_out: Path | None) -> None:
    """Print a C2SP tlog-proof@v1 of a mesa's acta against the latest checkpoint."""
    from actas.log.proofs import mesa_proof

    found = mesa_proof(DataDir(data_dir), mesa, contest)
    if entry_out is not None:
        entry_out.write_bytes(found.entry)
    sys.stdout.buffer.write(found.proof)


@click.command(name="verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--entry",
    "entry_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The entry bytes the proof is for.",
)
@click.option("--key", required=True, help="Authority verifier key (key string or file).")
def verify_proof(proof_file: Path, entry_file: Path, key: str) -> None:
    """Check that an entry is in the log committed to by a signed checkpoint."""
    from actas.core.proof import TlogProof

    authority = load_verifier(key)
    parsed = TlogProof.parse(proof_file.read_bytes())
    try:
        checkpoint = parsed.verify(entry_file.read_bytes(), authority)
    except (ProofError, SignatureError) as exc:
        console.print(f"[red]FAILED[/red] ({exc.code}): {exc}")
        sys.exit(EXIT_FAILED)
    out.print(f"ok: entry {parsed.index} is in {checkpoint.origin} at tree size {checkpoint.size}")


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
@click.option("--no-site", is_flag=True, help="Write only the bundle's data files, not the results site's pages.")
def publish(data_dir: Path, out_dir: Path, no_site: bool) -> None:
    """Write the bundle and the static results site for a log's latest checkpoint (rewriting only what changed)."""
    from actas.publish.bundle import publish_bundle

    with progress_bar() as progress:
        summary = publish_bundle(DataDir(data_dir), out_dir, site=not no_site, progress=progress)
    size = f"{summary.files:,} files ({summary.written:,} written), {summary.total_bytes:,} bytes"
    out.print(f"published {summary.size:,} entries: {size} in {out_dir}")
    if not no_site:
        out.print(f"serve {out_dir} with any static web server, or: actas serve DATA_DIR --site {out_dir}")


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--mesas", type=click.IntRange(1, 2_000_000), default=30_026, show_default=True, help="Number of mesas.")
@click.option("--seed", type=int, default=2024, show_default=True, help="Seed for a reproducible election.")
@click.option(
    "--actas-to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Do not log the actas: write them to this file, one signed acta per line, for `actas transmit`.",
)
@_workers_option
def simulate(data_dir: Path, mesas: int, seed: int, actas_to: Path | None, workers: int | None) -> None:
    """Simulate a national election into a new data directory (no publication)."""
    from actas.simulate.run import simulate as run_simulation
    from actas.verifier.runner import default_workers

    jobs = default_workers() if workers is None else workers
    with progress_bar() as update:
        summary = run_simulation(data_dir, mesas, seed, jobs, update, actas_to)
    out.print(f"logged {summary.entries:,} entries into {data_dir}")
    if actas_to is not None:
        out.print(f"wrote {summary.election.mesa_count:,} signed actas to {actas_to}")


@click.group()
def log() -> None:
    """Maintenance of a log's data directory."""


@log.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rebuild(data_dir: Path) -> None:
    """Rewrite every tile, entry bundle and the checkpoint from the stored entries."""
    from actas.log.open import rebuild_log

    size = rebuild_log(DataDir(data_dir))
    out.print(f"rebuilt tiles and checkpoint for {size:,} entries")


@log.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, help="Verification processes (0: this one).")
def append(data_dir: Path, files: tuple[Path, ...], jobs: int) -> None:
    """Append signed entries (one per line, as `actas simulate --actas-to` writes them) to the log."""
    from actas.log.open import append_entries

    entries = [line for path in files for line in path.read_bytes().split(b"\n") if line]
    with progress_bar() as update:
        counts, refused = append_entries(DataDir(data_dir), entries, jobs, lambda d, t: update("append", d, t))
    summary = ", ".join(f"{counts[s]:,} {s}" for s in ("appended", "duplicate", "conflict", "rejected"))
    out.print(f"{len(entries):,} entries: {summary}")
    for position, result in refused[:50]:
        console.print(f"[yellow]rejected[/yellow] line {position + 1}: {result.error}")
    if refused:
        sys.exit(EXIT_FAILED)


ALL: list[click.Command] = [demo, verify, tally, proof, verify_proof, publish, simulate, log]
__all__ = ["ALL", "ActasError"]
