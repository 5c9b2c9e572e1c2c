"""Single submissions checked in worker processes in groups: own verdicts, bounded groups, nobody left waiting."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from actas.core import canonical
from actas.core.b64 import b64decode
from actas.core.election import Election
from actas.errors import StorageError
from actas.log.validate import Checked, check_entries, check_one, init_worker
from actas.service.check_groups import GROUP_MAX, CheckGroups
from actas.service.ratelimit import Limit
from tests.service.conftest import Election as Data
from tests.service.conftest import LiveServer
from tests.service.station import authority_of, flip_signature
from tests.service.test_errors import (
    acta_of,
    assert_problem,
    device_of,
    post,
    rejected,
    rogue_key,
    sign,
    variant,
    with_sig,
)


def verdict(checked: Checked) -> tuple[object, ...]:
    """What a check decided, comparable across processes (errors by type and text)."""
    error = checked.error
    return (checked.entry, type(error), str(error) if error else None, checked.warnings, checked.signer)


class GatedPool(Executor):
    """Checks groups on threads of this process once the gate opens, recording each group and how many ran at once."""

    def __init__(self, election: Election, data: Data) -> None:
        self.election = election
        self.authority = authority_of(data.root)
        self.gate = threading.Event()
        self.groups: list[int] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(8)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        chunk: Sequence[bytes] = args[0]
        with self._lock:
            self.groups.append(len(chunk))
            self.running += 1
            self.most_running = max(self.most_running, self.running)

        def run() -> list[Checked]:
            self.gate.wait(10)
            with self._lock:
                self.running -= 1
            return check_entries(chunk, self.election, self.authority)

        return self._threads.submit(run)


@pytest.fixture
def definition(election: Data) -> Election:
    return Election.from_json((election.root / "election.json").read_bytes())


@pytest.fixture
def workers(election: Data, definition: Election) -> Iterator[ProcessPoolExecutor]:
    """Two real verification workers, started as the service starts them."""
    pool = ProcessPoolExecutor(
        2,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=init_worker,
        initargs=(definition.to_canonical(), str(authority_of(election.root))),
    )
    yield pool
    pool.shutdown(cancel_futures=True)


def test_each_submission_gets_its_own_verdict_from_the_workers(
    election: Data, definition: Election, workers: ProcessPoolExecutor
) -> None:
    """Good and forged actas sent at once from several threads: each future holds what check_one says of it."""
    groups = CheckGroups(workers, 2)
    items = [flip_signature(a) if n % 3 == 0 else a for n, a in enumerate(election.actas)]
    futures: dict[int, Future[Checked]] = {}

    def send(start: int) -> None:
        for n in range(start, len(items), 4):
            futures[n] = groups.check(items[n])

    senders = [threading.Thread(target=send, args=(start,)) for start in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    authority = authority_of(election.root)
    try:
        for n, data in enumerate(items):
            assert verdict(futures[n].result(timeout=30)) == verdict(check_one(data, definition, authority))
        assert sum(futures[n].result().error is not None for n in futures) == len(range(0, len(items), 3))
    finally:
        groups.close()


def test_groups_grow_while_every_worker_is_busy(election: Data, definition: Election) -> None:
    """At most one group per worker in flight; what arrives meanwhile waits and goes in the next, ≤ GROUP_MAX."""
    pool = GatedPool(definition, election)
    groups = CheckGroups(pool, 2)
    items = (election.actas * 4)[:150]
    futures = []
    for data in items[:3]:  # one at a time: the first two go out alone, the third finds both workers busy
        futures.append(groups.check(data))
        time.sleep(0.05)
    futures += [groups.check(data) for data in items[3:]]
    time.sleep(0.1)
    assert pool.groups == [1, 1]
    pool.gate.set()
    try:
        results = [f.result(timeout=30) for f in futures]
    finally:
        groups.close()
    assert [r.entry.data if r.entry else None for r in results] == items
    assert pool.groups == [1, 1, GROUP_MAX, GROUP_MAX, len(items) - 2 - 2 * GROUP_MAX]
    assert pool.most_running == 2


def test_a_closed_checker_refuses_at_once_and_leaves_nobody_waiting(election: Data, definition: Election) -> None:
    pool = GatedPool(definition, election)
    groups = CheckGroups(pool, 1)
    queued = [groups.check(data) for data in election.actas[:20]]
    closing = threading.Thread(target=groups.close)
    closing.start()
    pool.gate.set()
    closing.join(timeout=30)
    assert not closing.is_alive()
    for future in queued:  # sent before the stop, or failed by it: answered either way
        error = future.exception(timeout=10)
        if error is None:
            assert future.result().entry is not None
        else:
            assert isinstance(error, StorageError)
            assert "stopping" in str(error)
    with pytest.raises(StorageError, match="stopping"):
        groups.check(election.actas[0]).result(timeout=1)


class RefusingPool(Executor):
    """A pool already shut down."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise RuntimeError("cannot schedule new futures after shutdown")


class CancellingPool(Executor):
    """A pool shut down with its queued work cancelled."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.cancel()
        return future


@pytest.mark.parametrize(
    ("pool", "error", "message"),
    [(RefusingPool(), RuntimeError, "shutdown"), (CancellingPool(), StorageError, "stopping")],
    ids=["refused", "cancelled"],
)
def test_a_pool_that_cannot_check_fails_its_callers(
    election: Data, pool: Executor, error: type[Exception], message: str
) -> None:
    groups = CheckGroups(pool, 1)
    futures = [groups.check(data) for data in election.actas[:5]]
    try:
        for future in futures:
            with pytest.raises(error, match=message):
                future.result(timeout=10)
        with pytest.raises(error, match=message):  # the slot was given back: the next group is tried too
            groups.check(election.actas[5]).result(timeout=10)
    finally:
        groups.close()


def test_every_answer_to_a_single_post_is_the_same_when_checked_in_workers(
    serve: Callable[..., LiveServer], election: Data
) -> None:
    """With worker processes (-j 2) single POSTs are checked there: each error class, resends and conflicts alike."""
    server = serve(workers=2, device_limit=Limit(rate=0.001, burst=1))
    first = post(server, election.actas[0])
    assert first.status_code == 201, first.text
    resend = post(server, election.actas[0])
    assert resend.status_code == 200
    assert canonical.encode(resend.json()["receipt"]) == canonical.encode(first.json()["receipt"])
    rejected(server, b"{not json", 400, "malformed", "invalid JSON")
    data = election.actas[1]
    signature = bytearray(b64decode(canonical.decode(data)["sig"], "sig", 64))
    signature[17] ^= 0x04
    rejected(server, with_sig(data, bytes(signature)), 422, "bad-signature", "device signature does not verify")
    acta = acta_of(election.actas[2])
    null = acta.registered - acta.valid_votes - acta.blank + 1
    over = sign(dataclasses.replace(acta, null=null), device_of(election, acta.mesa))
    rejected(server, over, 422, "rule-broken", f"exceeds registered {acta.registered}")
    rejected(server, sign(acta_of(election.actas[3]), rogue_key()), 403, "unenrolled-key", "not enrolled")
    limited = post(server, variant(election, 0))  # device 0's burst went on its first acta
    assert_problem(limited, 429, "rate-limited", "rate limit of device key")
    assert post(server, election.actas[4]).status_code == 201
