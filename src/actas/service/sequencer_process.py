"""The sequencer in a process of its own (with -j N), so that the service process's GIL serves requests only.

A sequencer step appends hundreds of entries, hashes tiles and signs a checkpoint. On a thread of the service
process that was tens of milliseconds of Python every step, during which the event loop and the committer waited
for the GIL: single POSTs lost about a sixth of their rate. Here the same Sequencer loop runs in a child process
with its own store connection and lock. It reads submissions back from the store (nothing is handed over across
processes), and it tells the service over a pipe when it starts or stops leading and when it signs a checkpoint.
It runs at a lower CPU priority than the service (NICENESS), ends with the service, even one killed with
SIGKILL, and the service starts another if it dies alone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from actas.core.election import Election
from actas.core.keys import Signer
from actas.log.validate import exit_with
from actas.service.sequencer import Fault, Sequencer
from actas.service.stores import LogPlace

log = logging.getLogger("actas.sequencer")
CHECKPOINT = "checkpoint"  # child to service: a new checkpoint is on disk (else a bool: leading or not)
STOP = "stop"  # service to child: finish the current step and end
RESTART_PAUSE = 1.0  # seconds before a sequencer process that died is started again
STOP_TIMEOUT = 60.0  # seconds a stopping sequencer may take to finish its step before it is killed
# Below the service and its check workers when the cores are all busy: stations get their receipts first, and the
# sequencer catches up as soon as ingest leaves it a core (on an idle machine niceness changes nothing). Measured
# with 18,000 actas in batches, -p 1 -j 2: receipted 10-15% faster, everything checkpointed no later.
NICENESS = 10


def run_sequencer(conn: Connection, place: LogPlace, fault: Fault | None, service: int) -> None:
    """The child: sequence until the service says stop, closes its end of the pipe, or dies."""
    # Ctrl-C in a terminal reaches the whole process group: the service stops this process itself. A service
    # manager's SIGTERM (to the whole group too) ends it as STOP does: the current step first, then exit code 0.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    exit_with(service)
    with contextlib.suppress(OSError):  # a platform without priorities: sequence at the service's
        os.nice(NICENESS)
    data = place.data
    election = Election.from_json(data.election.read_bytes())
    authority = Signer.parse(data.authority_key.read_text(encoding="utf-8").strip())
    telling = threading.Lock()

    def tell(message: str | bool) -> None:
        with telling, contextlib.suppress(OSError):  # the service is gone: exit_with ends this process
            conn.send(message)

    sequencer = Sequencer(
        place.open_store,
        lambda store: place.open_writer(store, election, authority),
        place.sequencer_lock(),
        lambda: tell(CHECKPOINT),
        fault,
        tell,
    )
    sequencer.start()
    with contextlib.suppress(EOFError, OSError, _Stopped):
        conn.recv()  # STOP, the end of the pipe, or SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping already
    sequencer.stop()


class _Stopped(Exception):
    """SIGTERM arrived: stop as on STOP."""


def _stop_on_signal(signum: int, frame: object) -> None:
    raise _Stopped


class SequencerProcess:
    """Runs the sequencer in a child process; is_leader says whether it sequences now; start() and stop() once."""

    def __init__(self, place: LogPlace, on_checkpoint: Callable[[], None], fault: Fault | None = None) -> None:
        self._place = place
        self._on_checkpoint = on_checkpoint
        self._fault = fault  # tests only: see Sequencer (it must pickle: the child gets it)
        self.is_leader = False
        self._stopping = threading.Event()
        self._guard = threading.Lock()  # a child is started, or the whole is stopped, never both at once
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._listen, name="actas-sequencer-link", daemon=True)

    @property
    def pid(self) -> int | None:
        """The current sequencer process's id (None before start)."""
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start the child and the thread that listens to it."""
        if self._spawn():
            self._thread.start()

    def _spawn(self) -> bool:
        """Start a child unless stopping; whether one was started."""
        with self._guard:
            if self._stopping.is_set():
                return False
            context = multiprocessing.get_context("forkserver")  # not fork: see Runtime (the sequencer's flock)
            here, child = context.Pipe()
            process = context.Process(
                target=run_sequencer,
                args=(child, self._place, self._fault, os.getpid()),
                name="actas-sequencer",
                daemon=True,
            )
            try:
                process.start()
            except BaseException:
                here.close()
                raise
            finally:
                child.close()
            self._process, self._conn = process, here
            return True

    def _listen(self) -> None:
        while True:
            conn, process = self._conn, self._process
            assert conn is not None and process is not None
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the child ended: stopped, or died
                self.is_leader = False
                if self._stopping.is_set():
                    return
                process.join(timeout=5)
                conn.close()
                if process.exitcode == 0:  # stopped on purpose (SIGTERM): the service is stopping too, as a rule
                    log.warning("the sequencer process was stopped; this service process no longer sequences")
                    return
                log.error("the sequencer process ended (exit code %s); starting another", process.exitcode)
                if not self._restart():
                    return
                continue
            if message == CHECKPOINT:
                self._on_checkpoint()
            else:
                self.is_leader = bool(message)

    def _restart(self) -> bool:
        """Start a new child after a pause, trying again while it fails; False once stopping."""
        while not self._stopping.wait(RESTART_PAUSE):
            try:
                return self._spawn()
            except Exception:
                log.exception("cannot start the sequencer process; trying again")
        return False

    def stop(self) -> None:
        """Let the child finish its step and end (killed after STOP_TIMEOUT); idempotent."""
        with self._guard:
            self._stopping.set()
            conn, process = self._conn, self._process
        if conn is None or process is None:
            return
        with contextlib.suppress(OSError):
            conn.send(STOP)
        process.join(timeout=STOP_TIMEOUT)
        if process.is_alive():
            log.error("the sequencer process did not stop in %.0f s; killing it", STOP_TIMEOUT)
            process.kill()
            process.join(timeout=5)
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        conn.close()
        self.is_leader = False
