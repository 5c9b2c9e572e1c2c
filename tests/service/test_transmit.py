"""Stations transmitting to a real service on loopback: receipts verified and kept, retries, crashes, forgeries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest

from actas.core import canonical
from actas.core.keys import Signer
from actas.core.merkle import leaf_hash
from actas.core.receipt import parse_receipt, sign_receipt
from actas.errors import FetchError
from actas.service.outbox import Outbox
from actas.service.ratelimit import Limit
from actas.service.runtime import ServiceConfig
from actas.service.transmit import Backoff, Event, transmit
from tests.service.conftest import Election, LiveServer
from tests.service.station import (
    ELECTION_ENTRIES,
    ServerOnPort,
    authority_of,
    flip_signature,
    free_port,
    leaves,
    logged,
    run_actas,
    signer_of,
)

FAST = Backoff(base=0.05, cap=0.2)


def test_all_actas_receipted_verified_and_logged_once(election: Election, server: LiveServer, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    assert all(outbox.enqueue(a) == "queued" for a in election.actas)
    authority = authority_of(election.root)
    summary = transmit(outbox, server.url, authority)
    assert (summary.sent, summary.pending, summary.retries, summary.rejected) == (40, 0, 0, 0)
    assert outbox.pending() == []
    for leaf, entry in zip(leaves(election.actas), election.actas, strict=True):
        data = (outbox.root / "receipts" / f"{leaf.hex()}.receipt").read_bytes()
        receipt = parse_receipt(data)
        receipt.check(authority)
        assert receipt.leaf_hash == leaf
        assert receipt.to_bytes() == data
        assert (outbox.root / "receipts" / f"{leaf.hex()}.acta").read_bytes() == entry
        meta = json.loads((outbox.root / "receipts" / f"{leaf.hex()}.json").read_bytes())
        assert meta["status"] == "accepted"
        assert meta["url"] == server.url
    log = logged(server, ELECTION_ENTRIES + 40)
    assert sorted(log[ELECTION_ENTRIES:]) == sorted(leaves(election.actas))


def test_rerun_sends_nothing_and_a_new_outbox_gets_the_same_receipts(
    election: Election, server: LiveServer, tmp_path: Path
) -> None:
    authority = authority_of(election.root)
    first = Outbox(tmp_path / "first")
    for acta in election.actas:
        first.enqueue(acta)
    transmit(first, server.url, authority, batch=16)
    receipts = {p.name: p.read_bytes() for p in (first.root / "receipts").glob("*.receipt")}
    assert len(receipts) == 40
    assert {first.enqueue(a) for a in election.actas} == {"receipted"}
    again = transmit(first, server.url, authority)
    assert (again.requests, again.sent, again.pending) == (0, 0, 0)
    # A station that lost its outbox sends everything again: the service answers with the same receipts.
    second = Outbox(tmp_path / "second")
    for acta in election.actas:
        second.enqueue(acta)
    summary = transmit(second, server.url, authority)
    assert (summary.sent, summary.duplicate) == (0, 40)
    assert {p.name: p.read_bytes() for p in (second.root / "receipts").glob("*.receipt")} == receipts
    log = logged(server, ELECTION_ENTRIES + 40)
    assert len(log) == len(set(log))


def test_network_down_then_up(election: Election, tmp_path: Path) -> None:
    """Started while nothing listens, transmit backs off and completes once the service comes up."""
    port = free_port()
    outbox = Outbox(tmp_path / "outbox")
    for acta in election.actas[:5]:
        outbox.enqueue(acta)
    events: list[Event] = []
    result: dict[str, Any] = {}

    def run() -> None:
        url = f"http://127.0.0.1:{port}"
        result["summary"] = transmit(
            outbox, url, authority_of(election.root), backoff=FAST, deadline=20, on_event=events.append
        )

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    server = ServerOnPort(ServiceConfig(data_dir=election.root), port)
    try:
        thread.join(timeout=20)
        assert not thread.is_alive()
        retries = [e for e in events if e.kind == "retry"]
        assert len(retries) >= 3
        assert all("ConnectError" in e.detail for e in retries)
        assert all(0 <= e.delay <= FAST.cap for e in retries)
        assert (result["summary"].sent, result["summary"].pending) == (5, 0)
    finally:
        server.stop()


def test_rate_limited_waits_retry_after(election: Election, tmp_path: Path) -> None:
    server = LiveServer(ServiceConfig(data_dir=election.root, address_limit=Limit(rate=1, burst=1)))
    try:
        outbox = Outbox(tmp_path / "outbox")
        for acta in election.actas[:3]:
            outbox.enqueue(acta)
        events: list[Event] = []
        summary = transmit(outbox, server.url, authority_of(election.root), on_event=events.append)
        assert (summary.sent, summary.pending) == (3, 0)
        limited = [e for e in events if e.kind == "retry" and "429" in e.detail]
        assert limited
        assert all(e.delay >= 1.0 for e in limited)
    finally:
        server.stop()


def test_bad_signature_is_rejected_for_good(election: Election, server: LiveServer, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    bad = flip_signature(election.actas[0])
    outbox.enqueue(bad)
    outbox.enqueue(election.actas[1])
    summary = transmit(outbox, server.url, authority_of(election.root))
    assert (summary.sent, summary.rejected, summary.pending, summary.retries) == (1, 1, 0, 0)
    name = leaf_hash(bad).hex()
    assert (outbox.root / "rejected" / f"{name}.acta").read_bytes() == bad
    problem = json.loads((outbox.root / "rejected" / f"{name}.json").read_bytes())["problem"]
    assert (problem["code"], problem["status"]) == ("bad-signature", 422)
    assert not (outbox.root / "receipts" / f"{name}.receipt").exists()
    assert outbox.enqueue(bad) == "rejected"  # not queued again


class ForgingHandler(BaseHTTPRequestHandler):
    """Answers every submission with 201 and the receipt the test put on the server."""

    def do_POST(self) -> None:
        entry = self.rfile.read(int(self.headers["content-length"]))
        forge = self.server.forge  # type: ignore[attr-defined]
        receipt = forge(leaf_hash(entry))
        body = json.dumps({"status": "accepted", "leaf_hash": leaf_hash(entry).hex(), "receipt": receipt}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture
def forging_server() -> Iterator[ThreadingHTTPServer]:
    """A stdlib HTTP server on loopback that pretends to be the service."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ForgingHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("forgery", ["another key", "another leaf", "not strict"])
