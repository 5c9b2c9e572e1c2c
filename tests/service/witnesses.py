"""Helpers for the witness tests: keys, growing the live log, forging checkpoints, a static mirror, the CLI."""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actas.cli.main import main
from actas.core.keys import Signer
from actas.core.note import Checkpoint, sign_checkpoint
from actas.service.witness import WitnessConfig
from actas.storage.files import write_durable
from tests.factories import seed
from tests.service.conftest import LiveServer

W1 = Signer("witness.example/one", seed("witness/1"))
W2 = Signer("witness.example/two", seed("witness/2"))
W3 = Signer("witness.example/three", seed("witness/3"))  # never cosigns
NOW = 1_750_000_000.0


def config(url: str, signer: Signer, state: Path, authority: Path) -> WitnessConfig:
    """A witness of the log at url, its key, state directory and a fixed clock."""
    log_key = Signer.parse(authority.read_text(encoding="utf-8").strip()).verifier
    return WitnessConfig(url, log_key, signer, state, clock=lambda: NOW, timeout=5.0)


def size_of(server: LiveServer) -> int:
    """The size of the checkpoint the server serves now."""
    snapshot = server.runtime.live.snapshot
    assert snapshot is not None
    return snapshot.checkpoint.size


def grow(server: LiveServer, actas: list[bytes]) -> int:
    """Submit actas in one batch, wait for a checkpoint covering them, and return its size."""
    start = size_of(server)
    response = server.client.post("/v1/actas:batch", content=b"\n".join(actas) + b"\n")
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(actas)
    server.wait_for_size(start + len(actas))
    return start + len(actas)


def served(server: LiveServer) -> bytes:
    """GET /log/checkpoint."""
    response = server.client.get("/log/checkpoint")
    assert response.status_code == 200
    return response.content


def forge(data_dir: Path, size: int, label: str) -> bytes:
    """A checkpoint of size with a made-up root, signed with the authority's own key (a forked log)."""
    authority = Signer.parse((data_dir / "keys" / "authority.key").read_text(encoding="utf-8").strip())
    return sign_checkpoint(Checkpoint(authority.name, size, hashlib.sha256(label.encode()).digest()), authority)


def serve_checkpoint(server: LiveServer, note: bytes, timeout: float = 5.0) -> None:
    """Make the live server serve this checkpoint note (as if the authority's log had signed it)."""
    write_durable(server.runtime.data.checkpoint, note)
    deadline = time.monotonic() + timeout
    while True:
        snapshot = server.runtime.live.snapshot
        if snapshot is not None and snapshot.checkpoint_bytes == note:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the server did not take the new checkpoint")
        server.runtime.live.poke()
        time.sleep(0.02)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@contextmanager
def static_mirror(root: Path) -> Iterator[str]:
    """A plain static web server on 127.0.0.1 over a bundle directory (a mirror); yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Result:
    """Exit code and captured output of one command."""

    code: int
    out: str
    err: str


class Cli:
    """Runs ``actas ARGS…`` through the real entry point in this process, output captured."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def __call__(self, *args: str | Path) -> Result:
        """Run one command; exit code 0 when it returned normally."""
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["actas", *(str(a) for a in args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else int(exc.code)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)
