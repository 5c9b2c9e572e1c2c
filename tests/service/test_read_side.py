"""The live read side: results bound to a checkpoint, mesa pages with proofs, the event stream."""

from __future__ import annotations

import json
import queue
import threading

import httpx

from actas.core.keys import Verifier
from actas.core.proof import TlogProof
from actas.publish.results import compute_results
from actas.storage.layout import DataDir
from tests.service.conftest import Election, LiveServer

NDJSON = {"content-type": "application/x-ndjson"}


def _submit_all(server: LiveServer, election: Election) -> int:
    answer = server.client.post("/v1/actas:batch", content=b"\n".join(election.actas), headers=NDJSON)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == len(election.actas)
    size = 1 + 2 * len(election.actas)  # election entry, enrollments, actas
    server.wait_for_size(size)
    return size


def test_results_equal_the_tally_of_the_same_checkpoint(server: LiveServer, election: Election) -> None:
    """Every area's live totals equal the published results files computed from the same checkpoint."""
    size = _submit_all(server, election)
    published = compute_results(DataDir(election.root))
    assert published.checkpoint.size == size
    files = {path: json.loads(data) for path, data in published.files.items()}
    national = server.client.get("/v1/results").json()
    assert national["checkpoint"]["size"] == size
    expected = files["results/presidente/national.json"]["areas"][0]
    assert national["area"] == expected | {"level": "national"}
    for path, content in files.items():
        if path.endswith("national.json"):
            continue
        for area in content["areas"]:
            live = server.client.get("/v1/results", params={"area": area["code"]}).json()
            assert live["checkpoint"] == national["checkpoint"]
            assert {k: v for k, v in live["area"].items() if k != "level"} == area, area["code"]


def test_mesa_page_carries_a_proof_that_verifies(server: LiveServer, election: Election) -> None:
    """The counted acta of a mesa comes with a tlog-proof that verifies against the authority key."""
    _submit_all(server, election)
    entry = election.actas[7]
    mesa = json.loads(entry)["mesa"]
    page = server.client.get(f"/v1/mesas/{mesa}").json()
    (acta,) = page["contests"][0]["actas"]
    assert acta["status"] == "counted"
    assert json.loads(entry) == acta["entry"]
    authority = Verifier.parse((election.root / "keys" / "authority.vkey").read_text().strip())
    checkpoint = TlogProof.parse(acta["proof"].encode()).verify(entry, authority)
    assert checkpoint.size == page["checkpoint"]["size"]


def test_event_stream_announces_new_checkpoints_and_results(server: LiveServer, election: Election) -> None:
    """A client of /v1/events hears the current checkpoint, then each new one and a results event."""
    frames: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()

    def listen() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client, client.stream("GET", "/v1/events") as stream:
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    value = json.loads(line.removeprefix("data: "))
                    frames.put((event, value))
                    if event == "results" and value["counted"] == len(election.actas):
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    kind, first = frames.get(timeout=5)
    assert kind == "checkpoint"
    assert first["size"] == 1 + len(election.actas)  # enrollments only
    _submit_all(server, election)
    thread.join(timeout=10)
    assert not thread.is_alive(), "no results event counting every acta"
    seen = [frames.get_nowait() for _ in range(frames.qsize())]
    assert ("checkpoint", 1 + 2 * len(election.actas)) in [(kind, value.get("size")) for kind, value in seen]
    assert seen[-1][0] == "results"
    assert seen[-1][1]["conflicts"] == 0
