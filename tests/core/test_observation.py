"""Observation entries: canonical bytes, the witness signature, and the checks that keep a wrong read out."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.core import canonical
from actas.core.b64 import b64encode
from actas.core.entries import ObservationEntry, observation_entry, parse_entry, signature_valid
from actas.core.keys import Signer
from actas.core.observation import observed_copy
from actas.core.qr import encode_payload
from actas.errors import ActasError, MalformedError, SignatureError
from tests import factories

ELECTION = factories.small_election()
WITNESS = Signer("witness-1", factories.seed("witness-1"))
IMAGE = hashlib.sha256(b"a photo").hexdigest()


def _observation(mesa: int = 0, payload: str | None = None, mesa_id: str | None = None) -> bytes:
    text = payload if payload is not None else encode_payload(factories.signed_acta(ELECTION, mesa))
    name = mesa_id if mesa_id is not None else ELECTION.mesa_id(mesa)
    return observation_entry(ELECTION.origin, name, "actas1", IMAGE, text, WITNESS)


def _resigned(value: dict[str, object]) -> bytes:
    """An observation value re-signed by the witness (to test checks beyond the signature)."""
    body = {k: v for k, v in value.items() if k != "sig"}
    signature = WITNESS.sign_in_context("actas/v1/observation", canonical.encode(body))
    return canonical.encode({**body, "sig": b64encode(signature)})


def test_round_trip_and_witness_signature() -> None:
    data = _observation()
    parsed = parse_entry(data)
    entry = parsed.entry
    assert isinstance(entry, ObservationEntry)
    assert (entry.mesa, entry.format, entry.image, entry.witness) == (
        ELECTION.mesa_id(0),
        "actas1",
        IMAGE,
        str(WITNESS.verifier),
    )
    assert signature_valid(parsed, factories.authority().verifier)  # verified under the witness key, not authority
    copy = observed_copy(entry, ELECTION)
    assert copy.entry == factories.signed_acta(ELECTION, 0)


def test_tampered_observation_fails_its_signature() -> None:
    value = canonical.decode(_observation())
    assert isinstance(value, dict)
    value["image"] = hashlib.sha256(b"another photo").hexdigest()
    parsed = parse_entry(canonical.encode(value))
    assert not signature_valid(parsed, factories.authority().verifier)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "ABC", "observation.image"),
        ("format", "pdf417", "observation.format"),
        ("mesa", "../x", "observation.mesa"),
        ("payload", "", "observation.payload"),
        ("witness", "not-a-key", "verifier key"),
    ],
)
def test_bad_fields_are_refused(field: str, value: str, message: str) -> None:
    parsed = canonical.decode(_observation())
    assert isinstance(parsed, dict)
    parsed[field] = value
    with pytest.raises(ActasError, match=message):
        parse_entry(canonical.encode(parsed))


def test_extra_or_missing_field_refused() -> None:
    value = canonical.decode(_observation())
    assert isinstance(value, dict)
    with pytest.raises(MalformedError, match="unexpected extra"):
        parse_entry(canonical.encode({**value, "extra": 1}))
    del value["image"]
    with pytest.raises(MalformedError, match="missing image"):
        parse_entry(canonical.encode(value))


def test_payload_for_another_mesa_is_refused() -> None:
    entry = parse_entry(_observation(mesa=1, mesa_id=ELECTION.mesa_id(2))).entry
    assert isinstance(entry, ObservationEntry)
    with pytest.raises(MalformedError, match=r"payload is for mesa"):
        observed_copy(entry, ELECTION)


def test_copy_with_a_forged_device_signature_is_refused() -> None:
    acta = canonical.decode(factories.signed_acta(ELECTION, 0))
    assert isinstance(acta, dict)
    acta["null"] = int(str(acta["null"])) + 1  # the paper says something the device never signed
    entry = parse_entry(_observation(payload=encode_payload(canonical.encode(acta)))).entry
    assert isinstance(entry, ObservationEntry)
    with pytest.raises(SignatureError):
        observed_copy(entry, ELECTION)


def test_observation_for_another_election_is_refused() -> None:
    value = canonical.decode(_observation())
    assert isinstance(value, dict)
    value["election"] = "results.example.org/other"
    entry = parse_entry(_resigned(value)).entry
    assert isinstance(entry, ObservationEntry)
    with pytest.raises(MalformedError, match=r"observation\.election"):
        observed_copy(entry, ELECTION)


def test_format_must_match_the_payload() -> None:
    value = canonical.decode(_observation())
    assert isinstance(value, dict)
    value["format"] = "cne2024"
    entry = parse_entry(_resigned(value)).entry
    assert isinstance(entry, ObservationEntry)
    with pytest.raises(MalformedError, match=r"observation\.format"):
        observed_copy(entry, ELECTION)


@given(st.text(max_size=200))
def test_arbitrary_payload_is_a_copy_or_a_project_error(payload: str) -> None:
    value = canonical.decode(_observation())
    assert isinstance(value, dict)
    value["payload"] = payload or "x"
    try:
        entry = parse_entry(_resigned(value)).entry
        assert isinstance(entry, ObservationEntry)
        observed_copy(entry, ELECTION)
    except ActasError:
        pass
