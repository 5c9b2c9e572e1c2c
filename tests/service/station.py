"""Helpers of the station tests: keys, a server on a chosen port, the log's leaves, the CLI run in this process."""

from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from actas.cli.main import main
from actas.core import canonical
from actas.core.b64 import b64decode, b64encode
from actas.core.keys import Signer, Verifier
from actas.core.merkle import leaf_hash
from actas.service.app import create_app
from actas.service.runtime import Runtime, ServiceConfig
from tests.service.conftest import LiveServer

ELECTION_ENTRIES = 41  # the election entry and one enrollment per mesa, logged before any acta


def authority_of(root: Path) -> Verifier:
    """The authority verifier key of a data directory."""
    return Verifier.parse((root / "keys" / "authority.vkey").read_text(encoding="utf-8").strip())


def signer_of(root: Path) -> Signer:
    """The authority signing key of a data directory (to forge receipts for another leaf)."""
    return Signer.parse((root / "keys" / "authority.key").read_text(encoding="utf-8").strip())


def leaves(actas: list[bytes]) -> list[bytes]:
    """The leaf hash of each acta."""
    return [leaf_hash(a) for a in actas]


def flip_signature(entry: bytes) -> bytes:
    """The same acta, still canonical, with one bit of its device signature flipped."""
    value = canonical.decode(entry)
    assert isinstance(value, dict)
    sig = bytearray(b64decode(value["sig"]))
    sig[10] ^= 0x01
    return canonical.encode({**value, "sig": b64encode(bytes(sig))})


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerOnPort(LiveServer):
    """LiveServer on a given port, so a client can be started before the server exists."""

    def __init__(self, config: ServiceConfig, port: int) -> None:
        self.runtime = Runtime(config)
        self.runtime.start()
        app = create_app(self.runtime)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start on port {port}")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)


def logged(server: LiveServer, size: int) -> list[bytes]:
    """The leaf hashes of the first size entries of the server's log, once its checkpoint covers them."""
    server.wait_for_size(size)
    store = server.runtime.open_store()
    try:
        return [leaf_hash(e) for e in store.read(0, size)]
    finally:
        store.close()


@dataclass(frozen=True)
class Result:
    """Exit code and captured output of one command."""

    code: int
    out: str
    err: str


def run_actas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path) -> Result:
    """Run ``actas ARGS…`` through the real entry point (which maps errors to exit codes)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["actas", *(str(a) for a in args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
