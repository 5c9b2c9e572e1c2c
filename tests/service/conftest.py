"""A real service on loopback over a small simulated election whose actas are not yet logged."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from actas.service.app import create_app
from actas.service.runtime import Runtime, ServiceConfig
from actas.simulate.run import simulate

MESAS = 40
SEED = 11


@dataclass
class Election:
    """A data directory with its election and enrollments logged, and the stations' signed actas."""

    root: Path
    actas: list[bytes]


@pytest.fixture(scope="session")
def election_template(tmp_path_factory: pytest.TempPathFactory) -> Election:
    """Simulated once per session; copied for each test."""
    base = tmp_path_factory.mktemp("election")
    out = base / "actas.ndjson"
    simulate(base / "data", MESAS, SEED, actas_out=out)
    return Election(base / "data", out.read_bytes().splitlines())


@pytest.fixture
def election(election_template: Election, tmp_path: Path) -> Election:
    """A fresh copy of the template data directory."""
    root = tmp_path / "data"
    shutil.copytree(election_template.root, root)
    return Election(root, list(election_template.actas))


class LiveServer:
    """uvicorn serving the app on 127.0.0.1 on a free port, in a thread."""

    def __init__(self, config: ServiceConfig, clock: Callable[[], float] = time.time) -> None:
        self.runtime = Runtime(config, clock)
        self.runtime.start()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.runtime), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def wait_for_size(self, size: int, timeout: float = 10) -> None:
        """Wait until the served checkpoint covers size entries."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.runtime.live.snapshot
            if snapshot is not None and snapshot.checkpoint.size >= size:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"checkpoint did not reach {size}")
            self.runtime.live.poke()
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and close the runtime."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.runtime.close()


@pytest.fixture
def server(election: Election) -> Iterator[LiveServer]:
    """The service over a fresh copy of the election, SQLite store."""
    live = LiveServer(ServiceConfig(data_dir=election.root))
    yield live
    live.stop()


@pytest.fixture
def serve(election: Election) -> Iterator[Callable[..., LiveServer]]:
    """Start a LiveServer with ServiceConfig options over the test's data directory; stopped at teardown."""
    started: list[LiveServer] = []

    def start(**options: Any) -> LiveServer:
        live = LiveServer(ServiceConfig(data_dir=election.root, **options))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
