"""The live read side: the latest checkpoint, totals at exactly that checkpoint, and the event stream.

A follower thread watches the checkpoint file (written by whichever process sequences, so this works for every
process sharing a log directory), feeds the entries it newly covers to a running tally, and publishes an
immutable snapshot. Requests read the snapshot without locks; subscribers of /v1/events get each new one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from actas.core.b64 import b64encode
from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.note import Checkpoint, open_checkpoint
from actas.core.tally import Binding, ConflictRecord
from actas.errors import ActasError
from actas.storage.base import SubmissionStore

log = logging.getLogger("actas.live")
POLL = 0.2  # seconds between looks at the checkpoint file
COALESCE = 0.2  # at most this often a new snapshot: re-totalling every area costs tens of ms at 1 M mesas
READ_STEP = 8192
RECENT = 256  # checkpoints remembered, so a witness cosigning one slightly behind is still accepted
SUBSCRIBER_BACKLOG = 64  # events queued per event-stream client before it is dropped as too slow


@dataclass(frozen=True)
class Snapshot:
    """The checkpoint the read side serves, and counts at it; totals are read with LiveLog.rows()."""

    checkpoint_bytes: bytes
    checkpoint: Checkpoint
    conflicts: tuple[ConflictRecord, ...]
    counted: int  # mesas with a counted acta, over all contests

    @property
    def binding(self) -> Binding:
        """The checkpoint the totals are bound to."""
        return Binding(self.checkpoint.origin, self.checkpoint.size, self.checkpoint.root_hash)


_ACTAS, _REG, _NULL, _BLANK, _VOTES = 0, 1, 2, 3, 4  # the row layout of core.tally


class LiveTotals:
    """Per-area totals kept rolled up as entries arrive: each counted acta is added to its area and every ancestor.

    The entries come from this log's own store, already checked at ingest (signature, enrollment, rules), so they
    are read with the fast JSON parser; the first acta of each mesa and contest counts, as in core.tally.
    """

    def __init__(self, election: Election) -> None:
        self.election = election
        self.contests = {c.id: i for i, c in enumerate(election.contests)}
        self.widths = [_VOTES + len(c.options) for c in election.contests]
        self.rows = [array("q", bytes(8 * w * len(election.areas))) for w in self.widths]
        self.first: dict[tuple[str, str], int] = {}
        self.conflicts: dict[tuple[str, str], list[int]] = {}
        self.size = 0
        self.enrollments: list[tuple[str, list[str]]] = []  # new since last drained, for the enrollment check
        self._paths: dict[int, tuple[int, ...]] = {}

    def prepare(self, entries: list[bytes]) -> list[tuple[int, tuple[int, ...], list[int]]]:
        """Take the next entries in log order: decide which actas count, return their increments for apply()."""
        out: list[tuple[int, tuple[int, ...], list[int]]] = []
        for offset, data in enumerate(entries):
            value = json.loads(data)
            if value.get("type") == "enroll":
                self.enrollments.append((value["device"], value["mesas"]))
                continue
            if value.get("type") != "acta":
                continue
            key = (value["mesa"], value["contest"])
            leaf = self.size + offset
            if key in self.first:
                self.conflicts.setdefault(key, [self.first.get(key, -1)]).append(leaf)
                continue
            mesa, contest = self.election.mesa_index(key[0]), self.contests.get(key[1])
            if mesa is None or contest is None:
                continue
            self.first[key] = leaf
            area = self.election.mesa_area(mesa)
            path = self._paths.get(area)
            if path is None:
                path = self._paths[area] = self.election.area_path(area)
            increment = [1, value["registered"], value["null"], value["blank"], *value["options"]]
            out.append((contest, path, increment))
        self.size += len(entries)
        return out

    def apply(self, deltas: list[tuple[int, tuple[int, ...], list[int]]]) -> None:
        """Add prepared increments to every area on each acta's path."""
        for contest, path, increment in deltas:
            rows, width = self.rows[contest], self.widths[contest]
            for area in path:
                base = area * width
                for k, amount in enumerate(increment):
                    rows[base + k] += amount

    def conflict_records(self) -> tuple[ConflictRecord, ...]:
        """Conflicts in order of their first leaf."""
        ordered = sorted(self.conflicts.items(), key=lambda kv: kv[1][0])
        return tuple(ConflictRecord(mesa, contest, tuple(leaves)) for (mesa, contest), leaves in ordered)


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BACKLOG))


