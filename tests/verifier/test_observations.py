"""Observations in a published log: a readable, witness-signed copy verifies; anything else fails step 7."""

from __future__ import annotations

import hashlib
from pathlib import Path

from actas.core import canonical
from actas.core.b64 import b64encode
from actas.core.entries import observation_entry
from actas.core.keys import CONTEXT_OBSERVATION, Signer
from actas.core.qr import encode_payload
from actas.core.verify import S_ACTAS
from actas.publish.bundle import publish_bundle
from actas.storage.blobs import FileBlobStore
from tests.factories import seed, signed_acta
from tests.verifier.test_injection import ELECTION, build, describe, failures_at, run, valid_log

WITNESS = Signer("witness-1", seed("witness-1"))
IMAGE = b"\x89PNG\r\n\x1a\n not really a picture, only its hash matters to the log"
DIGEST = hashlib.sha256(IMAGE).hexdigest()


def observation(mesa: int, mesa_id: str | None = None) -> bytes:
    payload = encode_payload(signed_acta(ELECTION, mesa))
    return observation_entry(ELECTION.origin, mesa_id or ELECTION.mesa_id(mesa), "actas1", DIGEST, payload, WITNESS)


def test_log_with_observations_verifies_and_publishes_their_images(tmp_path: Path) -> None:
    data = build(tmp_path / "data", [*valid_log(), observation(0), observation(1)])
    FileBlobStore(data.images).put(IMAGE)
    publish_bundle(data, tmp_path / "bundle")
    assert (tmp_path / "bundle" / "images" / f"{DIGEST}.png").read_bytes() == IMAGE
    from actas.verifier.readers import DirectoryReader
    from actas.verifier.runner import verify
    from tests.factories import authority

    report = verify(DirectoryReader(tmp_path / "bundle"), authority().verifier, workers=0)
    assert report.ok, describe(report)
    assert report.counts.get("observation") == 2


def test_observation_naming_another_mesa_fails_step_7(tmp_path: Path) -> None:
    bad = observation(1, mesa_id=ELECTION.mesa_id(2))
    report = run(tmp_path, [*valid_log(), bad], results=False)
    failures = failures_at(report, S_ACTAS)
    assert len(failures) == 1, describe(report)
    assert "payload is for mesa" in failures[0].message


def test_observation_with_a_bad_witness_signature_fails_step_7(tmp_path: Path) -> None:
    value = canonical.decode(observation(0))
    assert isinstance(value, dict)
    body = {k: v for k, v in value.items() if k != "sig"}
    body["image"] = hashlib.sha256(b"other").hexdigest()
    other = Signer("witness-2", seed("witness-2"))  # signs, but the entry names witness-1
    forged = canonical.encode(
        {**body, "sig": b64encode(other.sign_in_context(CONTEXT_OBSERVATION, canonical.encode(body)))}
    )
    report = run(tmp_path, [*valid_log(), forged], results=False)
    failures = failures_at(report, S_ACTAS)
    assert [f.message for f in failures] == [
        f"observation of mesa {ELECTION.mesa_id(0)!r}: witness signature does not verify"
    ]
