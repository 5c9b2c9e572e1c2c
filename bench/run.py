"""``make bench``: the hot paths, each beside a baseline measured in the same run.

The machine is shared and noisy, so every rate is also printed as a ratio to the raw Ed25519 verification rate
of one core measured moments before (the baseline). Benchmarks measure; correctness is the tests' job.

    python bench/run.py --scale 100000      # N actas (and N mesas, N enrollments)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actas.core.entries import election_entry, enroll_entry
from actas.core.keys import Signer
from actas.core.tally import tally_entries
from actas.log.writer import LogWriter
from actas.publish.bundle import publish_bundle
from actas.simulate.geography import generate_election
from actas.simulate.run import create_data_dir, derive_seed, device_signer, signed_actas
from actas.storage.sqlite import SqliteLogStore
from actas.verifier.runner import default_workers

BATCH = 4096


def line(name: str, value: float, unit: str, baseline: float | None = None, extra: str = "") -> None:
    """Print one figure, with its ratio to the baseline when it is a rate."""
    ratio = f"  {value / baseline:5.2f}× baseline" if baseline else ""
    print(f"{name:<44} {value:>12,.0f} {unit:<10}{ratio}{extra}", flush=True)


def baseline_verify_rate(seconds: float = 2.0) -> float:
    """Raw Ed25519 verifications per second on one core, over a message the size of an acta entry."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key()
    message = b"x" * 560
    signature = key.sign(message)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(500):
            public.verify(signature, message)
        count += 500
    return count / (time.perf_counter() - started)


def timed_append(writer: LogWriter, entries: list[bytes]) -> float:
    """Seconds to append entries in batches through the sequencer."""
    started = time.perf_counter()
    for i in range(0, len(entries), BATCH):
        results = writer.append(entries[i : i + BATCH])
        bad = [r for r in results if r.status != "appended"]
        if bad:
            raise SystemExit(f"bench: unexpected {bad[0].status}: {bad[0].error}")
    return time.perf_counter() - started


def peak_rss_mb(who: int) -> float:
    """Peak resident memory in MB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100_000, help="number of actas (default 100,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args(argv)
    n, seed, workers = args.scale, args.seed, args.workers
    if args.out.exists():
        shutil.rmtree(args.out)
    print(
        f"actas bench: {n:,} actas, {workers} worker processes, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )

    base = baseline_verify_rate()
    line("baseline: raw Ed25519 verify, one core", base, "verify/s")

    election = generate_election(n, seed)
    authority = Signer(election.origin, derive_seed(seed, "authority"))
    started = time.perf_counter()
    enrollments = [
        enroll_entry(election.origin, device_signer(seed, i).verifier, [election.mesa_id(i)], authority)
        for i in range(election.mesa_count)
    ]
    actas = list(signed_actas(election, seed))
    prepare = time.perf_counter() - started
    line(
        "prepare: sign enrollments and actas",
        2 * n / prepare,
        "signed/s",
        extra=f"  ({prepare:.1f} s, untimed below)",
    )

    data = create_data_dir(args.out / "data", election, authority)
    writer = LogWriter(SqliteLogStore(data.database), data.log, election, authority, workers=workers)
    writer.append([election_entry(election.origin, election.digest, authority)])
    seconds = timed_append(writer, enrollments)
    line("append enrollments (sequencer, SQLite)", n / seconds, "entries/s", base)
    seconds = timed_append(writer, actas)
    line("append signed actas (sequencer, SQLite)", n / seconds, "actas/s", base, f"  ({seconds:.1f} s)")
    writer.close()
    del enrollments, actas

    started = time.perf_counter()
    summary = publish_bundle(data, args.out / "bundle", site=False)  # the site has its own bench (bench/site.py)
    seconds = time.perf_counter() - started
    line(
        "publish bundle (tally + copy tiles)",
        summary.size / seconds,
        "entries/s",
        base,
        f"  ({seconds:.1f} s, {summary.files:,} files, {summary.total_bytes / 1e6:,.1f} MB)",
    )

    store = SqliteLogStore(data.database)
    entries = store.read(0, store.size())
    started = time.perf_counter()
    tally_entries(election, entries)
    seconds = time.perf_counter() - started
    line("tally from log entries (one core)", len(entries) / seconds, "entries/s", base)
    store.close()
    del entries

    # Verification runs in a fresh process, as a user would run it, so its peak memory is its own.
    script = Path(__file__).with_name("verify_peak.py")
    answer = subprocess.run(
        [sys.executable, str(script), str(args.out / "bundle"), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(answer.stdout)
    if not result["ok"]:
        raise SystemExit(f"bench: verification failed: {result['failures']}")
    seconds = result["seconds"]
    line("verify full bundle (all steps)", result["size"] / seconds, "entries/s", base, f"  ({seconds:.1f} s)")
    print(
        f"{'verify peak memory: main / largest worker':<44} {result['peak_main_mb']:>12,.0f} MB"
        f"{'':<8}{result['peak_worker_mb']:,.0f} MB"
    )
    print(f"{'bench process peak memory':<44} {peak_rss_mb(resource.RUSAGE_SELF):>12,.0f} MB")


if __name__ == "__main__":
    main()
