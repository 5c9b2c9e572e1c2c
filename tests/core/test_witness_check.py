"""Counting witness cosignatures on a checkpoint (actas.core.witness_check): what `actas verify --witness` uses."""

from __future__ import annotations

import hashlib

import pytest

from actas.core.keys import Signer
from actas.core.note import Checkpoint, NoteSignature, add_signatures, cosign_checkpoint, parse_note, sign_checkpoint
from actas.core.witness_check import INVALID, MISSING, VALID, check_witnesses, distinct_witnesses
from actas.errors import MalformedError
from tests.factories import ORIGIN, authority, seed

W1 = Signer("witness.example/one", seed("witness/1"))
W2 = Signer("witness.example/two", seed("witness/2"))
W3 = Signer("witness.example/three", seed("witness/3"))
CHECKPOINT = Checkpoint(ORIGIN, 42, hashlib.sha256(b"root").digest())
OTHER = Checkpoint(ORIGIN, 42, hashlib.sha256(b"another root").digest())


def note(*lines: NoteSignature, checkpoint: Checkpoint = CHECKPOINT) -> bytes:
    """The checkpoint signed by the authority, with cosignature lines added."""
    return (
        add_signatures(sign_checkpoint(checkpoint, authority()), lines)
        if lines
        else sign_checkpoint(checkpoint, authority())
    )


def cosig(witness: Signer, timestamp: int = 1_700_000_000, checkpoint: Checkpoint = CHECKPOINT) -> NoteSignature:
    """A witness's cosignature of a checkpoint."""
    return cosign_checkpoint(checkpoint, witness, timestamp)


def tampered(line: NoteSignature) -> NoteSignature:
    """The same line with one byte of its Ed25519 signature flipped."""
    raw = bytearray(line.signature)
    raw[20] ^= 0x01
    return NoteSignature(line.name, line.key_id, bytes(raw))


def test_all_witnesses_cosigned() -> None:
    check = check_witnesses(parse_note(note(cosig(W1), cosig(W2, 1_700_000_005))), [W1.verifier, W2.verifier])
    assert check.ok
    assert (check.valid, check.required) == (2, 2)
    assert [s.status for s in check.statuses] == [VALID, VALID]
    assert [s.timestamp for s in check.statuses] == [1_700_000_000, 1_700_000_005]
    assert check.problem() is None
    value = check.to_value()
    assert value["ok"] is True
    assert value["witnesses"] == [
        {"name": W1.name, "key": str(W1.verifier), "status": "valid", "timestamp": 1_700_000_000, "reason": None},
        {"name": W2.name, "key": str(W2.verifier), "status": "valid", "timestamp": 1_700_000_005, "reason": None},
    ]


def test_duplicate_lines_of_one_witness_count_once() -> None:
    two_lines = parse_note(note(cosig(W1, 1), cosig(W1, 2)))
    assert len(two_lines.signatures) == 3
    check = check_witnesses(two_lines, [W1.verifier, W2.verifier], required=2)
    assert check.valid == 1
    assert not check.ok
    problem = check.problem()
    assert problem is not None
    assert problem.startswith("1 of 2 required witness cosignatures")
    assert f"missing: {W2.name} ({W2.verifier.key_id_hex})" in problem
    assert W1.name not in problem


def test_the_same_key_given_twice_is_one_witness() -> None:
    assert distinct_witnesses([W1.verifier, W2.verifier, W1.verifier]) == [W1.verifier, W2.verifier]
    check = check_witnesses(parse_note(note(cosig(W1))), [W1.verifier, W1.verifier])
    assert (check.valid, check.required, check.ok) == (1, 1, True)


def test_unknown_witnesses_are_ignored() -> None:
    signed = parse_note(note(cosig(W1), cosig(W3)))
    check = check_witnesses(signed, [W1.verifier])
    assert check.ok
    assert [s.witness for s in check.statuses] == [W1.verifier]
    # A witness one does not trust does not make up for one that is missing.
    only_unknown = check_witnesses(parse_note(note(cosig(W3))), [W1.verifier])
    assert not only_unknown.ok
    assert only_unknown.statuses[0].status == MISSING


def test_more_required_than_valid_fails() -> None:
    signed = parse_note(note(cosig(W1)))
    assert check_witnesses(signed, [W1.verifier, W2.verifier], required=1).ok
    assert not check_witnesses(signed, [W1.verifier, W2.verifier], required=2).ok
    assert not check_witnesses(signed, [W1.verifier], required=2).ok  # more than there are witnesses
    assert check_witnesses(signed, [], required=0).ok
    with pytest.raises(MalformedError, match="non-negative"):
        check_witnesses(signed, [W1.verifier], required=-1)


def test_a_tampered_cosignature_is_invalid_and_named() -> None:
    check = check_witnesses(parse_note(note(tampered(cosig(W1)), cosig(W2))), [W1.verifier, W2.verifier])
    assert [s.status for s in check.statuses] == [INVALID, VALID]
    assert "does not verify" in check.statuses[0].reason
    problem = check.problem()
    assert problem is not None
    assert f"invalid: {W1.name} ({W1.verifier.key_id_hex}): cosignature by {W1.name!r} does not verify" in problem
    # One valid line of a witness is enough, whatever other lines of its key say.
    assert check_witnesses(parse_note(note(tampered(cosig(W1)), cosig(W1, 7))), [W1.verifier]).ok


def test_a_cosignature_of_another_root_does_not_count() -> None:
    copied = cosig(W1, checkpoint=OTHER)  # moved from a checkpoint of the same size with another root
    check = check_witnesses(parse_note(note(copied)), [W1.verifier])
    assert check.statuses[0].status == INVALID
    assert not check.ok


def test_a_plain_note_signature_is_not_a_cosignature() -> None:
    # The witness's Ed25519 note signature (type 0x01) has another key id than its cosignature (type 0x04).
    plain = NoteSignature(W1.name, W1.key_id, W1.sign(CHECKPOINT.to_text().encode()))
    check = check_witnesses(parse_note(note(plain)), [W1.verifier])
    assert check.statuses[0].status == MISSING


def test_a_short_signature_is_invalid() -> None:
    line = cosig(W1)
    short = NoteSignature(line.name, line.key_id, line.signature[:40])
    assert check_witnesses(parse_note(note(short)), [W1.verifier]).statuses[0].status == INVALID
