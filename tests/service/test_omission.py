"""Omission: a service that receipts an acta and never logs it is caught by the station's receipts.

The service runs with a test fault that silently drops one receipted submission from the sequencer's queue.
After transmitting every acta, ``actas receipts check`` — over the service's URL (tlog-proofs), a static mirror
of the published bundle, and the data directory — names exactly that leaf as missing, with the signed receipt and
the signed checkpoint as evidence.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actas.core.b64 import b64decode
from actas.core.merkle import leaf_hash
from actas.core.note import open_checkpoint
from actas.core.receipt import Receipt, parse_receipt
from actas.service.outbox import Outbox
from actas.service.runtime import ServiceConfig
from actas.service.transmit import transmit
from actas.storage.base import Pending
from actas.verifier.readers import DirectoryReader
from actas.verifier.receipts import check_receipts, load_receipt_files
from tests.service.conftest import Election, LiveServer
from tests.service.station import ELECTION_ENTRIES, Result, authority_of, run_actas

DROPPED = 7  # the acta the faulty service receipts and never logs


@dataclass
class Omitted:
    """A faulty service after every acta was transmitted and checkpointed."""

    server: LiveServer
    election: Election
    receipts: Path  # the outbox's receipts/
    dropped: bytes  # its leaf hash
    key: Path  # the authority's verifier key file


@dataclass(frozen=True)
class DropLeaf:
    """The test fault: the sequencer never logs this leaf (a class of this module, so it pickles into a process)."""

    leaf: bytes

    def __call__(self, pending: Sequence[Pending]) -> Sequence[Pending]:
        return [p for p in pending if p.submission.entry.entry_hash != self.leaf]


# -j 0 sequences on a thread of the service process, -j 1 in a sequencer process: the fault reaches either.
@pytest.fixture(params=[0, 1], ids=["sequencer-thread", "sequencer-process"])
def omitted(election: Election, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Omitted]:
    """Transmit all 40 actas to a service that drops one of them."""
    dropped = leaf_hash(election.actas[DROPPED])
    server = LiveServer(ServiceConfig(data_dir=election.root, fault=DropLeaf(dropped), workers=request.param))
    try:
        outbox = Outbox(tmp_path / "outbox")
        for acta in election.actas:
            outbox.enqueue(acta)
        summary = transmit(outbox, server.url, authority_of(election.root))
        assert (summary.sent, summary.pending) == (40, 0)  # every acta receipted, the dropped one too
        server.wait_for_size(ELECTION_ENTRIES + 39)
        key = election.root / "keys" / "authority.vkey"
        yield Omitted(server, election, outbox.root / "receipts", dropped, key)
    finally:
        server.stop()


def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path) -> Result:
    """Run ``actas receipts check ARGS…``."""
    return run_actas(monkeypatch, capsys, "receipts", "check", *args)


def assert_evidence(value: dict[str, Any], omitted: Omitted, checkpoint: bytes, included_how: str) -> None:
    """Exactly the dropped leaf is missing; its evidence is the stored receipt and the checkpoint, both signed."""
    assert value["counts"] == {"included": 39, "pending": 0, "missing": 1, "invalid": 0}
    assert {r["how"] for r in value["receipts"] if r["status"] == "included"} == {included_how}
    (evidence,) = value["evidence"]
    assert evidence["leaf_hash"] == omitted.dropped.hex()
    stored = (omitted.receipts / f"{omitted.dropped.hex()}.receipt").read_bytes()
    assert evidence["receipt"].encode() == stored == b64decode(evidence["receipt_base64"])
    assert evidence["checkpoint"].encode() == checkpoint
    authority = authority_of(omitted.election.root)
    parse_receipt(stored).check(authority)  # the authority promised inclusion…
    assert open_checkpoint(checkpoint, authority).size == ELECTION_ENTRIES + 39  # …and signed a tree without it


def test_missing_leaf_over_the_service_url(
    omitted: Omitted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = omitted.server.url
    result = check(monkeypatch, capsys, omitted.receipts, "--log", url, "--key", omitted.key, "--grace", "0", "--json")
    assert result.code == 1, result.err
    checkpoint = omitted.server.client.get("/log/checkpoint").content
    assert_evidence(json.loads(result.out), omitted, checkpoint, "proof")
    text = check(monkeypatch, capsys, omitted.receipts, "--log", url, "--key", omitted.key, "--grace", "0")
    assert text.code == 1
    assert f"MISSING {omitted.dropped.hex()}" in text.out
    assert "39 included (39 by tlog-proof, 0 from the entries), 0 pending, 1 missing, 0 invalid" in text.out


def test_missing_leaf_in_the_published_bundle_and_its_mirror(
    omitted: Omitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    assert run_actas(monkeypatch, capsys, "publish", omitted.election.root, "--out", bundle).code == 0
    checkpoint = (bundle / "log" / "checkpoint").read_bytes()
    result = check(
        monkeypatch, capsys, omitted.receipts, "--log", bundle, "--key", omitted.key, "--grace", "0", "--json"
    )
    assert result.code == 1, result.err
    assert_evidence(json.loads(result.out), omitted, checkpoint, "entries")
    # A static mirror has no /v1/proof: the check reads the entries over HTTP instead.
    handler = functools.partial(QuietHandler, directory=str(bundle))
    mirror = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=mirror.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{mirror.server_address[1]}/"
        over_http = check(
            monkeypatch, capsys, omitted.receipts, "--log", url, "--key", omitted.key, "--grace", "0", "--json"
        )
        assert over_http.code == 1, over_http.err
        assert_evidence(json.loads(over_http.out), omitted, checkpoint, "entries")
    finally:
        mirror.shutdown()
        mirror.server_close()
        thread.join()


class QuietHandler(SimpleHTTPRequestHandler):
    """A static file handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


