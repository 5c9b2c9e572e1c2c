"""Fuzzing the HTTP API of a real server on 127.0.0.1, bounded and derandomized.

* schemathesis generates requests from the app's own OpenAPI schema (/openapi.json as served) for every
  operation but the infinite event stream, and checks: never a 5xx, only documented status codes, only
  documented content types.
* hypothesis sends random bytes and mutated real actas (as JSON, as QR payloads, in batches) and checks the
  server agrees with a local check of each submission: valid actas are stored, nothing else ever is, and no
  request gets a 5xx.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance
from schemathesis.core.result import Ok

from actas.core.acta import Acta
from actas.core.election import Election as Definition
from actas.core.entries import ActaEntry, acta_entry, parse_entry
from actas.core.keys import Verifier
from actas.core.merkle import leaf_hash
from actas.core.qr import encode_payload
from actas.log.validate import check_one
from actas.simulate.run import device_signer
from tests.service.conftest import MESAS, SEED, Election, LiveServer

# The batch route takes NDJSON, which schemathesis has no serializer for: send the generated text as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Every operation of the schema but /v1/events, with the generation modes that can produce cases for it
# (negative cases need something to make invalid: a body or a query; a string path parameter cannot be).
FUZZED: dict[tuple[str, str], tuple[GenerationMode, ...]] = {
    ("GET", "/healthz"): (POSITIVE,),
    ("POST", "/v1/actas"): (POSITIVE, NEGATIVE),
    ("POST", "/v1/actas:batch"): (POSITIVE, NEGATIVE),
    ("POST", "/v1/observations"): (POSITIVE, NEGATIVE),
    ("GET", "/log/checkpoint"): (POSITIVE,),
    ("GET", "/log/tile/{path}"): (POSITIVE,),
    ("GET", "/election.json"): (POSITIVE,),
    ("GET", "/keys/authority.vkey"): (POSITIVE,),
    ("GET", "/v1/proof/{leaf}"): (POSITIVE,),
    ("GET", "/v1/results"): (POSITIVE, NEGATIVE),
    ("GET", "/v1/mesas/{mesa}"): (POSITIVE,),
    ("POST", "/v1/cosignatures"): (POSITIVE, NEGATIVE),
}
NOT_FUZZED = {("GET", "/v1/events")}  # an endless server-sent-event stream: see test_events_stream_starts
EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def stored(server: LiveServer) -> tuple[int, int]:
    """(queued submissions, logged entries) through a new store connection (a store caches its size)."""
    store = server.runtime.open_store()
    try:
        pending = store.pending_count()  # first: the sequencer appends, then takes submissions off the queue
        return pending, store.size()
    finally:
        store.close()


def settle(server: LiveServer, timeout: float = 10) -> int:
    """Wait until the queue is empty and the served checkpoint covers the log; its size."""
    deadline = time.monotonic() + timeout
    while True:
        pending, size = stored(server)
        snapshot = server.runtime.live.snapshot
        if pending == 0 and snapshot is not None and snapshot.checkpoint.size == size:
            return size
        assert time.monotonic() < deadline, f"log did not settle: {pending} pending, size {size}"
        server.runtime.live.poke()
        time.sleep(0.02)


def logged_since(server: LiveServer, start: int) -> list[bytes]:
    """The entries logged at index start and after, once the log has settled."""
    size = settle(server)
    store = server.runtime.open_store()
    try:
        return store.read(start, size)
    finally:
        store.close()


# -- schemathesis, from the served OpenAPI schema ----------------------------------------------------------------


def test_every_operation_is_fuzzed_or_deliberately_excluded(server: LiveServer) -> None:
    """A new route cannot slip past the fuzzer: the schema's operations are exactly FUZZED plus NOT_FUZZED."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.add((result.ok().method.upper(), result.ok().path))
    assert operations == set(FUZZED) | NOT_FUZZED


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [pytest.param(m, p, mode, id=f"{m} {p} {mode.value}") for (m, p), modes in FUZZED.items() for mode in modes],
)
def test_operation_conforms_to_its_schema(server: LiveServer, method: str, path: str, mode: GenerationMode) -> None:
    """Generated requests never get a 5xx, nor a status code or content type the schema does not document.

    Random submissions can never carry a valid device signature, so fuzzing stores nothing.
    """
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operation = schema[path][method]
    before = (0, settle(server))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Case[Any]) -> None:
        case.call_and_validate(base_url=server.url, checks=CHECKS)

    run()
    assert stored(server) == before


