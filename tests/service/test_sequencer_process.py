"""With ``-j N`` the sequencer runs in a process of its own: it leads, logs, survives its own death, and stops.

Real child processes throughout: the service's runtime starts one, the tests signal it (SIGKILL, SIGINT) and watch
the log and /healthz from the outside.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from actas.service import live as live_module
from actas.service import sequencer_process
from actas.service.sequencer_process import NICENESS, RESTART_PAUSE, SequencerProcess
from tests.service.conftest import Election, LiveServer
from tests.service.station import ELECTION_ENTRIES

JSON = {"content-type": "application/json"}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll condition every 20 ms, or fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether process pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def server(serve: Callable[..., LiveServer]) -> LiveServer:
    """A service with one check worker of each kind, so its sequencer runs in a process of its own."""
    live = serve(workers=1)
    wait_until(lambda: live.client.get("/healthz").json()["sequencer"], 10, "the sequencer process leading")
    return live  # stopped by serve


def sequencer_of(server: LiveServer) -> SequencerProcess:
    """The service's sequencer, which must be a process."""
    sequencer = server.runtime.sequencer
    assert isinstance(sequencer, SequencerProcess)
    return sequencer


def post(server: LiveServer, acta: bytes) -> None:
    """POST one acta and insist on a fresh receipt."""
    response = server.client.post("/v1/actas", content=acta, headers=JSON)
    assert response.status_code == 201, response.text


def test_the_sequencer_logs_from_its_own_process(server: LiveServer, election: Election) -> None:
    """/healthz says this service sequences; no sequencer thread runs here; the actas reach a checkpoint."""
    sequencer = sequencer_of(server)
    assert sequencer.pid is not None
    assert sequencer.pid != os.getpid()
    assert alive(sequencer.pid)
    assert "actas-sequencer" not in {thread.name for thread in threading.enumerate()}
    here = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, sequencer.pid) == min(here + NICENESS, 19)  # receipts come first
    for acta in election.actas[:10]:
        post(server, acta)
    server.wait_for_size(ELECTION_ENTRIES + 10)


def test_a_killed_sequencer_process_is_replaced_and_logging_goes_on(server: LiveServer, election: Election) -> None:
    """SIGKILL the sequencer process: /healthz says so, another starts and leads, and new actas are logged."""
    sequencer = sequencer_of(server)
    post(server, election.actas[0])
    server.wait_for_size(ELECTION_ENTRIES + 1)
    first = sequencer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not sequencer.is_leader, 5, "the service noticing its sequencer is gone")
    post(server, election.actas[1])  # receipted while nobody sequences: it waits in the queue
    wait_until(lambda: sequencer.pid != first and sequencer.is_leader, RESTART_PAUSE + 10, "a new sequencer leading")
    assert not alive(first)
    post(server, election.actas[2])
    server.wait_for_size(ELECTION_ENTRIES + 3)


def test_ctrl_c_does_not_end_the_sequencer_process(server: LiveServer, election: Election) -> None:
    """A terminal's SIGINT reaches the whole process group; the service, not the signal, stops its sequencer."""
    sequencer = sequencer_of(server)
    pid = sequencer.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert alive(pid)
    assert sequencer.pid == pid
    assert sequencer.is_leader
    post(server, election.actas[0])
    server.wait_for_size(ELECTION_ENTRIES + 1)


def test_stopping_ends_the_sequencer_process_and_can_be_repeated(server: LiveServer) -> None:
    sequencer = sequencer_of(server)
    pid = sequencer.pid
    assert pid is not None
    sequencer.stop()
    assert not alive(pid)
    assert not sequencer.is_leader
    sequencer.stop()  # and again when the runtime closes at teardown


def test_sigterm_stops_the_sequencer_process_cleanly_and_it_is_not_replaced(server: LiveServer) -> None:
    """A service manager's SIGTERM reaches the whole group: the sequencer ends its step, exits 0, and stays ended."""
    sequencer = sequencer_of(server)
    pid = sequencer.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid) and not sequencer.is_leader, 10, "the sequencer process stopping")
    time.sleep(RESTART_PAUSE + 0.5)
    assert sequencer.pid == pid, "a stopped sequencer process was replaced as if it had crashed"


def test_stopping_while_a_dead_sequencer_waits_to_be_replaced_starts_no_other(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sequencer_process, "RESTART_PAUSE", 5.0)  # ample time to stop() within the pause
    sequencer = sequencer_of(server)
    pid = sequencer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 5, "the sequencer process gone")
    time.sleep(0.5)  # the service has seen the pipe end and waits before starting another
    began = time.monotonic()
    sequencer.stop()
    assert time.monotonic() - began < 4  # no wait for the pause to end
    time.sleep(1)
    assert sequencer.pid == pid, "a sequencer process was started after stop()"


def test_each_checkpoint_the_process_signs_reaches_the_live_view_at_once(
    serve: Callable[..., LiveServer], election: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live view (results, events) looks at the checkpoint when the sequencer process says it signed one."""
    monkeypatch.setattr(live_module, "POLL", 60.0)  # no look of its own in this test's time
    server = serve(workers=1)
    wait_until(lambda: server.client.get("/healthz").json()["sequencer"], 10, "the sequencer process leading")
    post(server, election.actas[0])
    wait_until(
        lambda: (snapshot := server.runtime.live.snapshot) is not None and snapshot.checkpoint.size > ELECTION_ENTRIES,
        5,
        "the live view taking in the new checkpoint",
    )
