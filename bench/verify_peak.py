"""Verify a bundle in a fresh process and print time and peak memory (this process and its largest worker)."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from actas.core.keys import Verifier
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify


def main() -> None:
    """Usage: verify_peak.py BUNDLE WORKERS."""
    bundle, workers = Path(sys.argv[1]), int(sys.argv[2])
    reader = DirectoryReader(bundle)
    authority = Verifier.parse(reader.read("keys/authority.vkey").decode().strip())
    started = time.perf_counter()
    report = verify(reader, authority, workers)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "ok": report.ok,
                "size": report.size,
                "seconds": seconds,
                "failures": [f"{f.step} {f.where}: {f.message}" for f in report.failures[:3]],
                "peak_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
