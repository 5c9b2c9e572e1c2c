"""Every error the results service answers with, over real HTTP: status, problem+json body, and nothing stored.

Each test drives a real uvicorn server on 127.0.0.1 (tests/service/conftest.py) and, for every rejected
submission, checks that the store did not change: the log size and the submission queue are as they were, the
leaf was never submitted nor logged, and /v1/proof for it answers 404. Conflicts are the one exception by
design: a different acta for a mesa is stored and logged, flagged as a conflict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from actas.core import canonical
from actas.core.acta import RULE_OPTION_TOTALS, RULE_WITHIN_REGISTERED, Acta, check_rules, errors_of
from actas.core.b64 import b64decode, b64encode
from actas.core.election import Election as Definition
from actas.core.entries import ActaEntry, acta_entry, enroll_entry, parse_entry
from actas.core.keys import Signer
from actas.core.merkle import leaf_hash
from actas.core.qr import PREFIX, base45_encode, encode_payload
from actas.service.app import create_app
from actas.service.ratelimit import Limit
from actas.simulate.run import device_signer
from tests.service.conftest import MESAS, SEED, Election, LiveServer

PROBLEM = "application/problem+json"
RULE_REGISTERED_MATCHES = "registered-matches"  # declared by the simulated election (severity error)

# -- building and signing actas ------------------------------------------------------------------------------------


def definition(election: Election) -> Definition:
    """The election definition of the data directory."""
    return Definition.from_json((election.root / "election.json").read_bytes())


def acta_of(data: bytes) -> Acta:
    """The acta inside signed entry bytes."""
    entry = parse_entry(data).entry
    assert isinstance(entry, ActaEntry)
    return entry.acta


def device_of(election: Election, mesa: str) -> Signer:
    """The enrolled (simulated) device key of a mesa."""
    index = definition(election).mesa_index(mesa)
    assert index is not None
    return device_signer(SEED, index)


def sign(acta: Acta, device: Signer) -> bytes:
    """Canonical entry bytes of an acta, naming and signed by device."""
    return acta_entry(dataclasses.replace(acta, device=str(device.verifier)), device)


def variant(election: Election, n: int) -> bytes:
    """A different acta for the mesa of the n-th station acta, breaking no rule, signed by the mesa's device."""
    acta = acta_of(election.actas[n])
    changed = dataclasses.replace(acta, blank=acta.blank - 1 if acta.blank > 0 else acta.blank + 1)
    assert not errors_of(check_rules(changed, definition(election)))
    return sign(changed, device_of(election, acta.mesa))


def with_sig(data: bytes, signature: bytes) -> bytes:
    """The same entry with another signature, still canonical."""
    value = canonical.decode(data)
    value["sig"] = b64encode(signature)
    return canonical.encode(value)


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE, as the QR payload carries an entry."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def rogue_key() -> Signer:
    """A well-formed device key that no enrollment names."""
    return Signer("dev-rogue", hashlib.sha256(b"actas-tests/rogue-device").digest())


# -- the store, before and after -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the store holds: logged entries and submissions waiting for the sequencer."""

    size: int
    pending: int


def stored(server: LiveServer) -> Stored:
    """What the store holds now, read through a new connection (a store caches its size when opened).

    The queue is read first: the sequencer appends, then marks submissions sequenced, so a size read after an
    empty queue includes everything that left it.
    """
    store = server.runtime.open_store()
    try:
        pending = store.pending_count()
        return Stored(store.size(), pending)
    finally:
        store.close()


def settle(server: LiveServer, timeout: float = 10) -> Stored:
    """Wait until every stored submission is logged and the served checkpoint covers the whole log."""
    deadline = time.monotonic() + timeout
    while True:
        now = stored(server)
        snapshot = server.runtime.live.snapshot
        if now.pending == 0 and snapshot is not None and snapshot.checkpoint.size == now.size:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"log did not settle: {now}, checkpoint {snapshot and snapshot.checkpoint.size}")
        server.runtime.live.poke()
        time.sleep(0.02)


