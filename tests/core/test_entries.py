"""Log entries: signed canonical bytes, strict parsing, and signatures that break on any change."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from actas.core import canonical
from actas.core.acta import Acta
from actas.core.b64 import b64decode, b64encode
from actas.core.entries import (
    MAX_ENTRY_SIZE,
    ActaEntry,
    ElectionEntry,
    EnrollEntry,
    acta_entry,
    election_entry,
    enroll_entry,
    parse_entry,
    signature_valid,
)
from actas.core.keys import CONTEXT_ACTA, CONTEXT_ELECTION, CONTEXT_ENROLL, Signer
from actas.errors import ActasError, KeyFormatError, MalformedError

ORIGIN = "results.example.org/test-2024"
AUTHORITY = Signer.from_seed(ORIGIN, bytes([1]) * 32)
DEVICE = Signer.from_seed("device-1", bytes([2]) * 32)
OTHER_DEVICE = Signer.from_seed("device-2", bytes([3]) * 32)
DIGEST = hashlib.sha256(b"definition").digest()
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _acta(signer: Signer = DEVICE, **changes: Any) -> Acta:
    fields: dict[str, Any] = {
        "election": ORIGIN,
        "mesa": "m1",
        "contest": "pres",
        "registered": 100,
        "tickets": (30, 20, 10),
        "options": (40, 20),
        "null": 5,
        "blank": 5,
        "device": str(signer.verifier),
    }
    fields.update(changes)
    return Acta(**fields)


def _election_bytes() -> bytes:
    return election_entry(ORIGIN, DIGEST, AUTHORITY)


def _enroll_bytes() -> bytes:
    return enroll_entry(ORIGIN, DEVICE.verifier, ["m2", "m1", "m3"], AUTHORITY)


def _acta_bytes() -> bytes:
    return acta_entry(_acta(), DEVICE)


def _resign(value: dict[str, Any], context: str, signer: Signer) -> bytes:
    """Canonical bytes of an arbitrary body with a genuine signature, so only its structure is at fault."""
    body = {k: v for k, v in value.items() if k != "sig"}
    signature = signer.sign_in_context(context, canonical.encode(body))
    return canonical.encode({**body, "sig": b64encode(signature)})


def _edited(data: bytes, context: str, signer: Signer, **changes: Any) -> bytes:
    value = canonical.decode(data)
    for key, new in changes.items():
        if new is _DROP:
            del value[key]
        else:
            value[key] = new
    return _resign(value, context, signer)


_DROP: Any = object()


# --- round trips ------------------------------------------------------------------------------------------


def test_election_entry_round_trip() -> None:
    data = _election_bytes()
    parsed = parse_entry(data)
    assert parsed.entry == ElectionEntry(ORIGIN, DIGEST, parsed.entry.signature)
    assert signature_valid(parsed, AUTHORITY.verifier)
    assert not signature_valid(parsed, DEVICE.verifier)
    value = canonical.decode(data)
    assert set(value) == {"digest", "origin", "sig", "type", "v"}
    assert value["digest"] == DIGEST.hex()
    assert parsed.signed_bytes == canonical.encode({k: v for k, v in value.items() if k != "sig"})
    assert AUTHORITY.verifier.verify_in_context(CONTEXT_ELECTION, parsed.signed_bytes, parsed.entry.signature)
    assert data == _election_bytes()  # deterministic


def test_enroll_entry_round_trip() -> None:
    data = _enroll_bytes()
    parsed = parse_entry(data)
    assert isinstance(parsed.entry, EnrollEntry)
    assert parsed.entry.election == ORIGIN
    assert parsed.entry.device == str(DEVICE.verifier)
    assert parsed.entry.mesas == ("m1", "m2", "m3")  # sorted on the way in
    assert signature_valid(parsed, AUTHORITY.verifier)
    assert not signature_valid(parsed, DEVICE.verifier)  # enrollments are the authority's to sign
    assert AUTHORITY.verifier.verify_in_context(CONTEXT_ENROLL, parsed.signed_bytes, parsed.entry.signature)


def test_acta_entry_round_trip() -> None:
    data = _acta_bytes()
    parsed = parse_entry(data)
    assert parsed.entry == ActaEntry(_acta(), parsed.entry.signature)
    # An acta is checked against the device key it names, whatever authority is passed.
    assert signature_valid(parsed, AUTHORITY.verifier)
    assert signature_valid(parsed, OTHER_DEVICE.verifier)
    assert parsed.signed_bytes == canonical.encode(_acta().to_value())
    assert DEVICE.verifier.verify_in_context(CONTEXT_ACTA, parsed.signed_bytes, parsed.entry.signature)
    assert canonical.encode({**_acta().to_value(), "sig": b64encode(parsed.entry.signature)}) == data


def test_signatures_are_domain_separated_between_entry_types() -> None:
    # The same signer signing the same body under another type's context does not verify.
    value = canonical.decode(_acta_bytes())
    body = {k: v for k, v in value.items() if k != "sig"}
    wrong = DEVICE.sign_in_context(CONTEXT_ENROLL, canonical.encode(body))
    parsed = parse_entry(canonical.encode({**body, "sig": b64encode(wrong)}))
    assert not signature_valid(parsed, AUTHORITY.verifier)


def test_acta_signed_by_another_device_is_invalid() -> None:
    # A body naming DEVICE, signed by OTHER_DEVICE: parses, but the signature does not verify.
    parsed = parse_entry(_resign(_acta().to_value(), CONTEXT_ACTA, OTHER_DEVICE))
    assert not signature_valid(parsed, OTHER_DEVICE.verifier)


def test_acta_entry_refuses_a_device_that_is_not_the_signer() -> None:
    with pytest.raises(KeyFormatError, match="device"):
        acta_entry(_acta(signer=DEVICE), OTHER_DEVICE)
    # Same public key, different name: still a different key string.
    renamed = Signer.from_seed("device-1-renamed", bytes([2]) * 32)
    with pytest.raises(KeyFormatError):
        acta_entry(_acta(signer=DEVICE), renamed)


def test_unparseable_device_key_makes_signature_invalid() -> None:
    acta = _acta(device="device-1+00000000+AAAA")
    value = {**acta.to_value(), "sig": b64encode(bytes(64))}
    parsed = parse_entry(canonical.encode(value))
    assert signature_valid(parsed, AUTHORITY.verifier) is False


# --- tampering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x02, 0x20, 0x80])
def test_every_single_byte_change_is_caught(mask: int) -> None:
    data = _acta_bytes()
    assert signature_valid(parse_entry(data), AUTHORITY.verifier)
    for i in range(len(data)):
        changed = data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
        try:
            parsed = parse_entry(changed)
        except ActasError:
            continue
        assert not signature_valid(parsed, AUTHORITY.verifier), (i, changed)


def test_every_single_byte_change_of_an_enroll_is_caught() -> None:
    data = _enroll_bytes()
    for i in range(len(data)):
        changed = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        try:
            parsed = parse_entry(changed)
        except ActasError:
            continue
        assert not signature_valid(parsed, AUTHORITY.verifier), (i, changed)


# --- rejection --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vote", "Acta", "", "observation-x"])
def test_unknown_type_rejected(kind: str) -> None:
    data = _edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, type=kind)
    with pytest.raises(MalformedError, match="unknown entry type"):
        parse_entry(data)


@pytest.mark.parametrize("kind", [None, 1, ["acta"], {"t": "acta"}, True, _DROP])
def test_non_string_or_missing_type_rejected(kind: Any) -> None:
    with pytest.raises(MalformedError, match="type"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, type=kind))


@pytest.mark.parametrize("version", [0, 2, -1, "1", True, None, [1], _DROP])
def test_version_must_be_one(version: Any) -> None:
    for data, context, signer in (
        (_acta_bytes(), CONTEXT_ACTA, DEVICE),
        (_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY),
        (_election_bytes(), CONTEXT_ELECTION, AUTHORITY),
    ):
        with pytest.raises(MalformedError, match=r"entry\.v"):
            parse_entry(_edited(data, context, signer, v=version))


@pytest.mark.parametrize(
    "field",
    ["blank", "contest", "device", "election", "mesa", "null", "options", "registered", "tickets"],
)
def test_acta_missing_field_named(field: str) -> None:
    with pytest.raises(MalformedError, match=f"acta entry: missing {field}$"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, **{field: _DROP}))


def test_missing_and_extra_fields_named() -> None:
    data = _edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, null=_DROP, blank=_DROP, zz=1, comment="x")
    with pytest.raises(MalformedError, match=r"missing blank, null; unexpected comment, zz"):
        parse_entry(data)
    with pytest.raises(MalformedError, match=r"enroll entry: unexpected signature"):
        parse_entry(_edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, signature="x"))
    with pytest.raises(MalformedError, match=r"enroll entry: missing mesas"):
        parse_entry(_edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, mesas=_DROP))
    with pytest.raises(MalformedError, match=r"election entry: missing digest"):
        parse_entry(_edited(_election_bytes(), CONTEXT_ELECTION, AUTHORITY, digest=_DROP))
    with pytest.raises(MalformedError, match=r"election entry: unexpected mesas"):
        parse_entry(_edited(_election_bytes(), CONTEXT_ELECTION, AUTHORITY, mesas=[]))


@pytest.mark.parametrize("sig", [_DROP, None, 5, [], {"s": "x"}])
def test_sig_missing_or_not_a_string(sig: Any) -> None:
    value = canonical.decode(_acta_bytes())
    if sig is _DROP:
        del value["sig"]
    else:
        value["sig"] = sig
    with pytest.raises(MalformedError, match=r"acta\.sig"):
        parse_entry(canonical.encode(value))


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_sig_must_be_64_bytes(size: int) -> None:
    value = canonical.decode(_acta_bytes())
    value["sig"] = b64encode(bytes(size))
    with pytest.raises(MalformedError, match=f"acta.sig: expected 64 bytes, got {size}"):
        parse_entry(canonical.encode(value))


def test_sig_non_canonical_base64_rejected() -> None:
    value = canonical.decode(_acta_bytes())
    sig: str = value["sig"]
    assert sig.endswith("==")  # 64 bytes leave 4 spare bits in the last character
    last = ALPHABET.index(sig[-3])
    for bits in range(1, 16):
        changed = sig[:-3] + ALPHABET[last ^ bits] + "=="
        assert ALPHABET.index(changed[-3]) >> 4 == last >> 4  # same data bits
        value["sig"] = changed
        with pytest.raises(MalformedError, match="non-canonical"):
            parse_entry(canonical.encode(value))


@pytest.mark.parametrize("sig_edit", ["strip-padding", "url-safe", "space", "newline-escape"])
def test_sig_other_base64_spellings_rejected(sig_edit: str) -> None:
    value = canonical.decode(_acta_bytes())
    sig: str = value["sig"]
    value["sig"] = {
        "strip-padding": sig.rstrip("="),
        "url-safe": sig.replace("+", "-").replace("/", "_") + ("" if "+" in sig or "/" in sig else "-"),
        "space": sig[:10] + " " + sig[10:],
        "newline-escape": sig + "\n",
    }[sig_edit]
    with pytest.raises(MalformedError, match=r"acta\.sig"):
        parse_entry(canonical.encode(value))


@pytest.mark.parametrize(
    "mesas",
    [["m2", "m1"], ["m1", "m1"], ["m1", "m2", "m2"], ["b", "a", "c"], ["M1", "m1", "A"]],
)
def test_enroll_mesas_must_be_sorted_and_unique(mesas: list[str]) -> None:
    data = _edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, mesas=mesas)
    with pytest.raises(MalformedError, match="sorted and unique"):
        parse_entry(data)


@pytest.mark.parametrize(
    "mesas",
    [[], "m1", None, [1], ["m1", 2], [1, "m1"], [["m1"]], [{"a": 1}], ["m 1"], [""], ["m\u0661"], [True]],
)
def test_enroll_mesas_must_be_ids(mesas: Any) -> None:
    # Mixed and unhashable items must give MalformedError, not a TypeError from sorting.
    with pytest.raises(MalformedError, match=r"enroll\.mesas"):
        parse_entry(_edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, mesas=mesas))


def test_enroll_entry_sorts_and_dedups_what_it_writes() -> None:
    data = enroll_entry(ORIGIN, DEVICE.verifier, ["m3", "m1", "m3"], AUTHORITY)
    assert canonical.decode(data)["mesas"] == ["m1", "m3"]


def test_enroll_device_must_be_a_key() -> None:
    with pytest.raises(KeyFormatError):
        parse_entry(_edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, device="device-1"))
    with pytest.raises(KeyFormatError):
        parse_entry(_edited(_enroll_bytes(), CONTEXT_ENROLL, AUTHORITY, device=str(DEVICE)))  # a private key


@pytest.mark.parametrize("digest", [DIGEST.hex().upper(), DIGEST.hex()[:-1], DIGEST.hex() + "0", "", 5])
def test_election_digest_must_be_lower_hex(digest: Any) -> None:
    with pytest.raises(MalformedError, match=r"election\.digest"):
        parse_entry(_edited(_election_bytes(), CONTEXT_ELECTION, AUTHORITY, digest=digest))


def _election_of_size(size: int) -> bytes:
    base = len(_resign({"digest": DIGEST.hex(), "origin": "", "type": "election", "v": 1}, CONTEXT_ELECTION, AUTHORITY))
    origin = "o" * (size - base)
    data = _resign({"digest": DIGEST.hex(), "origin": origin, "type": "election", "v": 1}, CONTEXT_ELECTION, AUTHORITY)
    assert len(data) == size
    return data


def test_entry_size_limit() -> None:
    assert MAX_ENTRY_SIZE == 65535
    at_limit = _election_of_size(MAX_ENTRY_SIZE)
    assert signature_valid(parse_entry(at_limit), AUTHORITY.verifier)
    over = _election_of_size(MAX_ENTRY_SIZE + 1)
    with pytest.raises(MalformedError, match="65535"):
        parse_entry(over)
    with pytest.raises(MalformedError, match="65535"):
        parse_entry(b" " * 1_000_000)
    origin = canonical.decode(over)["origin"]
    with pytest.raises(MalformedError, match="65535"):
        election_entry(origin, DIGEST, AUTHORITY)
    assert len(election_entry(canonical.decode(at_limit)["origin"], DIGEST, AUTHORITY)) == MAX_ENTRY_SIZE


def test_acta_entry_too_large_refused() -> None:
    n = 40_000
    big = _acta(tickets=(1,) * n, options=(n,))
    with pytest.raises(MalformedError, match="65535"):
        acta_entry(big, DEVICE)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("registered", b'"registered":100.0'),
        ("registered", b'"registered":1e2'),
        ("null", b'"null":5.0'),
        ("v", b'"v":1.0'),
    ],
)
def test_floats_rejected(field: str, text: bytes) -> None:
    data = _acta_bytes()
    original = f'"{field}":{canonical.decode(data)[field]}'.encode()
    assert original in data
    with pytest.raises(MalformedError):
        parse_entry(data.replace(original, text))


@pytest.mark.parametrize("field", ["registered", "null", "blank"])
@pytest.mark.parametrize("text", ["100", "\u0661\u0660\u0660", "\uff11", "1_0", "5"])
def test_strings_are_not_ints(field: str, text: str) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}: must be an integer"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, **{field: text}))


@pytest.mark.parametrize("field", ["tickets", "options"])
@pytest.mark.parametrize(
    "value",
    [
        ["30", 20, 10],
        [30, "\u0662\u0660", 10],
        [True, 20, 10],
        [[30], 20, 10],
        [None, 20, 10],
        "30,20,10",
        60,
        [],
    ],
)
def test_count_lists_must_hold_ints(field: str, value: Any) -> None:
    if field == "options" and isinstance(value, list) and len(value) == 3:
        value = value[:2]
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, **{field: value}))


@pytest.mark.parametrize("field", ["election", "mesa", "contest", "device"])
@pytest.mark.parametrize("value", ["", 1, None, ["m1"], True])
def test_acta_strings_must_be_non_empty_strings(field: str, value: Any) -> None:
    with pytest.raises(MalformedError, match=f"acta.{field}"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, **{field: value}))


@pytest.mark.parametrize("mesa", ["m 1", "m\u0661", "m/1", "x" * 65])
def test_acta_mesa_must_be_an_id(mesa: str) -> None:
    with pytest.raises(MalformedError, match=r"acta\.mesa"):
        parse_entry(_edited(_acta_bytes(), CONTEXT_ACTA, DEVICE, mesa=mesa))


@pytest.mark.parametrize("data", [b"[]", b"[1]", b'"acta"', b"1", b"null", b"true"])
def test_top_level_must_be_an_object(data: bytes) -> None:
    with pytest.raises(MalformedError, match="must be a JSON object"):
        parse_entry(data)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d + b"\n",
        lambda d: b" " + d,
        lambda d: d.replace(b'","', b'", "', 1),
        lambda d: b"\xef\xbb\xbf" + d,
        lambda d: d.replace(b'"blank":5,"contest"', b'"contest":"pres","blank":5,"contest"'),
        lambda d: d.replace(b'"blank":5,', b"", 1).replace(b'"sig"', b'"blank":5,"sig"'),
    ],
)
def test_non_canonical_entry_bytes_rejected(mutate: Any) -> None:
    data = _acta_bytes()
    changed = mutate(data)
    assert changed != data
    with pytest.raises(MalformedError):
        parse_entry(changed)


def test_parse_entry_does_not_mutate_signature_bytes() -> None:
    data = _acta_bytes()
    parsed = parse_entry(data)
    assert parsed.entry.signature == b64decode(canonical.decode(data)["sig"])