def test_forged_receipt_is_refused_and_not_stored(
    election: Election, forging_server: ThreadingHTTPServer, tmp_path: Path, forgery: str
) -> None:
    real = signer_of(election.root)
    impostor = Signer.from_seed(real.name, b"\x07" * 32)  # same origin name, another key

    def forge(leaf: bytes) -> dict[str, Any]:
        if forgery == "another key":
            return sign_receipt(leaf, 1_700_000_000, impostor).to_value()
        if forgery == "another leaf":
            return sign_receipt(bytes(32), 1_700_000_000, real).to_value()
        return sign_receipt(leaf, 1_700_000_000, real).to_value() | {"extra": 1}

    forging_server.forge = forge  # type: ignore[attr-defined]
    outbox = Outbox(tmp_path / "outbox")
    outbox.enqueue(election.actas[0])
    events: list[Event] = []
    url = f"http://127.0.0.1:{forging_server.server_address[1]}"
    summary = transmit(
        outbox, url, authority_of(election.root), max_attempts=3, sleep=lambda s: None, on_event=events.append
    )
    assert (summary.sent, summary.bad_receipts, summary.pending) == (0, 3, 1)
    assert summary.stopped is not None
    assert "bad receipt" in summary.stopped
    assert [e.kind for e in events].count("bad-receipt") == 3
    assert list((outbox.root / "receipts").iterdir()) == []


def test_unexpected_status_stops_without_touching_the_outbox(election: Election, tmp_path: Path) -> None:
    """A URL that is not the service's answers 404: transmit stops with an error and keeps the acta pending."""
    server = LiveServer(ServiceConfig(data_dir=election.root))
    try:
        outbox = Outbox(tmp_path / "outbox")
        outbox.enqueue(election.actas[0])
        with pytest.raises(FetchError, match="unexpected HTTP 404"):
            transmit(outbox, server.url + "/not-here", authority_of(election.root))
        assert len(outbox.pending()) == 1
    finally:
        server.stop()


