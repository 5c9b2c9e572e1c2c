"""Batch scanning of witness images: files, folders and zips, one record per page, on every core.

:func:`scan` reads every source (:func:`actas.scan.images.iter_sources`), hashes its bytes in the parent
process and sends each new image to a worker, which loads its pages, finds their QR codes
(:func:`actas.scan.qr_read.read_qr`) and reads the payload strictly. Results come back in input order as
:class:`ScanRecord` values, one per page (``path#page=N`` for pages after the first of a multi-page source).

Status of a record, decided in this order:

* ``error``: the source could not be read or is not an image (``reason`` says why);
* ``duplicate-image``: same SHA-256 as an earlier source, not decoded again (``duplicate_of`` names it);
* ``no-qr``: no QR code found after the whole fallback ladder;
* ``bad-payload``: a QR code was read but is no known payload, does not parse strictly, is an incomplete
  multi-part boletim, or (with a definition) names a contest or ticket count the definition does not have;
* ``bad-signature``: an ``actas1`` payload whose device signature does not verify;
* ``wrong-election``: an ``actas1`` payload of another election origin than the definition's;
* ``unknown-mesa``: a payload whose mesa is not in the definition;
* ``ok``: everything above holds; only these records count;
* ``duplicate-payload``: an ok read whose payload text equals an earlier ok record's (``duplicate_of``).

Finally ``conflict`` is set on every ok record when another ok record of the same mesa and contest carries
different counts (counts a format does not carry, such as the blank votes of a CNE QR, are not compared).
A wrong read is never ok: QR Reed–Solomon, the strict payload parsers and (for ``actas1``) the Ed25519
signature stand between a damaged photo and an ``ok``. The signature is checked under the key the acta names;
whether that key was enrolled for the mesa is a question for the log, not answered here.

How the QR texts of one page become a status (``no-qr`` to ``ok``), including several QR codes in one image,
is decided in :mod:`actas.scan.verdict`; this module reads the sources, runs the pool, and marks duplicates and
conflicts across the batch.

With ``jobs`` > 1 the workers are started with ``forkserver`` (``spawn`` where there is none), never ``fork``:
a script calling :func:`scan` must guard its entry point with ``if __name__ == "__main__":``, as multiprocessing
requires for those start methods. Ctrl-C terminates the pool and re-raises ``KeyboardInterrupt``.

Timings per record, in milliseconds: ``load`` reads the whole source (shared by its pages), ``decode`` finds
and reads this page's QR codes and payload, ``total`` is their sum.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from actas.core.election import Election
from actas.errors import ActasError, MalformedError
from actas.scan.images import Source, SourceProblem, iter_sources, load_pages
from actas.scan.qr_read import QrRead, read_qr
from actas.scan.verdict import STATUSES, Acceptor, Judge, ScannedCopy, Status, Verdict

__all__ = ["STATUSES", "Progress", "ScanRecord", "ScanReport", "ScanSummary", "ScannedCopy", "Status", "scan"]

_CHUNK = 2  # sources per worker task: images are large, so small chunks keep memory and latency low
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """What scanning one page of one source found."""

    path: str
    sha256: str | None  # None only for a source whose bytes could not be read at all
    status: Status
    conflict: bool = False
    reason: str | None = None
    payload: str | None = None
    format: str | None = None
    copy: ScannedCopy | None = None
    signature: str | None = None
    step: str | None = None
    attempts: int = 0
    duplicate_of: str | None = None
    load_ms: float = 0.0
    decode_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise MalformedError(f"scan record: unknown status {self.status!r}")
        if self.sha256 is None and self.status != "error":
            raise MalformedError("scan record: only an unreadable source may lack its sha256")
        if self.sha256 is not None and (len(self.sha256) != 64 or set(self.sha256) - set("0123456789abcdef")):
            raise MalformedError("scan record: sha256 must be 64 lower-case hex digits")
        if self.conflict and self.status != "ok":
            raise MalformedError("scan record: only an ok record can be in conflict")
        if self.status == "ok" and self.copy is None:
            raise MalformedError("scan record: an ok record needs the copy it read")

    @property
    def total_ms(self) -> float:
        """Loading plus decoding time."""
        return self.load_ms + self.decode_ms

    def to_json(self) -> dict[str, Any]:
        """The record as one JSON object (keys sorted; timings rounded to 0.1 ms)."""
        return {
            "attempts": self.attempts,
            "conflict": self.conflict,
            "copy": None if self.copy is None else self.copy.to_json(),
            "duplicate_of": self.duplicate_of,
            "format": self.format,
            "path": self.path,
            "payload": self.payload,
            "reason": self.reason,
            "sha256": self.sha256,
            "signature": self.signature,
            "status": self.status,
            "step": self.step,
            "timing_ms": {
                "decode": round(self.decode_ms, 1),
                "load": round(self.load_ms, 1),
                "total": round(self.total_ms, 1),
            },
        }


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """Counts of a batch: per status, conflicts, speed."""

    counts: dict[str, int]
    sources: int
    images: int
    conflicting_mesas: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Records (pages) produced per second of wall time."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, keys sorted."""
        return {
            "conflicting_mesas": self.conflicting_mesas,
            "counts": dict(self.counts),
            "images": self.images,
            "images_per_second": round(self.images_per_second, 2),
            "seconds": round(self.seconds, 3),
            "sources": self.sources,
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Every record in input order, and the summary."""

    records: list[ScanRecord]
    summary: ScanSummary


@dataclass(frozen=True, slots=True)
class _Task:
    """One source for a worker: its bytes, or why it needs no decoding (a problem, an earlier duplicate)."""

    name: str
    sha256: str | None
    data: bytes | None = None
    problem: str | None = None
    duplicate_of: str | None = None


class _Decoder:
    """Loads and reads sources; the QR texts of each page are judged against one election definition (or none)."""

    def __init__(self, election: Election | None) -> None:
        self.judge = Judge(election)

    def process(self, task: _Task) -> list[ScanRecord]:
        """The records of one source, one per page."""
        if task.problem is not None:
            return [ScanRecord(task.name, task.sha256, "error", reason=task.problem)]
        if task.duplicate_of is not None or task.data is None:
            return [ScanRecord(task.name, task.sha256, "duplicate-image", duplicate_of=task.duplicate_of)]
        started = time.perf_counter()
        try:
            pages = load_pages(Source(task.name, task.data))
        except ActasError as exc:
            load_ms = (time.perf_counter() - started) * 1000
            return [ScanRecord(task.name, task.sha256, "error", reason=str(exc), load_ms=load_ms)]
        load_ms = (time.perf_counter() - started) * 1000
        records = []
        for number, page in enumerate(pages, 1):
            begun = time.perf_counter()
            accept = Acceptor()
            try:
                read = read_qr(page, accept)
            except ActasError as exc:  # a page the reader cannot take (not 2-D, empty): a per-image error
                read, outcome = QrRead((), "none", 0), Verdict("error", str(exc))
            else:
                outcome = self.judge.judge(read.texts, accept.rejected)
            records.append(
                ScanRecord(
                    task.name if number == 1 else f"{task.name}#page={number}",
                    task.sha256,
                    outcome.status,
                    reason=outcome.reason,
                    payload=outcome.payload,
                    format=outcome.format,
                    copy=outcome.copy,
                    signature=outcome.signature,
                    step=read.step,
                    attempts=read.attempts,
                    load_ms=load_ms,
                    decode_ms=(time.perf_counter() - begun) * 1000,
                )
            )
        return records


_WORKER: _Decoder | None = None


def _init_worker(definition: bytes | None) -> None:
    """Worker start: the parent handles Ctrl-C; each worker uses one thread and holds the definition."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)  # the pool already uses every core
    _WORKER = _Decoder(None if definition is None else Election.from_json(definition))


def _work(task: _Task) -> list[ScanRecord]:
    assert _WORKER is not None, "worker used before its initializer ran"
    return _WORKER.process(task)


def _tasks(paths: Sequence[str | Path], counter: list[int]) -> Iterator[_Task]:
    """Sources in input order, hashed; a repeated image is sent as a reference to its first copy, not as bytes."""
    first: dict[str, str] = {}
    for item in iter_sources(paths):
        counter[0] += 1
        if isinstance(item, SourceProblem):
            yield _Task(item.name, None, problem=item.reason)
            continue
        digest = hashlib.sha256(item.data).hexdigest()
        earlier = first.setdefault(digest, item.name)
        if earlier != item.name:
            yield _Task(item.name, digest, duplicate_of=earlier)
        else:
            yield _Task(item.name, digest, data=item.data)


def _mark_duplicates_and_conflicts(records: list[ScanRecord]) -> None:
    """Later ok reads of an earlier ok payload become duplicates; differing ok copies of a mesa are conflicts."""
    first: dict[str, str] = {}
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.status != "ok" or record.payload is None or record.copy is None:
            continue
        earlier = first.setdefault(record.payload, record.path)
        if earlier != record.path:
            records[i] = replace(record, status="duplicate-payload", duplicate_of=earlier)
            continue
        groups[(record.copy.mesa, record.copy.contest)].append(i)
    for members in groups.values():
        copies = [records[i].copy for i in members]
        for i, mine in zip(members, copies, strict=True):
            if mine is not None and any(c is not None and not mine.agrees_with(c) for c in copies):
                records[i] = replace(records[i], conflict=True)


def scan(
    paths: Sequence[str | Path], election: Election | None, jobs: int, progress: Progress | None = None
) -> ScanReport:
    """Scan every image under paths (files, folders, zips) with ``jobs`` processes (1: in this process)."""
    if jobs < 1:
        raise MalformedError(f"jobs: {jobs} is not a positive number of processes")
    started = time.perf_counter()
    sources = [0]
    records: list[ScanRecord] = []
    # closing: on Ctrl-C or any error the generator's own handler terminates the pool at once.
    with closing(_run(paths, election, jobs, sources)) as results:
        for done, batch in enumerate(results, 1):
            records.extend(batch)
            if progress is not None:
                progress(done, None)
    _mark_duplicates_and_conflicts(records)
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for record in records:
        counts[record.status] += 1
    mesas = {r.copy.mesa for r in records if r.conflict and r.copy is not None}
    seconds = time.perf_counter() - started
    return ScanReport(records, ScanSummary(counts, sources[0], len(records), len(mesas), seconds))


def _run(
    paths: Sequence[str | Path], election: Election | None, jobs: int, counter: list[int]
) -> Generator[list[ScanRecord], None, None]:
    """Records of each source in input order; a pool of jobs processes, stopped cleanly on Ctrl-C."""
    if jobs == 1:
        decoder = _Decoder(election)
        yield from map(decoder.process, _tasks(paths, counter))
        return
    methods = multiprocessing.get_all_start_methods()
    # Never fork: the parent has threads (the pool's own among them), and forking a threaded process can deadlock.
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    definition = None if election is None else election.to_canonical()
    pool = context.Pool(jobs, initializer=_init_worker, initargs=(definition,))
    try:
        yield from pool.imap(_work, _tasks(paths, counter), chunksize=_CHUNK)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
