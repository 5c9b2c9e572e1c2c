"""The results service under load on loopback: single POSTs, batches, reads during ingest, a trivial baseline.

Run by ``make bench`` after the log benchmarks, or alone: ``python bench/service.py --mesas 30000``. The server
is a real ``actas serve`` process; the load generator runs in another process (bench/http_load.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from http_load import LoadResult, get, post, run_load
from run import baseline_verify_rate, line

from actas.core.election import Election
from actas.simulate.run import simulate

# The targets: single POSTs and reads against the trivial endpoint, batches against raw verification.
TARGETS = (
    ("single POSTs ≥ 0.30× the trivial endpoint", "single", 0.30),
    ("batch ingest (receipted) ≥ 0.80× raw Ed25519 verify", "batch", 0.80),
    ("GET /v1/results ≥ 0.50× the trivial endpoint", "results", 0.50),
    ("GET /v1/mesas/{id} ≥ 0.50× the trivial endpoint", "mesas", 0.50),
)
READ_P99_MS = 50.0
BATCH_LINES = 1000
PACED_RATE = 500  # actas per second while reads are measured
PACED_BATCH = 50
PACED_SECONDS = 6.0  # each read phase's paced ingest; the reads run 5 s of it
SINGLE_ROUNDS = 3
SINGLE_POSTS = 2000  # per round, on 16 connections
TRIVIAL_SECONDS = 1.5  # each look at the trivial endpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _in_child(port: int, requests: list[bytes], concurrency: int, duration: float | None = None) -> LoadResult:
    """Run a load in a separate process, so the bench process itself stays idle."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(run_load, (port, requests, concurrency, duration))


def _size(url: str) -> int:
    return int(httpx.get(f"{url}/log/checkpoint", timeout=10).text.split("\n")[1])


