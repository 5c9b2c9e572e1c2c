"""Ingest.store_one: single POSTs wait on their event loop, and a group commit answers them all in one call there."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from actas.core.election import Election
from actas.core.receipt import parse_receipt
from actas.errors import EnrollmentError, StorageError
from actas.service.ingest import Accepted, Ingest, Outcome
from actas.storage.base import Stored, Submission
from actas.storage.memory import MemoryLogStore
from tests.service.conftest import Election as Data
from tests.service.test_ingest_parts import AUTHORITY, item

T = TypeVar("T")


class GatedStore(MemoryLogStore):
    """A store whose next submit() waits for the test to open the gate (the committer is then busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.failure: StorageError | None = None

    def submit(self, items: Sequence[Submission], batch: Any = None) -> list[Stored]:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.failure is not None:
            raise self.failure
        return super().submit(items, batch)


@pytest.fixture
def store() -> GatedStore:
    return GatedStore()


@pytest.fixture
def ingest(election: Data, store: GatedStore) -> Iterator[Ingest]:
    """An Ingest over the gated store; device "dev" is enrolled for mesas m0…m19."""
    definition = Election.from_json((election.root / "election.json").read_bytes())
    running = Ingest(store, definition, AUTHORITY, lambda: 1_750_000_000.0)
    running.add_enrollment("dev", [f"m{n}" for n in range(20)])
    yield running
    running.close()


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async test body on a fresh event loop."""
    return asyncio.run(test())


async def answered(*waiters: asyncio.Future[Outcome]) -> list[Outcome]:
    """Every waiter's outcome, in order; a waiter left unanswered fails the test instead of hanging it."""
    return await asyncio.wait_for(asyncio.gather(*waiters), 10)


async def busy_committer(ingest: Ingest, store: GatedStore) -> asyncio.Future[Outcome]:
    """Hold the committer inside a commit of item 0; its waiter is answered once the gate opens."""
    store.gate.clear()
    first = ingest.store_one(item(0))
    assert await asyncio.to_thread(store.entered.wait, 10)
    return first


def count_calls(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Count loop.call_soon_threadsafe calls (the committer's hops onto the loop)."""
    calls: list[int] = []
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign, assignment]
    return calls


def test_the_requests_of_one_group_commit_are_answered_in_one_call_on_their_loop(
    ingest: Ingest, store: GatedStore
) -> None:
    async def body() -> list[Outcome]:
        first = await busy_committer(ingest, store)
        calls = count_calls(asyncio.get_running_loop())
        waiting = [ingest.store_one(item(n)) for n in range(1, 9)]  # queued behind the held commit: one group
        store.gate.set()
        outcomes = await answered(first, *waiting)
        assert len(calls) == 2, "not one call per group commit (item 0's, then the other eight's)"
        return outcomes

    outcomes = run(body)
    assert all(isinstance(o, Accepted) and o.status == "accepted" for o in outcomes)
    receipts = [parse_receipt(o.receipt_json.encode()) for o in outcomes if isinstance(o, Accepted)]
    assert [r.batch_size for r in receipts] == [1] + [8] * 8
    for outcome, receipt in zip(outcomes, receipts, strict=True):
        receipt.check(AUTHORITY.verifier)
        assert isinstance(outcome, Accepted)
        assert receipt.leaf_hash == outcome.leaf_hash


def test_an_unenrolled_acta_is_answered_at_once_and_never_stored(ingest: Ingest, store: GatedStore) -> None:
    async def body() -> None:
        waiter = ingest.store_one(item(42))  # no enrollment for m42
        assert waiter.done()
        assert isinstance(waiter.result(), EnrollmentError)

    run(body)
    assert not store.entered.is_set()


def test_a_failed_group_commit_answers_every_waiter_with_the_failure(ingest: Ingest, store: GatedStore) -> None:
    async def body() -> list[Outcome]:
        first = await busy_committer(ingest, store)
        store.failure = StorageError("disk full")
        waiting = [ingest.store_one(item(n)) for n in range(1, 4)]
        store.gate.set()
        return await answered(first, *waiting)

    outcomes = run(body)
    assert [str(o) for o in outcomes] == ["disk full"] * 4
    assert all(isinstance(o, StorageError) for o in outcomes)


def test_a_cancelled_request_does_not_keep_the_others_of_its_group_from_their_answers(
    ingest: Ingest, store: GatedStore
) -> None:
    async def body() -> list[Outcome]:
        first = await busy_committer(ingest, store)
        waiting = [ingest.store_one(item(n)) for n in range(1, 5)]
        waiting[1].cancel()  # its client went away
        store.gate.set()
        return await answered(first, waiting[0], *waiting[2:])

    outcomes = run(body)
    assert [o.status for o in outcomes if isinstance(o, Accepted)] == ["accepted"] * 4


def test_after_close_a_request_hears_the_service_is_stopping(ingest: Ingest) -> None:
    ingest.close()

    async def body() -> None:
        with pytest.raises(StorageError, match="stopping"):
            await answered(ingest.store_one(item(1)))

    run(body)


def test_the_committer_outlives_a_failure_while_answering(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while answering one group is logged; the committer goes on and answers the next group."""
    answer = ingest._answer
    calls: list[int] = []

    def failing_once(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("answering failed")
        answer(*args)

    monkeypatch.setattr(ingest, "_answer", failing_once)
    ingest.store([item(1)])  # its answer is lost with the failure
    deadline = time.monotonic() + 10
    while not calls:  # item 1's group answered (and failed) before item 2 is queued: a group of its own
        assert time.monotonic() < deadline, "the first group was never answered"
        time.sleep(0.01)
    (outcome,) = ingest.store([item(2)]).result(timeout=10)
    assert isinstance(outcome, Accepted)
    assert outcome.status == "accepted"
