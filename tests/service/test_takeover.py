"""Sequencer takeover between real ``actas serve`` processes on one SQLite data directory, after a SIGKILL.

Each server runs in its own process group (its verification workers included), so the test can kill the server
process alone, as a crash would, and still end every process it started afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import cycle, islice
from pathlib import Path

import httpx
import pytest

from tests.locks import lock_is_free
from tests.service.chaos import free_port
from tests.service.conftest import Election
from tests.service.station import ELECTION_ENTRIES

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


class Serve:
    """``python -m actas serve DATA --port P [ARGS]`` as a child process leading its own process group."""

    def __init__(self, data: Path, log: Path, *args: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "actas", "serve", str(data), "--port", self.url.rsplit(":", 1)[1]]
        command += ["--log-level", "warning", *args]
        self.log = log
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.proc.pid  # start_new_session: the server leads a new group
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def is_sequencer(self) -> bool:
        """Whether /healthz says this process holds the sequencer lock."""
        try:
            return bool(httpx.get(f"{self.url}/healthz", timeout=1).json().get("sequencer"))
        except httpx.HTTPError:
            return False

    def size(self) -> int:
        """The size of the checkpoint served at /log/checkpoint."""
        response = httpx.get(f"{self.url}/log/checkpoint", timeout=5)
        assert response.status_code == 200, response.text
        return int(response.text.split("\n")[1])

    def kill(self) -> None:
        """SIGKILL the server process alone: whatever it started lives on, as after a crash."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the server process and wait for it (SIGKILL after 20 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def end_group(self) -> None:
        """SIGKILL every process left in the server's process group (its workers, a fork server)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Serve]]:
    """Start ``actas serve`` processes; at teardown each is stopped and its whole process group killed."""
    started: list[Serve] = []

    def start(data: Path, log: Path, *args: str) -> Serve:
        server = Serve(data, log, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.end_group()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll condition every 20 ms; return the seconds it took, or fail naming what did not happen."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - began


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, …
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def holders(pids: list[int], path: Path) -> list[int]:
    """Those of pids with a file descriptor open on path."""
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if Path(os.readlink(fd)) == path:
                        found.append(pid)
                        break
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_verification_workers_do_not_keep_the_sequencer_lock(
    election: Election, tmp_path: Path, serve: Callable[..., Serve]
) -> None:
    """After SIGKILL of a ``-j 2`` server whose worker pool ran, a new server on its data directory sequences."""
    lock = election.root / "sequencer.lock"
    first = serve(election.root, tmp_path / "first.log", "-j", "2")
    wait_until(first.is_sequencer, 5, "the first server sequencing")
    held_back = election.actas[39]
    lines = list(islice(cycle(election.actas[:39]), 600))  # over 2 × 256 lines: checked by the worker pool
    response = httpx.post(f"{first.url}/v1/actas:batch", content=b"\n".join(lines) + b"\n", headers=NDJSON, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 0
    assert response.json()["accepted"] + response.json()["duplicate"] == 600
    wait_until(lambda: first.size() == ELECTION_ENTRIES + 39, 5, "the batch logged")
    workers = [pid for pid in group_members(first.pgid) if pid != first.proc.pid]
    assert workers, "the worker pool did not start: the test would prove nothing"
    # With -j the lock is held by the server's sequencer process alone: never by the server, a check worker or
    # the fork server (with fork, workers once kept the server's lock fd after it died).
    (sequencer,) = holders(group_members(first.pgid), lock)
    assert sequencer != first.proc.pid

    first.kill()
    assert set(holders(group_members(first.pgid), lock)) <= {sequencer}
    wait_until(lambda: holders(group_members(first.pgid), lock) == [], 5, "the sequencer process ending with it")

    second = serve(election.root, tmp_path / "second.log")
    wait_until(second.is_sequencer, 5, "the new server sequencing after the old one was killed")
    posted = httpx.post(f"{second.url}/v1/actas", content=held_back, headers=JSON, timeout=10)
    assert posted.status_code == 201, posted.text
    wait_until(lambda: second.size() == ELECTION_ENTRIES + 40, 5, "a new acta reaching a checkpoint")
    second.stop()
    assert lock_is_free(lock), "some process still holds the sequencer lock after both servers are gone"


# Without workers each server sequences on a thread; with -j 1, in a sequencer process that ends with it.
@pytest.mark.parametrize("args", [(), ("-j", "1")], ids=["sequencer-thread", "sequencer-process"])
def test_another_server_takes_over_sequencing_after_sigkill(
    election: Election, tmp_path: Path, serve: Callable[..., Serve], args: tuple[str, ...]
) -> None:
    """Of two servers on one SQLite data directory exactly one sequences; SIGKILL it and the other does in 3 s."""
    servers = [serve(election.root, tmp_path / f"server-{n}.log", *args) for n in range(2)]
    wait_until(lambda: any(s.is_sequencer() for s in servers), 5, "one server sequencing")
    leaders = [s for s in servers if s.is_sequencer()]
    assert len(leaders) == 1
    (leader,) = leaders
    (other,) = [s for s in servers if s is not leader]
    leader.kill()
    wait_until(other.is_sequencer, 3, "the other server taking over")
    posted = httpx.post(f"{other.url}/v1/actas", content=election.actas[0], headers=JSON, timeout=10)
    assert posted.status_code == 201, posted.text
    wait_until(lambda: other.size() == ELECTION_ENTRIES + 1, 5, "the new sequencer logging an acta")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_an_ended_server_leaves_no_worker_or_fork_server_behind(
    election: Election, tmp_path: Path, serve: Callable[..., Serve], ending: str
) -> None:
    """A ``-j 2`` server whose worker pool ran, stopped (SIGTERM) or crashed (SIGKILL): every process it started goes.

    On SIGKILL nothing runs in the server: its check workers notice it is gone and exit, and the fork server after them.
    """
    server = serve(election.root, tmp_path / "server.log", "-j", "2")
    lines = list(islice(cycle(election.actas[:39]), 600))  # over 2 × 256 lines: checked by the worker pool
    response = httpx.post(f"{server.url}/v1/actas:batch", content=b"\n".join(lines) + b"\n", headers=NDJSON, timeout=30)
    assert response.status_code == 200, response.text
    started = [pid for pid in group_members(server.pgid) if pid != server.proc.pid]
    assert len(started) >= 3, "the fork server and both workers did not start"
    if ending == "SIGTERM":
        server.stop()
    else:
        server.proc.kill()
        server.proc.wait(timeout=10)
    wait_until(lambda: group_members(server.pgid) == [], 10, "every process the ended server started gone")
