"""``actas demo``: simulate → log → publish (bundle and site) → verify, end to end, on the embedded default (SQLite)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.verify import Report
from actas.publish.bundle import publish_bundle
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import default_workers, verify


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things and what verification found."""

    data: DataDir
    bundle: Path
    election: Election
    authority: Verifier
    report: Report
    timings: str


def run_demo(
    out: Path, mesas: int, seed: int, workers: int | None, progress: Callable[[str, int, int], None]
) -> DemoResult:
    """Run the whole pipeline into ``out`` (replacing an earlier demo there)."""
    count = default_workers() if workers is None else workers
    data_root, bundle = out / "data", out / "bundle"
    for old in (data_root, bundle):
        if old.exists():
            shutil.rmtree(old)
    times: list[str] = []
    started = time.perf_counter()
    summary = simulate(data_root, mesas, seed, count, progress)
    times.append(f"simulate+log {time.perf_counter() - started:.1f} s")
    mark = time.perf_counter()
    published = publish_bundle(summary.data, bundle, progress=progress)
    times.append(f"publish {time.perf_counter() - mark:.1f} s")
    mark = time.perf_counter()
    authority = published.results.authority
    report = verify(DirectoryReader(bundle), authority, count, lambda done, total: progress("verify", done, total))
    times.append(f"verify {time.perf_counter() - mark:.1f} s")
    return DemoResult(summary.data, bundle, summary.election, authority, report, ", ".join(times))