class LiveLog:
    """Follows the log directory's checkpoint and keeps a snapshot and the event subscribers up to date."""

    def __init__(
        self,
        log_dir: Path,
        election: Election,
        authority: Verifier,
        open_store: Callable[[], SubmissionStore],
        on_enroll: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        self._checkpoint_path = log_dir / "checkpoint"
        self._election = election
        self._authority = authority
        self._open_store = open_store
        self._store: SubmissionStore | None = None  # opened on first use, kept: opening costs a scan
        self._on_enroll = on_enroll
        self._totals = LiveTotals(election)
        self._snapshot: Snapshot | None = None
        self._recent: deque[Checkpoint] = deque(maxlen=RECENT)
        self._subscribers: list[_Subscriber] = []
        self._lock = threading.Lock()
        self._rows_lock = threading.Lock()
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actas-live", daemon=True)

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first checkpoint is read)."""
        return self._snapshot

    def rows(self, contest: int, areas: list[int]) -> tuple[Snapshot | None, list[list[int]]]:
        """The snapshot and, at exactly its checkpoint, the rolled-up totals rows of these areas of a contest."""
        width = self._totals.widths[contest]
        table = self._totals.rows[contest]
        with self._rows_lock:
            return self._snapshot, [list(table[a * width : (a + 1) * width]) for a in areas]

    def recent(self, size: int, root: bytes) -> Checkpoint | None:
        """A recently served checkpoint of this size and root, if any."""
        for checkpoint in list(self._recent):
            if checkpoint.size == size and checkpoint.root_hash == root:
                return checkpoint
        return None

    def start(self) -> None:
        """Read the current checkpoint, then follow it on a thread."""
        self.refresh()
        self._thread.start()

    def poke(self) -> None:
        """Look at the checkpoint now (the sequencer just signed one)."""
        self._poke.set()

    def stop(self) -> None:
        """Stop following and end every event stream."""
        self._stop.set()
        self._poke.set()
        if self._thread.ident is not None:  # started (a service that failed to start never started it)
            self._thread.join(timeout=30)
        if self._store is not None:
            self._store.close()
            self._store = None
        for subscriber in self._take_subscribers():
            subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(POLL)
            self._poke.clear()
            try:
                self.refresh()
            except ActasError as exc:
                log.warning("cannot follow the checkpoint: %s", exc)
            except OSError as exc:
                log.warning("cannot read the checkpoint: %s", exc)
            self._stop.wait(COALESCE)

    def refresh(self) -> None:
        """Take in a new checkpoint if there is one."""
        try:
            data = self._checkpoint_path.read_bytes()
        except FileNotFoundError:
            return
        current = self._snapshot
        if current is not None and data == current.checkpoint_bytes:
            return
        checkpoint = open_checkpoint(data, self._authority)
        if current is not None and checkpoint.size < current.checkpoint.size:
            return  # a stale writer's checkpoint: never go backwards
        totals = self._totals
        deltas: list[tuple[int, tuple[int, ...], list[int]]] = []
        if totals.size < checkpoint.size:
            if self._store is None:
                self._store = self._open_store()
            try:
                for start in range(totals.size, checkpoint.size, READ_STEP):
                    deltas += totals.prepare(self._store.read(start, min(start + READ_STEP, checkpoint.size)))
            except BaseException:
                # prepare() moved past the chunks read so far: start over rather than lose their increments.
                with self._rows_lock:
                    self._totals = LiveTotals(self._election)
                    self._snapshot = None
                raise
            if self._on_enroll is not None:
                for device, mesas in totals.enrollments:
                    self._on_enroll(device, mesas)
            totals.enrollments.clear()
        with self._rows_lock:  # totals and checkpoint change together: a reader sees both or neither
            totals.apply(deltas)
            snapshot = Snapshot(data, checkpoint, totals.conflict_records(), len(totals.first))
            self._snapshot = snapshot
        self._recent.append(checkpoint)
        self._publish(snapshot, changed=current is None or checkpoint.size != current.checkpoint.size)

    # -- events -------------------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[str | None]:
        """A queue of server-sent-event frames for the calling event loop, starting with the current state."""
        subscriber = _Subscriber(asyncio.get_running_loop())
        snapshot = self._snapshot
        if snapshot is not None:
            subscriber.queue.put_nowait(_checkpoint_event(snapshot))
        with self._lock:
            self._subscribers.append(subscriber)
        return subscriber.queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        """Stop sending events to a queue."""
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s.queue is not queue]

    def _take_subscribers(self) -> list[_Subscriber]:
        with self._lock:
            taken, self._subscribers = self._subscribers, []
        return taken

    def _publish(self, snapshot: Snapshot, changed: bool) -> None:
        frames = [_checkpoint_event(snapshot)]
        if changed:
            frames.append(_results_event(snapshot, self._election))
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            for frame in frames:
                try:
                    subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, frame)
                except RuntimeError:  # its event loop is closed
                    self.unsubscribe(subscriber.queue)


def _offer(queue: asyncio.Queue[str | None], frame: str | None) -> None:
    """Queue a frame; a client too slow to keep up gets an end-of-stream instead of unbounded memory."""
    try:
        queue.put_nowait(frame)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


def _frame(event: str, value: object, event_id: int) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(value, sort_keys=True, separators=(',', ':'))}\n\n"


def _checkpoint_event(snapshot: Snapshot) -> str:
    cp = snapshot.checkpoint
    value = {"origin": cp.origin, "root": b64encode(cp.root_hash), "size": cp.size}
    return _frame("checkpoint", value, cp.size)


def _results_event(snapshot: Snapshot, election: Election) -> str:
    value = {
        "checkpoint": snapshot.binding.to_value(),
        "counted": snapshot.counted,
        "expected": election.mesa_count * len(election.contests),
        "conflicts": len(snapshot.conflicts),
    }
    return _frame("results", value, snapshot.checkpoint.size)