def _wait_size(url: str, size: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _size(url) < size:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the log did not reach {size} entries")
        time.sleep(0.05)


def _latency(result: LoadResult) -> str:
    return f"  p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms"


def run(mesas: int, out: Path, setups: list[tuple[int, int]]) -> None:
    """Print the service figures for an election of ``mesas`` mesas, for each (processes, workers) setup."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    actas_file = out / "actas.ndjson"
    simulate(out / "pristine", mesas, 3, actas_out=actas_file)
    actas = actas_file.read_bytes().splitlines()
    election = Election.from_json((out / "pristine" / "election.json").read_bytes())
    line("baseline: raw Ed25519 verify, one core", baseline_verify_rate(), "verify/s")
    for processes, workers in setups:
        data = out / f"data-{processes}x{workers}"
        shutil.copytree(out / "pristine", data)
        setup = f"{processes} service process(es), each with {workers} single-POST and {workers} batch checker(s)"
        setup += " and a sequencer process" if workers else ""
        print(f"actas serve -p {processes} -j {workers}: {setup}")
        _report(processes, workers, _measure(data, actas, election, processes, workers))


def _report(processes: int, workers: int, figures: dict[str, float]) -> None:
    """Say, for one setup, which of the targets its figures meet."""
    print(f"targets, -p {processes} -j {workers}:")
    for name, key, target in TARGETS:
        ratio = figures[key]
        print(f"  {name:<60} {ratio:6.3f}×  {'met' if ratio >= target else 'NOT met'}")
    p99 = figures["read_p99"]
    verdict = "met" if p99 <= READ_P99_MS else "NOT met"
    print(f"  {f'read p99 under ingest ≤ {READ_P99_MS:.0f} ms':<60} {p99:5.1f} ms  {verdict}")


def _measure(data: Path, actas: list[bytes], election: Election, processes: int, workers: int) -> dict[str, float]:
    mesas = len(actas)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "actas", "serve", str(data), "--port", str(port), "-p", str(processes)]
    server = subprocess.Popen([*command, "-j", str(workers), "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the server did not start") from None
                time.sleep(0.05)
        start_size = _size(url)
        # The batch phase takes what the paced reads do not need: the longer it runs, the less the pipeline's
        # filling and draining (the first upload, the last commit) weigh in its rate.
        reserved = int(3 * PACED_RATE * PACED_SECONDS)  # three read phases, each under its own paced ingest
        count = SINGLE_ROUNDS * SINGLE_POSTS
        singles, batched, during = actas[:count], actas[count : mesas - reserved], actas[mesas - reserved :]
        assert len(batched) >= 10 * BATCH_LINES, "bench: too few mesas for the batch phase"

        # The single POSTs in rounds, each between two looks at the trivial endpoint: this host's speed drifts
        # within seconds, and one long phase against a baseline taken before and after it measured the drift too.
        trivial = [_in_child(port, [get("/healthz")], 16, TRIVIAL_SECONDS)]
        line("service baseline: GET /healthz", trivial[0].rate, "req/s", extra=_latency(trivial[0]))
        rounds: list[LoadResult] = []
        for start in range(0, count, SINGLE_POSTS):
            requests = [post("/v1/actas", a) for a in singles[start : start + SINGLE_POSTS]]
            rounds.append(_in_child(port, requests, 16))
            assert rounds[-1].statuses.get(201) == len(requests), rounds[-1].statuses
            _wait_size(url, start_size + start + len(requests))
            trivial.append(_in_child(port, [get("/healthz")], 16, TRIVIAL_SECONDS))
            around = (trivial[-2].rate + trivial[-1].rate) / 2
            line(f"  POSTs, round {len(rounds)}", rounds[-1].rate, "req/s", around, " trivial")
            line("  … and GET /healthz after it", trivial[-1].rate, "req/s", extra=_latency(trivial[-1]))
        mean = sum(t.rate for t in trivial) / len(trivial)
        seconds = sum(r.seconds for r in rounds)
        single = LoadResult(count, seconds, [x for r in rounds for x in r.latencies], {})
        line("POST /v1/actas (one acta each)", single.rate, "req/s", mean, " trivial" + _latency(single))
        figures = {"single": single.rate / mean}

        bodies = [b"\n".join(batched[i : i + BATCH_LINES]) for i in range(0, len(batched), BATCH_LINES)]
        # The machine's speed drifts over minutes: the raw-verify baseline is measured again just before and just
        # after the batches (the server idle), and the batch rates are compared with the mean of the two.
        before = baseline_verify_rate(1.0)
        started = time.perf_counter()
        batch = _in_child(port, [post("/v1/actas:batch", b, "application/x-ndjson") for b in bodies], 2)
        assert batch.statuses.get(200) == len(bodies), batch.statuses
        _wait_size(url, start_size + len(singles) + len(batched))
        seconds = time.perf_counter() - started
        after = baseline_verify_rate(1.0)
        near = (before + after) / 2
        line("raw Ed25519 verify, just before / after", near, "verify/s", extra=f"  {before:,.0f} / {after:,.0f}")
        line("POST /v1/actas:batch (receipted)", len(batched) / batch.seconds, "actas/s", near)
        figures["batch"] = len(batched) / batch.seconds / near
        line("  … and in a signed checkpoint", len(batched) / seconds, "actas/s", near)

        rng = random.Random(5)
        states = [a.code for a in election.areas if a.level == 0]
        counted = [json.loads(a)["mesa"] for a in actas[: mesas - reserved]]
        results = [get(f"/v1/results?area={rng.choice(states)}") for _ in range(200)] + [get("/v1/results")]
        mesa_pages = [get(f"/v1/mesas/{rng.choice(counted)}") for _ in range(500)]
        # Reads meet a steady ingest of PACED_RATE actas/s (tens of times a national election's busiest hour), not a
        # flood; the trivial endpoint is measured again under the same ingest, as the reads' baseline.
        bodies = [b"\n".join(during[i : i + PACED_BATCH]) for i in range(0, len(during), PACED_BATCH)]
        posts = [post("/v1/actas:batch", b, "application/x-ndjson") for b in bodies]
        third = len(posts) // 3
        under_ingest: dict[str, tuple[LoadResult, LoadResult, LoadResult]] = {}
        # Each read route alone against the same paced ingest, 8 connections from two processes, like the baseline.
        for n, (name, requests) in enumerate(
            (("trivial", [get("/healthz")]), ("results", results), ("mesas", mesa_pages))
        ):
            with multiprocessing.get_context("fork").Pool(3) as pool:
                batches = posts[n * third : (n + 1) * third]
                ingest = pool.apply_async(run_load, (port, batches, 1, PACED_SECONDS, PACED_BATCH / PACED_RATE))
                time.sleep(0.5)
                one = pool.apply_async(run_load, (port, requests, 4, 5.0))
                two = pool.apply_async(run_load, (port, requests, 4, 5.0))
                under_ingest[name] = (one.get(), two.get(), ingest.get())

        def both(name: str) -> tuple[float, LoadResult]:
            one, two, _ = under_ingest[name]
            merged = LoadResult(one.count + two.count, max(one.seconds, two.seconds), one.latencies + two.latencies, {})
            return one.rate + two.rate, merged

        busy, busy_merged = both("trivial")
        line("GET /healthz during ingest", busy, "req/s", extra=_latency(busy_merged))
        p99s = []
        for key, name in (("results", "GET /v1/results during ingest"), ("mesas", "GET /v1/mesas/{id} during ingest")):
            rate, merged = both(key)
            line(name, rate, "req/s", busy, " trivial" + _latency(merged))
            figures[key] = rate / busy
            p99s.append(merged.percentile(99))
        figures["read_p99"] = max(p99s)
        ingesting = [under_ingest[name][2] for name in under_ingest]
        paced = sum(PACED_BATCH * r.count / r.seconds for r in ingesting) / len(ingesting)
        line("  (paced ingest meanwhile, batches of 50)", paced, "actas/s")
        return figures
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    """Run the service benchmark alone."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mesas", type=int, default=30_026)
    parser.add_argument("--out", type=Path, default=Path("bench-out/service"))
    parser.add_argument("--setups", default="1x2,2x1", help="PROCESSESxWORKERS,… (default: 1x2,2x1)")
    args = parser.parse_args()
    setups = [(int(p), int(w)) for p, _, w in (s.partition("x") for s in args.setups.split(","))]
    run(args.mesas, args.out, setups)


if __name__ == "__main__":
    main()
