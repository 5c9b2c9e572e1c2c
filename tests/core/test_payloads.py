"""One entry point for every payload: identify the format, read a paper copy, check the own signature."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actas.core import canonical
from actas.core.b64 import b64encode
from actas.core.entries import ActaEntry, enroll_entry, parse_entry
from actas.core.payloads import PaperCopy, identify, read_copy
from actas.core.qr import ALPHABET, encode_payload
from actas.errors import MalformedError
from tests.factories import authority, device, election_and_enrollments, signed_acta, small_election

ELECTION = small_election()
SIGNED = signed_acta(ELECTION, 0)
CNE = "010101001.01.1.0001!100,20,90,30!5!0"  # the test election's first mesa, in the CNE 2024 shape
QRBU = "QRBU:1:2 VRQR:1.5 VRCH:20240507 ORIG:VOTA HASH:" + "A" * 128


def resigned(entry: bytes, flip: int) -> bytes:
    """The same acta entry, canonical, with one bit of its signature flipped."""
    parsed = parse_entry(entry)
    assert isinstance(parsed.entry, ActaEntry)
    signature = bytearray(parsed.entry.signature)
    signature[flip // 8] ^= 1 << (flip % 8)
    return canonical.encode({**parsed.entry.acta.to_value(), "sig": b64encode(bytes(signature))})


def test_an_own_payload_reads_to_the_signed_entry_with_a_valid_signature() -> None:
    """ACTAS1: decodes to exactly the bytes the device signed, and the signature verifies."""
    copy = read_copy(encode_payload(SIGNED), None)
    assert copy.format == "actas1"
    assert copy.entry == SIGNED
    assert copy.signature == "valid"
    assert copy.device == str(device(0).verifier)
    assert (copy.mesa, copy.contest) == (ELECTION.mesa_id(0), "presidente")
    assert (copy.tickets, copy.options, copy.null, copy.blank, copy.registered) == (
        (100, 20, 90, 30),
        (120, 90, 30),
        5,
        3,
        500,
    )
    assert read_copy(encode_payload(SIGNED), ELECTION) == copy  # the definition is not needed for actas1


@pytest.mark.parametrize("flip", [0, 7, 200, 511])
def test_an_altered_signature_reads_as_invalid(flip: int) -> None:
    """A canonical entry whose signature bytes were changed is still a copy, marked invalid."""
    altered = resigned(SIGNED, flip)
    assert canonical.decode(altered) is not None  # still canonical JSON
    copy = read_copy(encode_payload(altered), None)
    assert copy.entry == altered
    assert copy.signature == "invalid"


def test_an_acta_signed_by_another_key_than_it_names_is_invalid() -> None:
    """The signature is checked under the key the acta names, not any key that happens to verify."""
    other = signed_acta(ELECTION, 1)
    mine = parse_entry(SIGNED)
    theirs = parse_entry(other)
    assert isinstance(mine.entry, ActaEntry)
    assert isinstance(theirs.entry, ActaEntry)
    swapped = canonical.encode({**mine.entry.acta.to_value(), "sig": b64encode(theirs.entry.signature)})
    assert read_copy(encode_payload(swapped), None).signature == "invalid"


def test_entries_that_are_not_actas_are_refused() -> None:
    """An enrollment or election entry in an own-format QR is not a paper copy."""
    enroll = enroll_entry(ELECTION.origin, device(0).verifier, [ELECTION.mesa_id(0)], authority())
    with pytest.raises(MalformedError, match="an enroll entry, not an acta"):
        read_copy(encode_payload(enroll), None)
    with pytest.raises(MalformedError, match="an election entry, not an acta"):
        read_copy(encode_payload(election_and_enrollments(ELECTION)[0]), None)


def test_a_cne_payload_reads_through_the_definition_and_is_unsigned() -> None:
    """The CNE code maps its tickets through the contest; it carries no signature, blank or registered."""
    copy = read_copy(CNE, ELECTION)
    assert copy == PaperCopy(
        format="cne2024",
        mesa="010101001.01",
        contest="presidente",
        tickets=(100, 20, 90, 30),
        options=(120, 90, 30),
        null=5,
        blank=None,
        registered=None,
        entry=None,
        signature="unsigned",
        device=None,
    )


def test_a_cne_payload_needs_the_definition() -> None:
    """Without the definition the ticket positions mean nothing."""
    with pytest.raises(MalformedError, match="needs the election"):
        read_copy(CNE, None)
    with pytest.raises(MalformedError, match="ticket count 2 is empty"):
        read_copy(CNE.replace(",20,", ",,"), ELECTION)


def test_a_boletim_part_is_not_a_copy_by_itself() -> None:
    """One QRBU part is checked, then refused with the way forward; a malformed one with its own reason."""
    with pytest.raises(MalformedError, match=r"^payload at 0: part 1 of 2 .* assemble"):
        read_copy(QRBU, ELECTION)
    with pytest.raises(MalformedError, match=r"^qrbu part at 5"):
        read_copy(QRBU.replace("QRBU:1:2", "QRBU:3:2"), ELECTION)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (encode_payload(SIGNED), "actas1"),
        ("ACTAS1:", "actas1"),
        (CNE, "cne2024"),
        ("201301006.01.1.0001!1!0!0", "cne2024"),
        (QRBU, "qrbu"),
        ("QRBU:", "qrbu"),
    ],
)
def test_identify_each_format(text: str, kind: str) -> None:
    """The prefix (or the CNE shape: digits then a dot) names the format."""
    assert identify(text) == kind


@pytest.mark.parametrize("text", ["", "hello", "actas1:ABC", "qrbu:1:1", " ACTAS1:", "!0!0", ".01.1", "\u0661.01"])
def test_unknown_formats_are_refused_at_position_0(text: str) -> None:
    """Anything else is refused at position 0, naming the formats that exist."""
    with pytest.raises(MalformedError, match=r"^payload at 0: not a known format"):
        identify(text)
    with pytest.raises(MalformedError, match=r"^payload at 0"):
        read_copy(text, ELECTION)


@pytest.mark.parametrize(
    "change",
    [
        {"format": "pdf417"},
        {"signature": "maybe"},
        {"mesa": ""},
        {"tickets": ()},
        {"options": [120, 90, 30]},
        {"null": "5"},
        {"entry": None},
        {"device": None},
        {"signature": "unsigned"},
        {"format": "cne2024"},
    ],
)
def test_paper_copies_are_valid_by_construction(change: dict[str, Any]) -> None:
    """A copy's fields agree with its format: only actas1 copies carry an entry, a device and a verdict."""
    fields: dict[str, Any] = {
        "format": "actas1",
        "mesa": "010101001.01",
        "contest": "presidente",
        "tickets": (100, 20, 90, 30),
        "options": (120, 90, 30),
        "null": 5,
        "blank": 3,
        "registered": 500,
        "entry": SIGNED,
        "signature": "valid",
        "device": str(device(0).verifier),
    }
    PaperCopy(**fields)
    with pytest.raises(MalformedError):
        PaperCopy(**{**fields, **change})


@given(
    st.one_of(
        st.text(),
        st.text(alphabet=ALPHABET, max_size=60).map(lambda t: "ACTAS1:" + t),
        st.text(alphabet="0123456789.,!", max_size=60),
        st.text(alphabet="QRBUVHASI0123456789: ", max_size=60).map(lambda t: "QRBU:" + t),
    )
)
def test_arbitrary_text_reads_or_raises_malformed(text: str) -> None:
    """Fuzz: read_copy returns a copy or raises MalformedError, whatever it is given."""
    try:
        copy = read_copy(text, ELECTION)
    except MalformedError:
        return
    assert copy.format == identify(text)


@given(st.binary(max_size=300))
def test_arbitrary_entry_bytes_read_or_raise_malformed(data: bytes) -> None:
    """Fuzz behind the Base45 layer: any compressed bytes decode to a copy or to MalformedError."""
    with contextlib.suppress(MalformedError):
        read_copy(encode_payload(data), None)
