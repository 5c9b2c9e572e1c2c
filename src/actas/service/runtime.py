"""The parts of a running service, wired together: stores, ingest, sequencer, live view, limits."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from actas.core.election import Election
from actas.core.keys import Signer, Verifier
from actas.errors import StorageError
from actas.log.proofs import TileCache
from actas.log.validate import Checked, check_chunk, check_entries, check_one, init_worker
from actas.log.writer import LogWriter
from actas.service.check_link import CheckLink
from actas.service.ingest import Ingest
from actas.service.live import LiveLog
from actas.service.ratelimit import Limit, RateLimiter
from actas.service.sequencer import Fault, Sequencer
from actas.service.sequencer_process import SequencerProcess
from actas.service.stores import LogPlace
from actas.storage.base import SubmissionStore
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore

log = logging.getLogger("actas.service")
MAX_ACTA_BODY = 64 * 1024  # an entry is below 64 KiB; a QR payload or JSON with whitespace is near it
MAX_BATCH_BODY = 64 * 1024 * 1024
MAX_BATCH_LINES = 100_000
CHECK_THREADS = 2  # threads checking single submissions without workers (verification releases the GIL)
MAX_OBSERVATION_BODY = 25 * 1024 * 1024  # a phone photo or a scanned PDF page, with room to spare


@dataclass(frozen=True)
class ServiceConfig:
    """How a service process runs; every field has a safe default."""

    data_dir: Path
    db: str | None = None  # postgresql://…; None: the data directory's SQLite database
    db_schema: str = "public"  # PostgreSQL schema: one per log when a database holds several
    sequence: bool = True  # take part in sequencing (with PostgreSQL, whoever holds the lock does)
    workers: int = 0  # N processes checking single POSTs, N checking batches, and the sequencer; 0: all here
    address_limit: Limit = field(default_factory=lambda: Limit(0, 0))
    device_limit: Limit = field(default_factory=lambda: Limit(0, 0))
    witnesses: tuple[Verifier, ...] = ()
    max_acta_body: int = MAX_ACTA_BODY
    max_batch_body: int = MAX_BATCH_BODY
    max_batch_lines: int = MAX_BATCH_LINES
    max_observation_body: int = MAX_OBSERVATION_BODY
    fault: Fault | None = None  # tests only: see Sequencer
    site: Path | None = None  # a published results site to serve beside the API (actas publish --out)


class Runtime:
    """Opens and closes everything a service process needs."""

    def __init__(self, config: ServiceConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.place = LogPlace(config.data_dir, config.db, config.db_schema)
        self.data = DataDir(config.data_dir)
        if not self.data.election.exists():
            raise StorageError(f"{config.data_dir}: no election.json; create the data directory first")
        self.election = Election.from_json(self.data.election.read_bytes())
        self.authority = Signer.parse(self.data.authority_key.read_text(encoding="utf-8").strip())
        self.verifier = self.authority.verifier
        self.witnesses = {w.name: w for w in config.witnesses}
        self._prepare_store()
        definition = self.election.to_canonical() if config.workers > 0 else b""  # what every worker loads
        self._pool = (
            ProcessPoolExecutor(
                config.workers,
                # Not fork: a forked worker would inherit the sequencer's flock and keep it after this process
                # dies, and uvicorn's signal handlers with it.
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=init_worker,
                # The workers end with this process, even if it is killed (init_worker).
                initargs=(definition, str(self.authority.verifier), os.getpid()),
            )
            if config.workers > 0
            else None
        )
        self.check_threads = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="actas-check")
        self.reader = self.open_store()  # read routes and small writes of the event loop, under reader_lock
        self.reader_lock = threading.Lock()
        self.tiles = TileCache(self.data.log)  # hashed tiles for proofs: a tile of a given width never changes
        self.address_limiter = RateLimiter(config.address_limit, "client address", clock)
        self.device_limiter = RateLimiter(config.device_limit, "device key", clock)
        self.live = LiveLog(self.data.log, self.election, self.verifier, self.open_store, self._enrolled)
        self.sequencer: Sequencer | SequencerProcess | None = None
        self._started = False
        stored = None
        if config.sequence and config.workers > 0:  # in a process of its own (sequencer_process.py)
            self.sequencer = SequencerProcess(self.place, self.live.poke, config.fault)
        elif config.sequence:
            self.sequencer = Sequencer(
                self.open_store, self._open_writer, self.place.sequencer_lock(), self.live.poke, config.fault
            )
            stored = self.sequencer.hand_over
        # With workers, single POSTs are checked in processes of their own that the event loop talks to directly
        # (check_link.py); these threads then check only what those workers cannot.
        self.check_link = (
            CheckLink(
                config.workers,
                definition,
                str(self.authority.verifier),
                self._check_here,
                self.check_threads,
            )
            if config.workers > 0
            else None
        )
        self.ingest = Ingest(
            self.open_store(),
            self.election,
            self.authority,
            clock,
            self._pool,
            stored,
            config.workers,
        )

    def _check_here(self, data: bytes) -> Checked:
        """The stateless checks of one submission in this process (what a worker would have done)."""
        return check_one(data, self.election, self.verifier)

    def submitted_before(self, leaves: Sequence[bytes]) -> set[bytes]:
        """Which of these leaves were submitted before (resends are not charged to a device's rate limit)."""
        with self.reader_lock:
            return set(self.reader.submitted(leaves))

    def _enrolled(self, device: str, mesas: list[str]) -> None:
        self.ingest.add_enrollment(device, mesas)

    def open_store(self) -> SubmissionStore:
        """A new connection to the configured store."""
        return self.place.open_store()

    def _open_writer(self, store: SubmissionStore) -> LogWriter:
        return self.place.open_writer(store, self.election, self.authority)

    def _prepare_store(self) -> None:
        """A new PostgreSQL store starts from the data directory's SQLite log (its election and enrollments)."""
        if self.config.db is None:
            if not self.data.database.exists():
                raise StorageError(f"{self.data.root}: no log database here")
            return
        target = self.open_store()
        try:
            if target.size() > 0 or not self.data.database.exists():
                return
            source = SqliteLogStore(self.data.database)
            try:
                for start in range(0, source.size(), 4096):
                    chunk = source.read(start, min(start + 4096, source.size()))
                    checked = check_entries(chunk, self.election, self.verifier)
                    entries = [c.entry for c in checked if c.entry is not None]
                    if len(entries) != len(chunk):
                        raise StorageError(f"{self.data.database}: an entry near {start} no longer checks")
                    if target.size() == start:
                        target.append(entries)
                log.info("copied %d entries from %s into PostgreSQL", source.size(), self.data.database)
            finally:
                source.close()
        finally:
            target.close()

    def start(self) -> None:
        """Start the verification workers, the live view and, when configured, the sequencer (once)."""
        if self._started:
            return
        self._started = True
        if self._pool is not None:
            # Every worker now, not on the first large batch: starting one and loading the election takes about
            # a second, which would otherwise fall on the first collection centre's upload.
            for _ in range(self.config.workers):
                self._pool.submit(check_chunk, [])
        if self.check_link is not None:
            self.check_link.start()
        self.live.start()
        if self.sequencer is not None:
            self.sequencer.start()

    def close(self) -> None:
        """Stop threads and worker processes, close stores."""
        if self.sequencer is not None:
            self.sequencer.stop()
        # Checks first: no new group goes to a worker, and those in one are answered. (The server has answered or
        # dropped its requests by now, so a verdict that arrives meanwhile finds the committer gone: "stopping".)
        if self.check_link is not None:
            self.check_link.close()
        self.check_threads.shutdown(cancel_futures=True)
        self.ingest.close()
        self.live.stop()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        self.reader.close()
