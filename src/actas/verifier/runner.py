"""Verification with every core: bundle checks run in worker processes, results consumed in log order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.verify import BundleChecker, BundleReader, BundleResult, Report, verify_bundle
from actas.errors import ActasError

_checker: BundleChecker | None = None


def _init(reader: BundleReader, authority: str) -> None:
    global _checker
    try:
        election = Election.from_json(reader.read("election.json"))
    except ActasError:
        return  # the main process reports step 2; tasks then never run
    _checker = BundleChecker(reader, election, Verifier.parse(authority))


def _check(job: tuple[int, int]) -> BundleResult:
    assert _checker is not None
    return _checker.check(*job)


def _ordered(
    executor: ProcessPoolExecutor, window: int
) -> Callable[[Callable[[tuple[int, int]], BundleResult], Iterable[tuple[int, int]]], Iterator[BundleResult]]:
    """An ordered map that keeps at most ``window`` tasks in flight, so memory stays bounded."""

    def run(
        fn: Callable[[tuple[int, int]], BundleResult], jobs: Iterable[tuple[int, int]]
    ) -> Iterator[BundleResult]:
        pending: deque[Future[BundleResult]] = deque()
        for job in jobs:
            pending.append(executor.submit(fn, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return run


def default_workers() -> int:
    """Every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def verify(
    reader: BundleReader,
    authority: Verifier,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Verify a bundle, using ``workers`` processes (default: every core; 0 runs in this process)."""
    count = default_workers() if workers is None else workers
    if count <= 0:
        return verify_bundle(reader, authority, progress=progress)
    with ProcessPoolExecutor(count, initializer=_init, initargs=(reader, str(authority))) as executor:
        return verify_bundle(
            reader,
            authority,
            parallel_map=_ordered(executor, 4 * count),
            check_bundle=_check,
            progress=progress,
        )
