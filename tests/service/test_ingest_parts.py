"""The committer: long requests in parts, one batch's failure kept to its own items."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import actas.service.ingest as ingest_module
from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.receipt import parse_receipt
from actas.errors import StorageError
from actas.log.validate import Checked
from actas.service.ingest import Accepted, Ingest
from actas.storage.base import NewEntry
from actas.storage.memory import MemoryLogStore
from tests.service.conftest import Election as Data

AUTHORITY = Signer.from_seed("results.example.org/ingest", b"\x07" * 32)


def item(n: int) -> Checked:
    """A checked acta for mesa m<n> (the committer does not check again)."""
    data = b"acta %d" % n
    return Checked(NewEntry(data, hashlib.sha256(data).digest(), "acta", mesa=f"m{n}", contest="c"), None, (), "dev")


@pytest.fixture
def ingest(election: Data) -> Iterator[Ingest]:
    """An Ingest over an in-memory store (the stores have their own suite)."""
    definition = Election.from_json((election.root / "election.json").read_bytes())
    running = Ingest(MemoryLogStore(), definition, AUTHORITY, lambda: 1_750_000_000.0)
    yield running
    running.close()


def test_a_long_request_is_committed_in_parts_and_answered_in_order(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past JOB_MAX items a request becomes several commits; the answer keeps the request's order."""
    monkeypatch.setattr(ingest_module, "JOB_MAX", 4)
    monkeypatch.setattr(ingest_module, "COMMIT_MAX", 4)
    outcomes = ingest.store([item(n) for n in range(11)]).result(timeout=10)
    expected = [item(n).entry for n in range(11)]
    assert [o.leaf_hash for o in outcomes if isinstance(o, Accepted)] == [e.entry_hash for e in expected if e]
    receipts = [parse_receipt(o.receipt_json.encode()) for o in outcomes if isinstance(o, Accepted)]
    assert max(r.batch_size for r in receipts) <= 8  # no batch past COMMIT_MAX + JOB_MAX leaves
    assert len({r.signature for r in receipts}) >= 2
    for receipt in receipts:
        receipt.check(AUTHORITY.verifier)


def test_a_receipt_that_cannot_be_made_fails_only_its_item(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resend whose stored batch cannot be read gets a storage error; the new acta beside it is answered."""
    first = ingest.store([item(1)]).result(timeout=10)[0]
    assert isinstance(first, Accepted)
    ingest._batches.clear()  # as after a restart: the batch must come from the store
    ingest._kept_leaves = 0

    def unreadable(batch: int) -> None:
        raise StorageError(f"batch {batch}: disk error")

    monkeypatch.setattr(ingest._store, "receipt_batch", unreadable)
    resent, new = ingest.store([item(1), item(2)]).result(timeout=10)
    assert isinstance(resent, StorageError)
    assert isinstance(new, Accepted)
    assert new.status == "accepted"
    parse_receipt(new.receipt_json.encode()).check(AUTHORITY.verifier)
    monkeypatch.undo()
    again = ingest.store([item(1)]).result(timeout=10)[0]  # readable again: the first receipt, byte for byte
    assert isinstance(again, Accepted)
    assert again.receipt_json == first.receipt_json


def test_the_cache_of_recent_batches_stays_bounded_by_leaves(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small commits: the oldest batches are dropped once the kept leaves pass the bound, newest kept."""
    monkeypatch.setattr(ingest_module, "BATCH_LEAVES_KEPT", 10)
    for n in range(0, 30, 3):  # ten commits of three new leaves, then a resend of the newest
        ingest.store([item(n), item(n + 1), item(n + 2)]).result(timeout=10)
    kept = list(ingest._batches.values())
    assert sum(len(b.leaves) for b in kept) == ingest._kept_leaves == 9
    newest = [item(n).entry for n in (27, 28, 29)]
    assert kept[-1].leaves == tuple(e.entry_hash for e in newest if e is not None)
    again = ingest.store([item(29)]).result(timeout=10)[0]
    assert isinstance(again, Accepted)
    assert again.status == "duplicate"
    assert ingest._kept_leaves == 9


def test_a_check_cancelled_by_shutdown_fails_its_caller(ingest: Ingest, election: Data) -> None:
    """A single submission still queued for a check when the check threads shut down is answered, not left waiting."""
    threads = ThreadPoolExecutor(1)
    gate = threading.Event()
    threads.submit(gate.wait)  # the only thread is busy: the next check stays queued
    waiting = ingest.check_and_store(election.actas[0], threads)
    threads.shutdown(wait=False, cancel_futures=True)
    gate.set()
    with pytest.raises(StorageError, match="stopping"):
        waiting.result(timeout=10)


def test_storing_after_close_fails_at_once(election: Data) -> None:
    """Once the committer has stopped, a store is refused at once instead of queued for nobody."""
    definition = Election.from_json((election.root / "election.json").read_bytes())
    closed = Ingest(MemoryLogStore(), definition, AUTHORITY, lambda: 1_750_000_000.0)
    closed.close()
    with pytest.raises(StorageError, match="stopping"):
        closed.store([item(1)]).result(timeout=1)