def assert_not_stored(server: LiveServer, before: Stored, *entries: bytes) -> None:
    """The store is unchanged since before, and none of entries was ever submitted, logged or provable."""
    leaves = [leaf_hash(data) for data in entries]
    assert stored(server) == before
    store = server.runtime.open_store()
    try:
        assert store.submitted(leaves) == {}
        assert store.find_hashes(leaves) == {}
    finally:
        store.close()
    for leaf in leaves:
        body = assert_problem(server.client.get(f"/v1/proof/{leaf.hex()}"), 404, "not-found", "never received")
        assert body["instance"] == f"/v1/proof/{leaf.hex()}"


def assert_stored(server: LiveServer, *entries: bytes) -> None:
    """Each entry is logged under a checkpoint that /v1/proof proves it against."""
    settle(server)
    store = server.runtime.open_store()
    try:
        found = store.find_hashes([leaf_hash(data) for data in entries])
    finally:
        store.close()
    assert len(found) == len(entries)
    for data in entries:
        response = server.client.get(f"/v1/proof/{leaf_hash(data).hex()}")
        assert response.status_code == 200, response.text


def assert_problem(response: httpx.Response, status: int, code: str, detail: str) -> dict[str, Any]:
    """response is an RFC 9457 problem of this status and code whose detail names what is at fault."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:actas:problem:{code}"
    assert body["code"] == code
    assert body["status"] == status
    assert detail in body["detail"], body["detail"]
    return body


def post(server: LiveServer, data: bytes, media: str = "application/json") -> httpx.Response:
    """POST one submission to /v1/actas."""
    return server.client.post("/v1/actas", content=data, headers={"content-type": media})


def post_batch(server: LiveServer, lines: list[bytes]) -> httpx.Response:
    """POST NDJSON lines to /v1/actas:batch."""
    body = b"".join(line + b"\n" for line in lines)
    return server.client.post("/v1/actas:batch", content=body, headers={"content-type": "application/x-ndjson"})


def rejected(
    server: LiveServer, data: bytes, status: int, code: str, detail: str, media: str = "application/json"
) -> dict[str, Any]:
    """Submit data, expect the problem, and check nothing was stored for it."""
    before = settle(server)
    body = assert_problem(post(server, data, media), status, code, detail)
    assert body["instance"] == "/v1/actas"
    assert_not_stored(server, before, data)
    return body


# -- malformed: 400 ------------------------------------------------------------------------------------------------


def test_not_json_is_malformed(server: LiveServer) -> None:
    """Bytes that are not JSON are refused with 400 malformed naming the byte, and not stored."""
    rejected(server, b"not json", 400, "malformed", "invalid JSON at byte 0")


def test_non_ascii_non_json_is_malformed(server: LiveServer) -> None:
    """Invalid UTF-8 is refused with 400 malformed naming the byte, and not stored."""
    rejected(server, b"\xff\xfe{}", 400, "malformed", "invalid UTF-8 at byte 0")


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda value: json.dumps(value, indent=1).encode(), id="whitespace"),
        pytest.param(lambda value: json.dumps(value, separators=(", ", ": ")).encode(), id="spaces"),
        pytest.param(
            lambda value: json.dumps(dict(reversed(list(value.items()))), separators=(",", ":")).encode(),
            id="reordered-keys",
        ),
    ],
)
def test_non_canonical_json_is_refused(server: LiveServer, election: Election, rewrite: Callable[[Any], bytes]) -> None:
    """A correctly signed acta re-encoded non-canonically is refused with 400 non-canonical (a malformed kind)."""
    data = rewrite(canonical.decode(election.actas[0]))
    assert data != election.actas[0]
    body = rejected(server, data, 400, "non-canonical", "not canonical JSON (first difference at byte")
    assert body["title"] == "Bad Request"


def test_unknown_entry_type_is_malformed(server: LiveServer, election: Election) -> None:
    """An entry of an unknown type is refused with 400 naming entry.type, and not stored."""
    value = canonical.decode(election.actas[0])
    value["type"] = "ballot"
    rejected(server, canonical.encode(value), 400, "malformed", "entry.type: unknown entry type 'ballot'")


def test_missing_field_is_malformed(server: LiveServer, election: Election) -> None:
    """An acta without one of its fields is refused with 400 naming the missing field."""
    value = canonical.decode(election.actas[0])
    del value["blank"]
    rejected(server, canonical.encode(value), 400, "malformed", "missing blank")


def test_enroll_entry_is_refused(server: LiveServer, election: Election) -> None:
    """A valid, authority-signed enroll entry is refused at /v1/actas (actas only) and never stored."""
    authority = Signer.parse((election.root / "keys" / "authority.key").read_text().strip())
    mesa = definition(election).mesa_id(0)
    data = enroll_entry(definition(election).origin, rogue_key().verifier, [mesa], authority)
    rejected(server, data, 400, "malformed", "entry.type: 'enroll'; this endpoint takes acta entries")


def test_unsupported_content_type_is_malformed(server: LiveServer, election: Election) -> None:
    """A body of a media type other than JSON or the QR text is refused with 400 naming the content-type."""
    rejected(server, election.actas[0], 400, "malformed", "content-type 'application/xml'", "application/xml")


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        pytest.param(
            lambda e: encode_payload(e)[:10] + "a" + encode_payload(e)[11:], "payload at 10: 'a'", id="bad-char"
        ),
        pytest.param(lambda e: encode_payload(e)[:-2], "payload: the compressed entry is truncated", id="truncated"),
        pytest.param(lambda e: encode_payload(e)[:-1], "Base45 text cannot end with a lone character", id="lone-char"),
        pytest.param(lambda e: "ACTAS2" + encode_payload(e)[6:], "does not start with 'ACTAS1:'", id="bad-prefix"),
        pytest.param(lambda e: PREFIX + base45_encode(deflate(e) + b"!"), "data after the end", id="trailing-data"),
        pytest.param(lambda e: PREFIX + base45_encode(e), "the compressed entry is damaged", id="not-deflated"),
        pytest.param(lambda e: PREFIX + "Z" * 4300, "characters is more than a QR code holds", id="too-long"),
    ],
)
def test_bad_qr_payload_is_malformed(
    server: LiveServer, election: Election, damage: Callable[[bytes], str], detail: str
) -> None:
    """A damaged QR payload sent as text/plain is refused with 400 naming the position or reason; nothing stored."""
    payload = damage(election.actas[0])
    before = settle(server)
    response = post(server, payload.encode(), "text/plain")
    assert_problem(response, 400, "malformed", detail)
    assert_not_stored(server, before, election.actas[0])


def test_non_ascii_qr_payload_is_malformed(server: LiveServer, election: Election) -> None:
    """A text/plain body that is not ASCII is refused with 400 before decoding."""
    before = settle(server)
    assert_problem(post(server, "ACTAS1:é".encode(), "text/plain"), 400, "malformed", "payload: not ASCII text")
    assert_not_stored(server, before, election.actas[0])


@pytest.mark.parametrize("leaf", ["zz", "A" * 64, "0" * 63, "0" * 65, "g" * 64, "%20" + "0" * 63])
def test_proof_of_a_non_hex_leaf_is_malformed(server: LiveServer, leaf: str) -> None:
    """/v1/proof/<not 64 lowercase hex> is 400 malformed naming the leaf parameter."""
    assert_problem(server.client.get(f"/v1/proof/{leaf}"), 400, "malformed", "leaf: expected 64 lowercase hex")


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("area=nowhere", "area: 'nowhere' is not an area"),
        ("area=%FF%FE", "is not an area"),
        ("area=01&area=zz", "area: 'zz' is not an area"),
        ("contest=senado", "contest: 'senado' is not a contest"),
        ("contest=%00", "is not a contest"),
    ],
)
def test_results_of_unknown_area_or_contest_is_not_found(server: LiveServer, query: str, detail: str) -> None:
    """Unknown or odd query values for /v1/results are 404 problem+json, never FastAPI's 422 JSON."""
    assert_problem(server.client.get(f"/v1/results?{query}"), 404, "not-found", detail)


