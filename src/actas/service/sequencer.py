"""The sequencer loop: moves stored submissions into the log, one holder at a time.

With PostgreSQL several processes run this loop; a session advisory lock lets exactly one of them sequence, and
when its process dies PostgreSQL drops the lock and another takes over within a poll interval. With SQLite the
lock is an flock beside the database, which the kernel releases when its holder dies. Appending is idempotent
(the writer deduplicates by leaf hash), so a crash between appending and taking submissions off the queue only
makes the next holder see duplicates.

The queue in the store is the truth; what this process's ingest has just stored is also handed over in memory,
so a step reads only positions and leaf hashes back and fetches from the store just the payloads it does not hold
(another process's submissions, or everything after a restart).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from actas.errors import ActasError, StorageError
from actas.log.validate import Checked
from actas.log.writer import LogWriter
from actas.storage.base import Pending, Submission, SubmissionStore

log = logging.getLogger("actas.sequencer")
BATCH = 8192
IDLE_WAIT = 0.05  # seconds between looks at the queue when nothing woke the loop
LOCK_POLL = 1.0  # seconds between attempts to become the sequencer
CADENCE = 0.2  # at most this often a checkpoint, unless a full batch waits: fewer partial tiles and fsyncs
HELD_MAX = 4 * BATCH  # handed-over submissions kept at most; beyond that the sequencer reads them back instead


class Lock(Protocol):
    """Who may sequence: try_acquire() once, then held() before every batch."""

    def try_acquire(self) -> bool:
        """Become the sequencer if nobody is."""
        ...

    def held(self) -> bool:
        """Whether this process still is the sequencer."""
        ...

    def release(self) -> None:
        """Stop being the sequencer."""
        ...


Fault = Callable[[Sequence[Pending]], Sequence[Pending]]


def pause_after(taken: int, elapsed: float) -> float:
    """Seconds to wait after a step that took entries in elapsed seconds: none while full batches wait."""
    if taken >= BATCH:
        return 0.0
    return max(0.0, CADENCE - elapsed)  # the cadence runs from the start of a step: a long step waits less after


class Sequencer:
    """Runs the sequencing loop on a thread; calls on_checkpoint(size) after each new checkpoint."""

    def __init__(
        self,
        open_store: Callable[[], SubmissionStore],
        open_writer: Callable[[SubmissionStore], LogWriter],
        lock: Lock,
        on_checkpoint: Callable[[], None],
        fault: Fault | None = None,
        on_lead: Callable[[bool], None] | None = None,
    ) -> None:
        self._open_store = open_store
        self._open_writer = open_writer
        self._lock = lock
        self._on_checkpoint = on_checkpoint
        self._fault = fault  # tests only: drop queued submissions instead of logging them
        self._on_lead = on_lead  # told when this loop starts and stops sequencing
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Handed over by this process's ingest, by leaf hash, with the number of the hand-over (in that order).
        self._held: dict[bytes, tuple[int, Submission]] = {}
        self._handed = 0
        self._held_lock = threading.Lock()
        self.is_leader = False
        self._thread = threading.Thread(target=self._run, name="actas-sequencer", daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def wake(self) -> None:
        """Tell the loop submissions are waiting."""
        self._wake.set()

    def hand_over(self, stored: Sequence[Submission]) -> None:
        """Take submissions this process has just stored for the first time, and wake the loop.

        Only a hint: a stored submission never changes, so whatever is held is right for its leaf, whenever it
        is taken; what is not held is read from the store.
        """
        if self.is_leader:  # a process that does not sequence would only fill memory
            with self._held_lock:
                if len(self._held) + len(stored) > HELD_MAX:  # fallen far behind: the store has them all
                    self._held.clear()
                self._handed += 1
                for item in stored:
                    self._held[item.entry.entry_hash] = (self._handed, item)
        self._wake.set()

    def _forget_held(self) -> None:
        with self._held_lock:
            self._held.clear()

    def stop(self) -> None:
        """Stop the loop after its current batch."""
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:  # started (a service that failed to start never started it)
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._lock.try_acquire():
                    self._stop.wait(LOCK_POLL)
                    continue
            except ActasError as exc:
                log.warning("cannot take the sequencer lock: %s", exc)
                self._stop.wait(LOCK_POLL)
                continue
            try:
                self._lead()
            except ActasError as exc:  # storage trouble: give up the lead, retry after a pause
                log.error("sequencer stopped: %s", exc)
                self._stop.wait(LOCK_POLL)
            except Exception:  # a bug or an OS error must not silently end sequencing while receipts go out
                log.exception("sequencer failed; giving up the lead and trying again")
                self._stop.wait(LOCK_POLL)
            finally:
                self._lead_changed(False)
                self._forget_held()  # another process sequences them now
                with contextlib.suppress(ActasError):
                    self._lock.release()

    def _lead_changed(self, leads: bool) -> None:
        self.is_leader = leads
        if self._on_lead is not None:
            self._on_lead(leads)

    def _lead(self) -> None:
        store = self._open_store()
        try:
            writer = self._open_writer(store)  # integrates whatever a dead sequencer left half done
            self._forget_held()  # anything left from an earlier lead was sequenced by another process since
            self._lead_changed(True)
            log.info("sequencing from size %d", writer.size)
            self._on_checkpoint()
            while not self._stop.is_set() and self._lock.held():
                began = time.monotonic()
                taken = self._step(store, writer)
                if taken == 0:
                    self._wake.wait(IDLE_WAIT)
                    self._wake.clear()
                else:
                    self._stop.wait(pause_after(taken, time.monotonic() - began))
        finally:
            store.close()

    def _take(self, store: SubmissionStore) -> list[Pending]:
        """The next queued submissions, in queue order: held payloads where this process has them."""
        with self._held_lock:  # never held across a query: ingest hands over on its way to every receipt
            holding, mark = bool(self._held), self._handed
        if not holding:
            return store.pending(BATCH)
        queued = store.pending_leaves(BATCH)
        found: dict[bytes, Submission] = {}
        with self._held_lock:
            for _, leaf in queued:
                held = self._held.pop(leaf, None)
                if held is not None:
                    found[leaf] = held[1]
            if len(queued) < BATCH:
                self._drop_sequenced(mark)
        missing = [leaf for _, leaf in queued if leaf not in found]
        if missing:
            found.update(store.submitted(missing))
        lost = [leaf for _, leaf in queued if leaf not in found]
        if lost:
            raise StorageError(f"queued submission {lost[0].hex()} is not among the stored submissions")
        return [Pending(seq, found[leaf]) for seq, leaf in queued]

    def _drop_sequenced(self, mark: int) -> None:
        """Forget what was handed over by hand-over mark and is not queued: the whole queue was just read.

        Ingest hands over after its commit, so those were stored before the read; not queued, they are sequenced
        already (a step that read the queue between a commit and its hand-over took them from the store).
        """
        done = []
        for leaf, (number, _) in self._held.items():  # in hand-over order
            if number > mark:
                break
            done.append(leaf)
        for leaf in done:
            del self._held[leaf]

    def _step(self, store: SubmissionStore, writer: LogWriter) -> int:
        pending = self._take(store)
        if not pending:
            return 0
        take = pending if self._fault is None else self._fault(pending)
        checked = [Checked(p.submission.entry, None, (), p.submission.signer) for p in take]
        results = writer.append_checked(checked) if checked else []
        for item, result in zip(take, results, strict=True):
            if result.status == "rejected":  # cannot happen for checked submissions; never silently
                log.error("queued submission %d rejected at sequencing: %s", item.seq, result.error)
        store.mark_sequenced([p.seq for p in pending])
        self._on_checkpoint()
        return len(pending)
