"""Regression tests for the fixes of commit 14c2961 (an independent review of the service), over real HTTP.

Conflicting actas settled by transmit, batches charged per line, free resends, a live view that starts over after
a failed catch-up, and cosignatures of checkpoints another process signed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import actas.service.live as live_module
from actas.core.election import Election as Definition
from actas.core.keys import Verifier
from actas.core.merkle import leaf_hash
from actas.core.note import add_signatures, cosign_checkpoint, open_checkpoint, parse_note
from actas.core.receipt import parse_receipt
from actas.errors import ActasError, StorageError
from actas.publish.results import compute_results
from actas.service.live import LiveLog
from actas.service.outbox import Outbox
from actas.service.ratelimit import Limit
from actas.service.runtime import ServiceConfig
from actas.service.server import serve as serve_forever
from actas.service.transmit import Event, transmit
from actas.simulate.run import simulate
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from tests.service.conftest import MESAS, SEED, Election, LiveServer
from tests.service.station import ELECTION_ENTRIES, authority_of
from tests.service.test_errors import (
    assert_not_stored,
    assert_problem,
    assert_stored,
    post,
    post_batch,
    settle,
    variant,
)
from tests.service.witnesses import NOW, W1, forge, grow, served

TEXT = {"content-type": "text/plain; charset=utf-8"}


# -- transmit ------------------------------------------------------------------------------------------------------


def test_transmit_keeps_the_receipt_of_a_conflicting_acta(
    election: Election, server: LiveServer, tmp_path: Path
) -> None:
    """A conflicting acta (answered 409 problem+json) is receipted as a conflict by transmit, not retried."""
    authority = authority_of(election.root)
    first, second = election.actas[8], variant(election, 8)
    outbox = Outbox(tmp_path / "outbox")
    outbox.enqueue(first)
    assert transmit(outbox, server.url, authority).sent == 1
    outbox.enqueue(second)
    events: list[Event] = []
    summary = transmit(outbox, server.url, authority, max_attempts=3, sleep=lambda s: None, on_event=events.append)
    assert (summary.conflict, summary.sent, summary.pending, summary.bad_receipts, summary.retries) == (1, 0, 0, 0, 0)
    assert summary.stopped is None
    assert [(e.kind, e.leaf_hash) for e in events] == [("conflict", leaf_hash(second))]
    assert outbox.pending() == []
    name = leaf_hash(second).hex()
    meta = json.loads((outbox.root / "receipts" / f"{name}.json").read_bytes())
    assert meta["status"] == "conflict"
    assert meta["existing_leaf_hash"] == leaf_hash(first).hex()
    receipt = parse_receipt((outbox.root / "receipts" / f"{name}.receipt").read_bytes())
    receipt.check(authority)
    assert receipt.leaf_hash == leaf_hash(second)
    assert (outbox.root / "receipts" / f"{name}.acta").read_bytes() == second
    assert list((outbox.root / "rejected").iterdir()) == []
    assert_stored(server, first, second)


def test_transmit_refuses_a_receipt_dated_far_from_its_clock(election: Election, tmp_path: Path) -> None:
    """A service whose clock is an hour ahead issues receipts transmit will not keep: they could never be evidence."""
    ahead = LiveServer(ServiceConfig(data_dir=election.root), clock=lambda: time.time() + 3600)
    try:
        outbox = Outbox(tmp_path / "outbox")
        outbox.enqueue(election.actas[0])
        summary = transmit(outbox, ahead.url, authority_of(election.root), max_attempts=2, sleep=lambda s: None)
        assert (summary.sent, summary.pending, summary.bad_receipts) == (0, 1, 2)
        assert list((outbox.root / "receipts").glob("*.receipt")) == []
    finally:
        ahead.stop()


# -- rate limits ---------------------------------------------------------------------------------------------------


def test_a_batch_costs_one_address_token_per_line(serve: Callable[..., LiveServer], election: Election) -> None:
    """Burst 10: a 5-line batch passes, an 8-line one then waits (429), a 20-line one never fits (413); none stored."""
    server = serve(address_limit=Limit(rate=0.001, burst=10))
    five = post_batch(server, election.actas[:5])
    assert five.status_code == 200, five.text
    assert five.json()["accepted"] == 5
    before = settle(server)
    eight = election.actas[5:13]
    response = post_batch(server, eight)
    body = assert_problem(response, 429, "rate-limited", "rate limit of client address '127.0.0.1'")
    assert body["instance"] == "/v1/actas:batch"
    assert int(response.headers["retry-after"]) >= 1
    twenty = election.actas[13:33]
    too_big = post_batch(server, twenty)
    assert_problem(too_big, 413, "too-large", "more than the burst of 10 per client address")
    assert_not_stored(server, before, *eight, *twenty)


def test_resends_are_not_charged_to_the_device_limit(serve: Callable[..., LiveServer], election: Election) -> None:
    """With a device burst of 1, resending a stored acta (alone or in a batch) is 200 every time, never 429."""
    server = serve(device_limit=Limit(rate=0.001, burst=1))
    data = election.actas[0]
    first = post(server, data)
    assert first.status_code == 201, first.text
    for _ in range(5):
        again = post(server, data)
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate"
        assert again.json()["receipt"] == first.json()["receipt"]
    batch = post_batch(server, [data, data])
    assert batch.status_code == 200
    assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "duplicate"]
    # A new acta from the same device still spends its (empty) bucket.
    assert_problem(post(server, variant(election, 0)), 429, "rate-limited", "rate limit of device key")


# -- the live view -------------------------------------------------------------------------------------------------


class FlakyStore(SqliteLogStore):
    """A SQLite store whose read() fails once, on the call numbered fail_on (1-based)."""

    def __init__(self, path: Path, fail_on: int) -> None:
        super().__init__(path)
        self.reads = 0
        self.fail_on = fail_on

    def read(self, start: int, stop: int) -> list[bytes]:
        """Entries [start, stop), except for the one failing call."""
        self.reads += 1
        if self.reads == self.fail_on:
            raise StorageError(f"injected failure reading [{start}, {stop})")
        return super().read(start, stop)


def test_live_view_starts_over_after_a_failed_catch_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up read failing on its second chunk loses nothing: the next refresh gives the published totals."""
    root = tmp_path / "data"
    simulate(root, MESAS, SEED)  # every acta logged, no server
    data = DataDir(root)
    election = Definition.from_json(data.election.read_bytes())
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    size = open_checkpoint(data.checkpoint.read_bytes(), authority).size
    step = 48  # the first chunk holds the election, the enrollments and some actas; the second fails
    assert ELECTION_ENTRIES < step < size == ELECTION_ENTRIES + MESAS
    monkeypatch.setattr(live_module, "READ_STEP", step)
    stores: list[FlakyStore] = []

    def open_store() -> FlakyStore:
        stores.append(FlakyStore(data.database, fail_on=2))
        return stores[-1]

    enrolled: set[str] = set()
    live = LiveLog(data.log, election, authority, open_store, lambda device, mesas: enrolled.add(device))
    try:
        with pytest.raises(StorageError, match="injected failure"):
            live.refresh()
        assert stores[0].reads == 2
        live.refresh()
        snapshot = live.snapshot
        assert snapshot is not None
        assert snapshot.checkpoint.size == size
        assert snapshot.counted == MESAS * len(election.contests)
        published = compute_results(data)
        assert published.checkpoint == snapshot.checkpoint
        roots = [i for i, area in enumerate(election.areas) if area.parent < 0]
        for position, tally in enumerate(published.tallies):
            _, rows = live.rows(position, roots)
            national = [sum(column) for column in zip(*rows, strict=True)]
            assert national == tally.national()
            assert national[0] == MESAS  # every mesa's acta counted once
        assert len(enrolled) == MESAS
    finally:
        for store in stores:  # the view was never start()ed, so stop() (which joins its thread) does not apply
            store.close()