def test_results_ignores_unknown_query_parameters(server: LiveServer) -> None:
    """An unknown query parameter does not change the answer: the national totals."""
    response = server.client.get("/v1/results?nonsense=1&page=-3")
    assert response.status_code == 200
    assert response.json()["area"]["level"] == "national"


@contextlib.contextmanager
def serve_app(app: FastAPI) -> Iterator[httpx.Client]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) for the duration of the block."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_request_validation_errors_are_problem_400(server: LiveServer) -> None:
    """FastAPI's request-validation path answers 400 problem+json naming the parameter, not its default 422 JSON.

    Every route of the service takes string parameters, so no request reaches that path today; the app's
    handler is exercised through a typed probe route added to a second app over the same runtime.
    """
    app = create_app(server.runtime)

    @app.get("/probe/{number}")
    def probe(number: int, flag: bool = False) -> dict[str, int]:
        return {"number": number}

    with serve_app(app) as client:
        assert client.get("/probe/7").json() == {"number": 7}
        assert_problem(client.get("/probe/seven"), 400, "malformed", "path.number:")
        assert_problem(client.get("/probe/7?flag=perhaps"), 400, "malformed", "query.flag:")


# -- bad signature: 422 --------------------------------------------------------------------------------------------


def test_flipped_signature_bit_is_bad_signature(server: LiveServer, election: Election) -> None:
    """One flipped bit in an acta's signature is 422 bad-signature; nothing stored."""
    data = election.actas[0]
    signature = bytearray(b64decode(canonical.decode(data)["sig"], "sig", 64))
    signature[17] ^= 0x04
    rejected(server, with_sig(data, bytes(signature)), 422, "bad-signature", "device signature does not verify")