def receipts_of(omitted: Omitted) -> list[Receipt]:
    """The station's receipts, parsed."""
    return [f.receipt for f in load_receipt_files([omitted.receipts]) if f.receipt is not None]


def test_missing_leaf_in_the_data_directory(omitted: Omitted) -> None:
    receipts = receipts_of(omitted)
    authority = authority_of(omitted.election.root)
    latest = max(r.time for r in receipts)
    report = check_receipts(receipts, DirectoryReader(omitted.election.root), authority, now=lambda: latest + 61)
    assert [r.receipt.leaf_hash for r in report.of("missing")] == [omitted.dropped]
    assert len(report.of("included")) == 39
    assert not report.ok


def test_young_receipt_is_pending_not_missing(
    omitted: Omitted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    receipts = receipts_of(omitted)
    authority = authority_of(omitted.election.root)
    young = max(r.time for r in receipts) + 5
    report = check_receipts(receipts, DirectoryReader(omitted.election.root), authority, now=lambda: young)
    assert [r.receipt.leaf_hash for r in report.of("pending")] == [omitted.dropped]
    assert report.ok
    assert not report.of("missing")
    # The receipts are seconds old: with the default grace of 60 s the CLI says pending and exits 0.
    result = check(monkeypatch, capsys, omitted.receipts, "--log", omitted.server.url, "--key", omitted.key)
    assert result.code == 0, result.out
    assert f"PENDING {omitted.dropped.hex()}" in result.out
    assert "MISSING" not in result.out


def test_tampered_receipt_is_invalid(
    omitted: Omitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "receipts"
    shutil.copytree(omitted.receipts, copy)
    victim = sorted(copy.glob("*.receipt"))[0]
    good = parse_receipt(victim.read_bytes())
    forged = Receipt(good.origin, good.leaf_hash, good.time + 1, good.signature)  # a later time, same signature
    victim.write_bytes(forged.to_bytes())
    (copy / f"{omitted.dropped.hex()}.receipt").unlink()
    result = check(monkeypatch, capsys, copy, "--log", omitted.server.url, "--key", omitted.key, "--json")
    assert result.code == 1
    value = json.loads(result.out)
    assert value["counts"] == {"included": 38, "pending": 0, "missing": 0, "invalid": 1}
    (invalid,) = [r for r in value["receipts"] if r["status"] == "invalid"]
    assert invalid["path"] == str(victim)
    assert "does not verify" in invalid["detail"]


def test_tampered_entry_bundle_fails_rather_than_deciding(
    omitted: Omitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    assert run_actas(monkeypatch, capsys, "publish", omitted.election.root, "--out", bundle).code == 0
    (entries,) = (bundle / "log" / "tile" / "entries").rglob("*/*")  # the one partial bundle, 000.p/80
    data = bytearray(entries.read_bytes())
    data[-20] ^= 0x01  # inside the last acta
    entries.write_bytes(bytes(data))
    result = check(monkeypatch, capsys, omitted.receipts, "--log", bundle, "--key", omitted.key, "--grace", "0")
    assert result.code == 3
    err = " ".join(result.err.split())  # rich wraps long lines
    assert "verification-failed" in err
    assert "damaged or altered" in err
    assert "MISSING" not in result.out
    assert "included" not in result.out