# -- cosignatures --------------------------------------------------------------------------------------------------


def cosigned(note: bytes) -> bytes:
    """The checkpoint note with W1's cosignature added."""
    return add_signatures(note, [cosign_checkpoint(note, W1, int(NOW))])


def test_cosignature_of_a_checkpoint_this_process_did_not_serve(election: Election) -> None:
    """A cosigned checkpoint of this log's tree is accepted though not served recently; a forged root is 404."""
    live = LiveServer(ServiceConfig(data_dir=election.root, witnesses=(W1.verifier,)))
    try:
        early = served(live)
        size = grow(live, election.actas[:12])
        note = served(live)
        assert parse_note(note).text.split("\n")[1] == str(size)
        live.runtime.live._recent.clear()  # as if another process had signed them
        for checkpoint, expected in ((note, size), (early, ELECTION_ENTRIES)):
            response = live.client.post("/v1/cosignatures", content=cosigned(checkpoint), headers=TEXT)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == [W1.name]
            assert response.json()["size"] == expected
        assert any(s.name == W1.name for s in parse_note(served(live)).signatures)
        for forged in (forge(election.root, size, "another root"), forge(election.root, size + 5, "ahead")):
            response = live.client.post("/v1/cosignatures", content=cosigned(forged), headers=TEXT)
            assert_problem(response, 404, "not-found", "not a checkpoint of this log's tree")
    finally:
        live.stop()


def test_a_service_that_fails_to_start_reports_why(election: Election) -> None:
    """A damaged checkpoint stops `serve` with its own error, not a crash while shutting down threads never started."""
    checkpoint = election.root / "log" / "checkpoint"
    text = bytearray(checkpoint.read_bytes())
    text[-10] = ord("A") if text[-10] != ord("A") else ord("B")
    checkpoint.write_bytes(bytes(text))
    with pytest.raises(ActasError):
        serve_forever(ServiceConfig(data_dir=election.root), "127.0.0.1", 0, "warning")