def test_count_changed_after_signing_is_bad_signature(server: LiveServer, election: Election) -> None:
    """A count changed after the device signed (rules still hold) is 422 bad-signature; nothing stored."""
    value = canonical.decode(election.actas[1])
    value["blank"] -= 1
    value["null"] += 1
    data = canonical.encode(value)
    rejected(server, data, 422, "bad-signature", "ActaEntry: the device signature does not verify")


# -- rule broken: 422 ----------------------------------------------------------------------------------------------


def test_option_totals_disagreeing_with_tickets_is_rule_broken(server: LiveServer, election: Election) -> None:
    """Option totals that are not the ticket sums, signed by the enrolled device, are 422 naming that rule."""
    acta = acta_of(election.actas[2])
    options = (acta.options[0] + 1, *acta.options[1:])
    data = sign(dataclasses.replace(acta, options=options), device_of(election, acta.mesa))
    body = rejected(server, data, 422, "rule-broken", RULE_OPTION_TOTALS)
    assert body["rules"] == [RULE_OPTION_TOTALS]


def test_votes_over_registered_is_rule_broken(server: LiveServer, election: Election) -> None:
    """More ballots than registered voters, signed by the enrolled device, are 422 naming votes-within-registered."""
    acta = acta_of(election.actas[3])
    null = acta.registered - acta.valid_votes - acta.blank + 1
    data = sign(dataclasses.replace(acta, null=null), device_of(election, acta.mesa))
    body = rejected(server, data, 422, "rule-broken", f"exceeds registered {acta.registered}")
    assert body["rules"] == [RULE_WITHIN_REGISTERED]


def test_registered_differing_from_definition_is_rule_broken(server: LiveServer, election: Election) -> None:
    """A registered count the definition does not state breaks the election's declared rule (422)."""
    acta = acta_of(election.actas[4])
    data = sign(dataclasses.replace(acta, registered=acta.registered + 1), device_of(election, acta.mesa))
    body = rejected(server, data, 422, "rule-broken", RULE_REGISTERED_MATCHES)
    assert body["rules"] == [RULE_REGISTERED_MATCHES]


# -- unenrolled key: 403 -------------------------------------------------------------------------------------------


def test_acta_signed_by_another_mesas_device_is_unenrolled(server: LiveServer, election: Election) -> None:
    """A valid acta for mesa A signed by mesa B's enrolled device is 403 unenrolled-key; nothing stored."""
    acta = acta_of(election.actas[5])
    other = device_of(election, acta_of(election.actas[6]).mesa)
    data = sign(acta, other)
    rejected(server, data, 403, "unenrolled-key", f"acta for mesa {acta.mesa!r}: the device key is not enrolled")


def test_acta_signed_by_a_fresh_key_is_unenrolled(server: LiveServer, election: Election) -> None:
    """A valid acta signed by a key no enrollment names is 403 unenrolled-key; nothing stored."""
    acta = acta_of(election.actas[7])
    rejected(server, sign(acta, rogue_key()), 403, "unenrolled-key", "the device key is not enrolled for this mesa")


# -- conflict: 409 -------------------------------------------------------------------------------------------------


