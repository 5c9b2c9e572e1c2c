"""Verification with every core: bundle checks run in worker processes, results consumed in log order."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.verify import BundleChecker, BundleReader, BundleResult, Report, load_definition, verify_bundle
from actas.errors import ActasError
from actas.verifier.state import StateDir

Job = tuple[int, int, int]
_checker: BundleChecker | None = None


def _init(reader: BundleReader, authority: str, election_json: bytes) -> None:
    """Set up a spawned worker from the definition bytes the main process read (never fetched again)."""
    global _checker
    _checker = BundleChecker(reader, Election.from_json(election_json), Verifier.parse(authority))


def _check(job: Job) -> BundleResult:
    assert _checker is not None
    return _checker.check(*job)


def _ordered(
    executor: ProcessPoolExecutor, window: int
) -> Callable[[Callable[[Job], BundleResult], Iterable[Job]], Iterator[BundleResult]]:
    """An ordered map that keeps at most ``window`` tasks in flight, so memory stays bounded."""

    def run(fn: Callable[[Job], BundleResult], jobs: Iterable[Job]) -> Iterator[BundleResult]:
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
    since: bytes | None = None,
    state_dir: Path | None = None,
    witnesses: Sequence[Verifier] = (),
    min_witnesses: int | None = None,
) -> Report:
    """Verify a bundle with ``workers`` processes (default: every core; 0 runs in this process).

    With ``state_dir``, the state of a successful run is saved there, and ``since`` (an earlier checkpoint
    verified with the same directory) makes the run read only the entries after it. ``witnesses`` and
    ``min_witnesses`` require cosignatures on the checkpoint (see verify_bundle).
    """
    global _checker
    states = StateDir(state_dir) if state_dir is not None else None
    load = states.load if states is not None else None
    count = default_workers() if workers is None else workers
    if count <= 0:
        report, state = verify_bundle(
            reader,
            authority,
            progress=progress,
            since=since,
            load_state=load,
            witnesses=witnesses,
            min_witnesses=min_witnesses,
        )
    else:
        # Parse the definition once here; forked workers inherit it instead of parsing it again each
        # (seconds per worker at a million mesas). Where fork is unavailable each worker parses its own.
        definition: tuple[Election, bool] | None = None
        election_json = b""
        with contextlib.suppress(ActasError):
            election_json = reader.read("election.json")
            definition = load_definition(election_json)
        election = definition[0] if definition is not None else None
        fork = "fork" in multiprocessing.get_all_start_methods()
        if fork:
            election_json = b""  # forked workers inherit the parsed definition; the bytes are not kept
        if election is not None:
            _checker = BundleChecker(reader, election, authority)
        # The definition is long-lived: keep the cyclic collector from walking it again and again.
        gc.freeze()
        if fork or election is None:  # without a definition verify_bundle stops at step 2: no task runs
            pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork") if fork else None)
        else:
            pool = ProcessPoolExecutor(
                count,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(reader, str(authority), election_json),
            )
        try:
            with pool as executor:
                report, state = verify_bundle(
                    reader,
                    authority,
                    parallel_map=_ordered(executor, 4 * count),
                    check_bundle=_check,
                    progress=progress,
                    since=since,
                    load_state=load,
                    definition=definition,
                    witnesses=witnesses,
                    min_witnesses=min_witnesses,
                )
        finally:
            _checker = None
    if states is not None and state is not None and report.ok:
        states.save(state)
    return report
