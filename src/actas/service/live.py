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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from actas.core.b64 import b64encode
from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.note import Checkpoint, open_checkpoint
from actas.core.tally import Binding, ConflictRecord
from actas.errors import ActasError, MalformedError
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
# Canonical entries end with their last members in key order, so these endings name the type without parsing
# (an observation ends with "witness"; a '"' inside a string is always escaped).
_ACTA_END = b',"type":"acta","v":1}'
_ENROLL_END = b',"type":"enroll","v":1}'
_NOT_NUMBER = bytes(b for b in range(256) if b not in b"0123456789,-")  # keys, quotes and brackets
Delta = tuple[int, NDArray[np.intp], NDArray[np.int64]]  # a contest, leaf areas, their actas' increment rows


class LiveTotals:
    """Per-area totals kept rolled up as entries arrive: each counted acta is added to its area and every ancestor.

    Entries come from this log's own store, checked at ingest (canonical, signed, within the rules), so actas are
    read by slicing their bytes, a batch at once in numpy; the first acta of each mesa and contest counts.
    """

    def __init__(self, election: Election) -> None:
        self.election = election
        self.contests = {c.id.encode(): i for i, c in enumerate(election.contests)}
        self.widths = [_VOTES + len(c.options) for c in election.contests]
        areas = len(election.areas)
        self.rows = [np.zeros((areas + 1, w), np.int64) for w in self.widths]  # + a spare row for path padding
        self.first: dict[tuple[bytes, bytes], int] = {}  # (mesa, contest) → leaf of the acta counted
        self.conflicts: dict[tuple[bytes, bytes], list[int]] = {}
        self.size = 0
        self.enrollments: list[tuple[str, list[str]]] = []  # new since last drained, for the enrollment check
        ids = np.array(election.mesa_ids() or ("",), "S")  # "" (no acta's mesa) keeps searchsorted in range
        self._order = np.argsort(ids)  # mesa ids sorted, for look-up by np.searchsorted
        self._ids = ids[self._order]
        self._mesa_area = np.frombuffer(election.mesa_area_column(), np.uint32)
        # Row a of _paths: area a, its parent, grandparent, …, padded with the spare row; apply() adds per column.
        parents = np.array([a.parent if a.parent >= 0 else areas for a in election.areas] + [areas], np.intp)
        columns = [np.arange(areas, dtype=np.intp)]
        for _ in election.levels[1:]:
            columns.append(parents[columns[-1]])
        self._paths = np.stack(columns, axis=1)

    def prepare(self, entries: list[bytes]) -> list[Delta]:
        """Take the next entries in log order: decide which actas count, return their increments for apply()."""
        first, conflicts, contests = self.first, self.conflicts, self.contests
        keys: list[list[tuple[bytes, bytes]]] = [[] for _ in self.widths]
        numbers: list[list[bytes]] = [[] for _ in self.widths]
        for offset, data in enumerate(entries):
            if not data.endswith(_ACTA_END):
                if data.endswith(_ENROLL_END):
                    value = json.loads(data)
                    self.enrollments.append((value["device"], value["mesas"]))
                continue
            # {"blank":B,"contest":"C",…,"mesa":"M","null":N,"options":[…],"registered":R,"sig":… (ids need no escapes)
            sig = data.rfind(b',"sig":"')
            comma = data.find(b",", 9)
            contest_end = data.find(b'"', comma + 12)
            mesa_at = data.rfind(b',"mesa":"', contest_end, sig) + 9
            mesa_end = data.find(b'"', mesa_at)
            key = (data[mesa_at:mesa_end], data[comma + 12 : contest_end])
            if key in first:
                conflicts.setdefault(key, [first[key]]).append(self.size + offset)
                continue
            contest = contests.get(key[1])
            if contest is None:
                continue
            first[key] = self.size + offset  # provisional: _increments() drops it if the mesa is unknown
            keys[contest].append(key)
            numbers[contest] += (data[9:comma], data[mesa_end + 9 : sig])  # B, and N,"options":[…],"registered":R
        self.size += len(entries)
        return [self._increments(c, k, numbers[c]) for c, k in enumerate(keys) if k]

    def _increments(self, contest: int, keys: list[tuple[bytes, bytes]], numbers: list[bytes]) -> Delta:
        query = np.array([mesa for mesa, _ in keys])
        at = np.searchsorted(self._ids, query).clip(max=len(self._ids) - 1)
        known = self._ids[at] == query
        for key in (k for k, ok in zip(keys, known.tolist(), strict=True) if not ok):
            del self.first[key]  # an unknown mesa never counts, so its repeats in this batch are no conflicts
            self.conflicts.pop(key, None)
        parsed = np.fromstring(b",".join(numbers).translate(None, _NOT_NUMBER), np.int64, sep=",")
        if parsed.size != len(keys) * (self.widths[contest] - 1):
            raise MalformedError(f"live totals: an acta's counts do not fit contest {contest}")
        # Read as blank, null, options…, registered; laid out as actas, registered, null, blank, options…
        parsed = parsed.reshape(len(keys), -1)[known]
        rows = np.hstack((np.ones((len(parsed), 1), np.int64), parsed[:, [-1, 1, 0]], parsed[:, 2:-1]))
        return contest, self._mesa_area[self._order[at[known]]].astype(np.intp), rows

    def apply(self, deltas: list[Delta]) -> None:
        """Add prepared increments to every area on each acta's path."""
        for contest, areas, increments in deltas:
            for column in self._paths[areas].T:
                np.add.at(self.rows[contest], column, increments)

    def conflict_records(self) -> tuple[ConflictRecord, ...]:
        """Conflicts in order of their first leaf."""
        ordered = sorted(self.conflicts.items(), key=lambda kv: kv[1][0])
        return tuple(ConflictRecord(m.decode(), c.decode(), tuple(leaves)) for (m, c), leaves in ordered)


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
        with self._rows_lock:
            rows: list[list[int]] = self._totals.rows[contest][areas].tolist()
            return self._snapshot, rows

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
        deltas: list[Delta] = []
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