def test_different_acta_for_a_counted_mesa_is_a_logged_conflict(server: LiveServer, election: Election) -> None:
    """A second, correctly signed acta for a mesa is 409 conflict with both leaf hashes, logged and flagged.

    Resending it answers 409 again with the same receipt; /v1/mesas shows the first as counted, the second as a
    conflict, once a checkpoint covers them.
    """
    first = election.actas[8]
    mesa = acta_of(first).mesa
    assert post(server, first).status_code == 201
    second = variant(election, 8)
    response = post(server, second)
    body = assert_problem(response, 409, "conflict", "this mesa already has a different acta")
    assert body["leaf_hash"] == leaf_hash(second).hex()
    assert body["existing_leaf_hash"] == leaf_hash(first).hex()
    assert body["status"] == 409
    assert body["proof"] == f"/v1/proof/{leaf_hash(second).hex()}"
    assert b64decode(body["receipt"]["leaf_hash"], "receipt.leaf_hash", 32) == leaf_hash(second)

    again = post(server, second)
    assert_problem(again, 409, "conflict", "this mesa already has a different acta")
    assert again.json()["receipt"] == body["receipt"]
    assert again.json()["existing_leaf_hash"] == leaf_hash(first).hex()

    assert_stored(server, first, second)
    view = server.client.get(f"/v1/mesas/{mesa}")
    assert view.status_code == 200
    (contest,) = view.json()["contests"]
    assert contest["conflict"] is True
    statuses = {item["leaf_hash"]: item["status"] for item in contest["actas"]}
    assert statuses == {leaf_hash(first).hex(): "counted", leaf_hash(second).hex(): "conflict"}


def test_conflict_before_the_first_is_logged(server: LiveServer, election: Election) -> None:
    """Two different actas for one mesa sent back to back: the second is a conflict even before sequencing."""
    first, second = election.actas[9], variant(election, 9)
    assert post(server, first).status_code == 201
    body = assert_problem(post(server, second), 409, "conflict", "different acta")
    assert body["existing_leaf_hash"] == leaf_hash(first).hex()


# -- too large: 413 ------------------------------------------------------------------------------------------------


def test_acta_body_over_the_limit_is_too_large(serve: Callable[..., LiveServer], election: Election) -> None:
    """A valid acta whose body exceeds max_acta_body (declared by Content-Length) is 413; nothing stored."""
    data = election.actas[0]
    server = serve(max_acta_body=len(data) - 1)
    rejected(server, data, 413, "too-large", f"body of {len(data)} bytes is more than the {len(data) - 1}")
    assert post(server, b"{}").status_code == 400  # under the limit: parsed, and refused for what it is


def test_chunked_acta_body_over_the_limit_is_too_large(serve: Callable[..., LiveServer], election: Election) -> None:
    """A body over max_acta_body without Content-Length (chunked) is 413 once the limit is passed; nothing stored."""
    data = election.actas[0]
    server = serve(max_acta_body=len(data) - 1)
    before = settle(server)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 64):
            yield data[start : start + 64]

    response = server.client.post("/v1/actas", content=chunks(), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "too-large", f"body is more than the {len(data) - 1} bytes")
    assert_not_stored(server, before, data)