def test_events_stream_starts_with_the_checkpoint(server: LiveServer) -> None:
    """/v1/events (not fuzzed: it never ends) answers an event stream whose first event is the checkpoint."""
    size = settle(server)
    with server.client.stream("GET", "/v1/events", timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        for line in response.iter_lines():
            if not line and lines:
                break
            lines.append(line)
    assert lines[:2] == [f"id: {size}", "event: checkpoint"]
    assert json.loads(lines[2].removeprefix("data: "))["size"] == size


# -- hypothesis: random and mutated submissions -------------------------------------------------------------------


@dataclasses.dataclass
class Oracle:
    """Decides locally whether a submission is a storable acta, and remembers the ones that are."""

    definition: Definition
    authority: Verifier
    enrolled: dict[str, str]  # device key -> its mesa
    valid: set[bytes] = dataclasses.field(default_factory=set)  # leaf hashes

    def judge(self, data: bytes) -> bool:
        """Whether the service must store data (a well-formed, signed, rule-abiding acta of an enrolled key)."""
        checked = check_one(data, self.definition, self.authority)
        entry = checked.entry
        ok = entry is not None and entry.kind == "acta" and self.enrolled.get(checked.signer or "") == entry.mesa
        if ok:
            self.valid.add(leaf_hash(data))
        return ok


def oracle(server: LiveServer) -> Oracle:
    """The oracle for the election the server runs."""
    election = server.runtime.election
    devices = {str(device_signer(SEED, i).verifier): election.mesa_id(i) for i in range(MESAS)}
    return Oracle(election, server.runtime.verifier, devices)


def acta_of(data: bytes) -> Acta:
    """The acta of signed entry bytes."""
    entry = parse_entry(data).entry
    assert isinstance(entry, ActaEntry)
    return entry.acta


COUNTS = ("blank", "null", "registered")
VALUES = st.one_of(
    st.integers(-(2**60), 2**60),
    st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=40),
    st.none(),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def submissions(actas: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, and real actas: as sent, byte-mutated, field-mutated, and field-mutated then re-signed."""
    real = st.sampled_from(actas)

    @st.composite
    def byte_mutated(draw: st.DrawFn) -> bytes:
        data = draw(real)
        i = draw(st.integers(0, len(data) - 1))
        j = draw(st.integers(i, min(len(data), i + 8)))
        return data[:i] + draw(st.binary(max_size=8)) + data[j:]

    @st.composite
    def field_mutated(draw: st.DrawFn) -> bytes:
        value = json.loads(draw(real))
        key = draw(st.sampled_from([*sorted(value), "extra"]))
        if draw(st.booleans()):
            value[key] = draw(VALUES)
        else:
            value.pop(key, None)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @st.composite
    def resigned(draw: st.DrawFn) -> bytes:
        mesa = draw(st.integers(0, len(actas) - 1))  # the stations' actas are in mesa order
        acta = acta_of(actas[mesa])
        # The mesa's own device (the acta may well be valid: then it is new, a duplicate or a conflict), or another.
        device = device_signer(SEED, draw(st.sampled_from([mesa, (mesa + 1) % MESAS])))
        field = draw(st.sampled_from([*COUNTS, "tickets", "options"]))
        delta = draw(st.integers(-3, 3))
        changes: dict[str, Any] = {"device": str(device.verifier)}
        if field in COUNTS:
            changes[field] = getattr(acta, field) + delta
        else:
            values = list(getattr(acta, field))
            values[draw(st.integers(0, len(values) - 1))] += delta
            changes[field] = tuple(values)
        return acta_entry(dataclasses.replace(acta, **changes), device)

    return st.one_of(st.binary(max_size=600), real, byte_mutated(), field_mutated(), resigned())


def fuzz_settings(test: Callable[..., None]) -> Callable[..., None]:
    """Bounded, reproducible hypothesis settings for the submission fuzzers."""
    return settings(max_examples=120, deadline=None, derandomize=True, database=None)(test)


def check_single(response: httpx.Response, data: bytes, valid: bool) -> None:
    """One /v1/actas answer agrees with the oracle's verdict on data."""
    assert response.status_code < 500, response.text
    if valid:
        assert response.status_code in (200, 201, 409), response.text
        assert response.json()["leaf_hash"] == leaf_hash(data).hex()
    else:
        assert response.status_code in (400, 403, 413, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == response.status_code


def check_final(server: LiveServer, start: int, judge: Oracle) -> None:
    """Exactly the valid submissions were logged after start, and nothing waits in the queue."""
    leaves = [leaf_hash(data) for data in logged_since(server, start)]
    assert len(leaves) == len(set(leaves))
    assert set(leaves) == judge.valid


def test_random_and_mutated_actas_store_only_valid_ones(server: LiveServer, election: Election) -> None:
    """Random and mutated submissions to /v1/actas never get a 5xx; only the valid actas among them are stored."""
    judge = oracle(server)
    start = settle(server)

    @fuzz_settings
    @given(data=submissions(election.actas))
    def run(data: bytes) -> None:
        valid = judge.judge(data)
        check_single(server.client.post("/v1/actas", content=data), data, valid)

    run()
    check_final(server, start, judge)


def test_random_and_mutated_qr_payloads_store_only_valid_ones(server: LiveServer, election: Election) -> None:
    """The same submissions as QR payloads (text/plain), plus damaged payloads: no 5xx, only valid actas stored."""
    judge = oracle(server)
    start = settle(server)

    @st.composite
    def payloads(draw: st.DrawFn) -> tuple[str, bytes | None]:
        data = draw(submissions(election.actas))
        payload = encode_payload(data)
        if draw(st.booleans()):
            return payload, data
        i = draw(st.integers(0, len(payload)))
        j = draw(st.integers(i, min(len(payload), i + 4)))
        damaged = payload[:i] + draw(st.text(max_size=4)) + payload[j:]
        return damaged, (data if damaged == payload else None)

    @fuzz_settings
    @given(item=payloads())
    def run(item: tuple[str, bytes | None]) -> None:
        payload, data = item
        response = server.client.post("/v1/actas", content=payload.encode(), headers={"content-type": "text/plain"})
        if data is not None:
            check_single(response, data, judge.judge(data))
            return
        assert response.status_code < 500, response.text
        if response.status_code in (200, 201, 409):  # damage that still decodes to a valid entry
            store = server.runtime.open_store()
            try:
                (submission,) = store.submitted([bytes.fromhex(response.json()["leaf_hash"])]).values()
            finally:
                store.close()
            assert judge.judge(submission.entry.data)
        else:
            assert response.headers["content-type"] == "application/problem+json"

    run()
    check_final(server, start, judge)


def test_random_and_mutated_batches_store_only_valid_lines(server: LiveServer, election: Election) -> None:
    """Batches of random and mutated lines get one result per line, no 5xx; only the valid lines are stored."""
    judge = oracle(server)
    start = settle(server)
    lines = st.lists(submissions(election.actas).map(lambda data: data.replace(b"\n", b"")), max_size=6)

    @fuzz_settings
    @given(batch=lines)
    def run(batch: list[bytes]) -> None:
        response = server.client.post("/v1/actas:batch", content=b"".join(line + b"\n" for line in batch))
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        assert [r["line"] for r in results] == list(range(1, len(batch) + 1))
        for line, result in zip(batch, results, strict=True):
            sent = line.removesuffix(b"\r")
            if judge.judge(sent):
                assert result["status"] in ("accepted", "duplicate", "conflict"), result
                assert result["leaf_hash"] == leaf_hash(sent).hex()
            else:
                assert result["status"] == "rejected", result
                assert 400 <= result["problem"]["status"] < 500

    run()
    check_final(server, start, judge)


def test_oracle_agrees_with_known_cases(server: LiveServer, election: Election) -> None:
    """The fuzzers' oracle accepts a station's acta and refuses a re-signed one from another mesa's device."""
    judge = oracle(server)
    assert judge.judge(election.actas[0])
    other = device_signer(SEED, 1)
    acta = dataclasses.replace(acta_of(election.actas[0]), device=str(other.verifier))
    assert not judge.judge(acta_entry(acta, other))
    assert not judge.judge(b"{}")
    assert judge.valid == {leaf_hash(election.actas[0])}