def test_sigkill_mid_run_then_rerun_receipts_everything_once(election: Election, tmp_path: Path) -> None:
    """SIGKILL at an arbitrary point of a run; the next run finishes; nothing is lost, nothing logged twice."""
    actas_file = tmp_path / "actas.ndjson"
    actas_file.write_bytes(b"".join(a + b"\n" for a in election.actas))
    key = election.root / "keys" / "authority.vkey"
    outbox = tmp_path / "outbox"
    # 20 actas go at once, then one every 2 s: the process is surely still running when it is killed.
    throttled = LiveServer(ServiceConfig(data_dir=election.root, address_limit=Limit(rate=0.5, burst=20)))
    try:
        command = [sys.executable, "-m", "actas", "transmit", str(actas_file), "--to", throttled.url, "--key", str(key)]
        process = subprocess.Popen([*command, "--outbox", str(outbox)], stdout=DEVNULL, stderr=DEVNULL)
        deadline = time.monotonic() + 15
        while not list((outbox / "receipts").glob("*.receipt")):
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert Outbox(outbox).pending(), "killed after it had finished"
    finally:
        throttled.stop()
    server = LiveServer(ServiceConfig(data_dir=election.root))
    try:
        rerun = [sys.executable, "-m", "actas", "transmit", "--to", server.url, "--key", str(key)]
        done = subprocess.run([*rerun, "--outbox", str(outbox), "--json"], capture_output=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr.decode()
        summary = json.loads(done.stdout)
        assert summary["pending"] == 0
        assert summary["rejected"] == 0
        receipts = sorted(p.name.removesuffix(".receipt") for p in (outbox / "receipts").glob("*.receipt"))
        assert receipts == sorted(leaf.hex() for leaf in leaves(election.actas))
        log = logged(server, ELECTION_ENTRIES + 40)
        assert sorted(log[ELECTION_ENTRIES:]) == sorted(leaves(election.actas))
    finally:
        server.stop()


def test_cli_transmit_reports_rejections_and_pins_the_key(
    election: Election,
    server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    actas_file = tmp_path / "actas.ndjson"
    actas_file.write_bytes(b"\n".join([*election.actas[:3], flip_signature(election.actas[3])]) + b"\n")
    result = run_actas(monkeypatch, capsys, "transmit", actas_file, "--to", server.url, "--json")
    assert result.code == 1, result.err
    summary = json.loads(result.out)
    assert (summary["sent"], summary["rejected"], summary["pending"]) == (3, 1, 0)
    outbox = tmp_path / "xdg" / "actas" / "outbox"
    assert summary["outbox"] == str(outbox)
    assert "trusting the service's own key" in result.err
    assert (outbox / "authority.vkey").read_text().strip() == str(authority_of(election.root))
    again = run_actas(monkeypatch, capsys, "transmit", actas_file, "--to", server.url)
    assert again.code == 1
    assert "rejected before" in again.out
    assert "sent 0" in again.out
    other = Signer.from_seed(election.root.name, b"\x01" * 32).verifier
    wrong = run_actas(monkeypatch, capsys, "transmit", "--to", server.url, "--key", str(other))
    assert wrong.code == 3
    assert "bad-key" in wrong.err


def test_outbox_survives_a_crash_between_receipt_and_pending_removal(election: Election, tmp_path: Path) -> None:
    """Both files present (a crash after the receipt was written): the receipt wins, the acta is not resent."""
    outbox = Outbox(tmp_path / "outbox")
    entry = election.actas[0]
    outbox.enqueue(entry)
    pending = outbox.root / "pending" / f"{leaf_hash(entry).hex()}.acta"
    saved = pending.read_bytes()
    receipt = sign_receipt(leaf_hash(entry), 1_700_000_000, signer_of(election.root))
    outbox.store_receipt(entry, receipt, "accepted", "http://127.0.0.1:1")
    pending.write_bytes(saved)
    assert outbox.pending() == []
    assert not pending.exists()
    assert canonical.decode(outbox.root.joinpath("receipts", pending.stem + ".receipt").read_bytes())