def test_chunked_acta_body_under_the_limit_is_accepted(server: LiveServer, election: Election) -> None:
    """A chunked body within the limit is read whole and accepted (the streaming reader loses nothing)."""
    data = election.actas[0]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 7):
            yield data[start : start + 7]

    response = server.client.post("/v1/actas", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["leaf_hash"] == leaf_hash(data).hex()


def test_batch_body_over_the_limit_is_too_large(serve: Callable[..., LiveServer], election: Election) -> None:
    """A batch body over max_batch_body is 413 as a whole, with or without Content-Length; no line is stored."""
    lines = election.actas[:3]
    body = b"".join(line + b"\n" for line in lines)
    server = serve(max_batch_body=len(body) - 1)
    before = settle(server)
    assert_problem(post_batch(server, lines), 413, "too-large", f"body of {len(body)} bytes")

    def chunks() -> Iterator[bytes]:
        yield from (line + b"\n" for line in lines)

    chunked = server.client.post("/v1/actas:batch", content=chunks(), headers={"content-type": "application/x-ndjson"})
    assert_problem(chunked, 413, "too-large", f"body is more than the {len(body) - 1} bytes")
    assert_not_stored(server, before, *lines)


def test_batch_over_the_line_limit_is_too_large(serve: Callable[..., LiveServer], election: Election) -> None:
    """A batch of more lines than max_batch_lines is 413 naming both counts; no line is stored."""
    lines = election.actas[:3]
    server = serve(max_batch_lines=2)
    before = settle(server)
    body = assert_problem(post_batch(server, lines), 413, "too-large", "3 lines is more than the 2 a batch takes")
    assert body["instance"] == "/v1/actas:batch"
    assert_not_stored(server, before, *lines)
    assert post_batch(server, lines[:2]).json()["accepted"] == 2


# -- rate limited: 429 ---------------------------------------------------------------------------------------------


def retry_after(response: httpx.Response) -> int:
    """The Retry-After header of a 429, in whole seconds (at least 1)."""
    value = int(response.headers["retry-after"])
    assert value >= 1
    return value


def test_client_address_over_its_burst_is_rate_limited(serve: Callable[..., LiveServer], election: Election) -> None:
    """Past the burst of its address limit a client gets 429 with Retry-After, and the acta is not stored."""
    server = serve(address_limit=Limit(rate=0.001, burst=2))
    assert post(server, election.actas[0]).status_code == 201
    assert post(server, election.actas[1]).status_code == 201
    before = settle(server)
    response = post(server, election.actas[2])
    body = assert_problem(response, 429, "rate-limited", "rate limit of client address '127.0.0.1'")
    assert retry_after(response) == round(body["retry_after"])
    assert body["retry_after"] > 900  # one token per 1000 s, almost nothing refilled
    assert_not_stored(server, before, election.actas[2])
    batch = post_batch(server, [election.actas[3]])
    assert_problem(batch, 429, "rate-limited", "client address")
    retry_after(batch)
    assert_not_stored(server, before, election.actas[3])


def test_device_key_over_its_burst_is_rate_limited(serve: Callable[..., LiveServer], election: Election) -> None:
    """Past the burst of its device limit a key gets 429 (even for a conflicting acta, which is then not stored).

    Another device is not affected: the limit is per key.
    """
    server = serve(device_limit=Limit(rate=0.001, burst=1))
    assert post(server, election.actas[0]).status_code == 201
    before = settle(server)
    conflicting = variant(election, 0)
    response = post(server, conflicting)
    assert_problem(response, 429, "rate-limited", "rate limit of device key 'dev-0000000+")
    retry_after(response)
    assert_not_stored(server, before, conflicting)
    assert post(server, election.actas[1]).status_code == 201


def test_device_limited_batch_lines_are_rejected(serve: Callable[..., LiveServer], election: Election) -> None:
    """In a batch, lines past their device's burst are rejected with the 429 problem; the rest are stored."""
    server = serve(device_limit=Limit(rate=0.001, burst=1))
    before = settle(server)
    conflicting = variant(election, 0)
    lines = [election.actas[0], conflicting, election.actas[1], election.actas[0]]
    response = post_batch(server, lines)
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["duplicate"], result["conflict"], result["rejected"]) == (2, 0, 0, 2)
    assert [r["status"] for r in result["results"]] == ["accepted", "rejected", "accepted", "rejected"]
    for line in (2, 4):
        problem = result["results"][line - 1]["problem"]
        assert result["results"][line - 1]["line"] == line
        assert problem["status"] == 429
        assert problem["code"] == "rate-limited"
        assert problem["type"] == "urn:actas:problem:rate-limited"
        assert "device key 'dev-0000000+" in problem["detail"]
        assert problem["retry_after"] > 0
    assert_stored(server, election.actas[0], election.actas[1])
    store = server.runtime.open_store()
    try:
        assert store.submitted([leaf_hash(conflicting)]) == {}
        assert store.size() == before.size + 2
    finally:
        store.close()


# -- duplicates, unknown resources, paths --------------------------------------------------------------------------


