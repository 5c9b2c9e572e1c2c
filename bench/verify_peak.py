"""Verify a bundle in a fresh process and print time and peak memory (this process and its largest worker).

Peaks come from /proc (VmHWM of this process; VmHWM of each worker, sampled while it runs), because
getrusage's ru_maxrss also counts memory held before exec by the process that started this one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from actas.core.keys import Verifier
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify


def high_water_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process in MB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.split("\n"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children() -> list[str]:
    """PIDs of this process's children."""
    pids: list[str] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.extend((task / "children").read_text().split())
        except OSError:
            continue
    return pids


def main() -> None:
    """Usage: verify_peak.py BUNDLE WORKERS."""
    bundle, workers = Path(sys.argv[1]), int(sys.argv[2])
    reader = DirectoryReader(bundle)
    authority = Verifier.parse(reader.read("keys/authority.vkey").decode().strip())
    worker_peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal worker_peak
        while not done.wait(0.25):
            for pid in children():
                worker_peak = max(worker_peak, high_water_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    report = verify(reader, authority, workers)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    print(
        json.dumps(
            {
                "ok": report.ok,
                "size": report.size,
                "seconds": seconds,
                "failures": [f"{f.step} {f.where}: {f.message}" for f in report.failures[:3]],
                "peak_main_mb": high_water_mb(),
                "peak_worker_mb": worker_peak,
            }
        )
    )


if __name__ == "__main__":
    main()