def test_duplicate_resend_gets_the_same_receipt(server: LiveServer, election: Election) -> None:
    """Resending an acta (as JSON or as its QR payload) is 200 duplicate with a byte-identical receipt."""
    data = election.actas[10]
    first = post(server, data)
    assert first.status_code == 201
    assert first.json()["status"] == "accepted"
    receipt = canonical.encode(first.json()["receipt"])
    for resend in (post(server, data), post(server, encode_payload(data).encode(), "text/plain")):
        assert resend.status_code == 200, resend.text
        assert resend.headers["content-type"] == "application/json"
        assert resend.json()["status"] == "duplicate"
        assert resend.json()["leaf_hash"] == leaf_hash(data).hex()
        assert canonical.encode(resend.json()["receipt"]) == receipt
    assert_stored(server, data)
    store = server.runtime.open_store()
    try:
        assert len(store.mesa_indexes(acta_of(data).mesa, acta_of(data).contest)) == 1
    finally:
        store.close()


def test_qr_payload_is_accepted_as_the_same_entry(server: LiveServer, election: Election) -> None:
    """A well-formed QR payload (text/plain, trailing newline allowed) logs exactly the signed entry bytes."""
    data = election.actas[11]
    response = post(server, (encode_payload(data) + "\n").encode(), "text/plain; charset=us-ascii")
    assert response.status_code == 201, response.text
    assert response.json()["leaf_hash"] == leaf_hash(data).hex()
    assert_stored(server, data)


@pytest.mark.parametrize("mesa", ["999999999.99", "nope", "%FF", "%2E%2E", "010101001.01%00"])
def test_unknown_mesa_is_not_found(server: LiveServer, mesa: str) -> None:
    """/v1/mesas/<unknown> is 404 not-found naming the mesa."""
    assert_problem(server.client.get(f"/v1/mesas/{mesa}"), 404, "not-found", "is not in this election")


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/mesas/a/b", "/log/tile/0%0A/000", "/v1/proof/", "/v1/proof/a/b"])
def test_unmatched_path_is_a_problem_404(server: LiveServer, path: str) -> None:
    """A path no route matches (extra segments, a newline inside a tile path) is a 404 problem like every 404."""
    assert_problem(server.client.get(path), 404, "not-found", "no such resource")


def test_wrong_method_is_405(server: LiveServer) -> None:
    """A known path with a method it does not take is 405 with Allow (FastAPI's own answer, not a 404 problem)."""
    response = server.client.get("/v1/actas")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_known_mesa_without_actas_is_empty(server: LiveServer, election: Election) -> None:
    """A known mesa with nothing received answers 200 with no actas (not a 404)."""
    mesa = definition(election).mesa_id(MESAS - 1)
    response = server.client.get(f"/v1/mesas/{mesa}")
    assert response.status_code == 200
    assert [c["actas"] for c in response.json()["contests"]] == [[]]


TRAVERSALS = [
    "/log/tile/../../keys/authority.key",
    "/log/tile/../../../../../../etc/passwd",
    "/log/tile/0/../../../keys/authority.key",
    "/log/tile/0/x000/../../../../keys/authority.key",
    "/log/tile/..%2f..%2fkeys%2fauthority.key",
    "/log/tile/%2e%2e/%2e%2e/keys/authority.key",
    "/log/tile/%2E%2E%2F%2E%2E%2Fkeys%2Fauthority.key",
    "/log/tile//etc/passwd",
    "/log/tile/%2Fetc%2Fpasswd",
    "/log/tile/0/000%00",
    "/log/tile/0/000/../../../../keys/authority.key",
    "/log/tile/entries/000.p/../../../../keys/authority.key",
    "/log/tile/../checkpoint",
    "/log/tile/../../log.db",
    "/log/../keys/authority.key",
    "/log/tile/..\\..\\keys\\authority.key",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_tile_path_traversal_is_not_found(server: LiveServer, election: Election, path: str) -> None:
    """Dot-dot, encoded, absolute and NUL tile paths are 404 and never serve a file from outside log/tile.

    Sent with http.client, which (unlike httpx) does not normalise the path before sending it.
    """
    secret = (election.root / "keys" / "authority.key").read_bytes().strip()
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status == 404, data
    assert secret not in data
    assert b"PRIVATE+KEY" not in data
    assert b"root:" not in data
    assert b"SQLite format" not in data
    if path.startswith("/log/tile/"):
        assert response.getheader("content-type") == PROBLEM
        assert json.loads(data)["code"] == "not-found"


def test_tiles_inside_the_log_are_served(server: LiveServer, election: Election) -> None:
    """The tile route does serve real tiles of the log (the traversal test above is not vacuous)."""
    size = settle(server).size
    assert size > 0
    path = "entries/000" if size >= 256 else f"entries/000.p/{size}"
    response = server.client.get(f"/log/tile/{path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"


# -- batches: partial success --------------------------------------------------------------------------------------


def test_batch_with_good_and_bad_lines_stores_only_the_good(server: LiveServer, election: Election) -> None:
    """A mixed batch gets one result per line: good lines stored, every bad line rejected with its problem."""
    good_a, good_b = election.actas[12], election.actas[13]
    bad_sig = with_sig(election.actas[14], bytes(64))
    acta = acta_of(election.actas[15])
    broken = sign(dataclasses.replace(acta, options=(0, *acta.options[1:])), device_of(election, acta.mesa))
    unenrolled = sign(acta_of(election.actas[16]), rogue_key())
    authority = Signer.parse((election.root / "keys" / "authority.key").read_text().strip())
    enroll = enroll_entry(definition(election).origin, rogue_key().verifier, [acta.mesa], authority)
    conflict = variant(election, 12)
    earlier = election.actas[17]
    assert post(server, earlier).status_code == 201
    lines = [good_a, b"not json", good_b, bad_sig, broken, unenrolled, enroll, b"", earlier, conflict]
    expected = [
        ("accepted", None),
        ("rejected", ("malformed", 400)),
        ("accepted", None),
        ("rejected", ("bad-signature", 422)),
        ("rejected", ("rule-broken", 422)),
        ("rejected", ("unenrolled-key", 403)),
        ("rejected", ("malformed", 400)),
        ("rejected", ("malformed", 400)),
        ("duplicate", None),
        ("conflict", None),
    ]
    before = settle(server)
    response = post_batch(server, lines)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert (result["accepted"], result["duplicate"], result["conflict"], result["rejected"]) == (2, 1, 1, 6)
    assert [r["line"] for r in result["results"]] == list(range(1, len(lines) + 1))
    for item, (status, problem) in zip(result["results"], expected, strict=True):
        assert item["status"] == status
        if problem is None:
            assert "problem" not in item
            continue
        code, http_status = problem
        assert item["problem"]["code"] == code
        assert item["problem"]["status"] == http_status
        assert item["problem"]["type"] == f"urn:actas:problem:{code}"
        assert item["problem"]["detail"]
    assert result["results"][4]["problem"]["rules"] == [RULE_OPTION_TOTALS]
    assert result["results"][9]["existing_leaf_hash"] == leaf_hash(good_a).hex()
    bad = [b"not json", bad_sig, broken, unenrolled, enroll, b""]
    store = server.runtime.open_store()
    try:
        assert store.submitted([leaf_hash(line) for line in bad]) == {}
    finally:
        store.close()
    assert_stored(server, good_a, good_b, conflict)
    assert settle(server).size == before.size + 3
    assert result["results"][8]["receipt"] == post(server, earlier).json()["receipt"]
    for line in bad:
        assert_problem(server.client.get(f"/v1/proof/{leaf_hash(line).hex()}"), 404, "not-found", "never received")


def test_same_acta_twice_in_one_batch_is_logged_once(server: LiveServer, election: Election) -> None:
    """An acta repeated within one batch gets the same receipt on both lines and is logged once."""
    data = election.actas[18]
    before = settle(server)
    result = post_batch(server, [data, data]).json()
    first, second = result["results"]
    assert first["status"] == "accepted"
    assert second["status"] in ("accepted", "duplicate")  # one group commit: both lines are new to the store
    assert first["receipt"] == second["receipt"]
    assert first["leaf_hash"] == second["leaf_hash"] == leaf_hash(data).hex()
    assert_stored(server, data)
    assert settle(server).size == before.size + 1


def test_empty_batch_is_an_empty_result(server: LiveServer) -> None:
    """An empty batch body is 200 with no results (not an error, nothing stored)."""
    before = settle(server)
    response = server.client.post("/v1/actas:batch", content=b"")
    assert response.status_code == 200
    assert response.json() == {"results": [], "accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    assert_not_stored(server, before)
