"""Signed notes, checkpoints and cosignatures against the signed-note and golden-log vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actas.core.b64 import b64encode
from actas.core.keys import Signer, Verifier
from actas.core.note import (
    Checkpoint,
    NoteSignature,
    add_signatures,
    cosign_checkpoint,
    cosignature_message,
    open_checkpoint,
    open_note,
    open_signed_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_cosignature,
)
from actas.errors import ActasError, MalformedError, SignatureError

ROOT = b64encode(bytes(range(32)))


def _cases(vectors: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((vectors / "signed-note" / "vectors.json").read_text())["cases"]
    return cases


def _golden_keys(vectors: Path) -> tuple[Signer, Verifier]:
    keys = {}
    for line in (vectors / "tlog-tiles-golden" / "keys.txt").read_text().split("\n"):
        if line and not line.startswith("#"):
            kind, key = line.split()
            keys[kind] = key
    return Signer.parse(keys["private"]), Verifier.parse(keys["public"])


def _golden_checkpoints(vectors: Path) -> list[bytes]:
    log = vectors / "tlog-tiles-golden" / "log"
    return [(log / f"checkpoint.{n}").read_bytes() for n in range(16)]


def test_signed_note_vectors(vectors: Path) -> None:
    cases = _cases(vectors)
    assert len(cases) == 2
    first, second = cases
    signer = Signer.parse(first["skey"])
    verifier = Verifier.parse(first["vkey"])
    assert sign_note(first["text"], [signer]) == first["signed_note"].encode()
    note = open_note(first["signed_note"].encode(), [verifier])
    assert note.text == first["text"]
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    # A second signature by a key the verifier does not know is ignored.
    note = open_note(second["signed_note"].encode(), [Verifier.parse(second["vkey"])])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    assert note.to_bytes() == second["signed_note"].encode()


def test_golden_checkpoints(vectors: Path) -> None:
    signer, verifier = _golden_keys(vectors)
    for size, data in enumerate(_golden_checkpoints(vectors)):
        checkpoint = open_checkpoint(data, verifier)
        assert checkpoint.origin == "example.com/log/testdata"
        assert checkpoint.size == size
        assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint
        assert sign_checkpoint(checkpoint, signer) == data


def test_golden_checkpoint_tamper(vectors: Path) -> None:
    _, verifier = _golden_keys(vectors)
    for data in _golden_checkpoints(vectors)[::5]:
        for i in range(len(data)):
            for mask in (0x01, 0x80):
                tampered = bytearray(data)
                tampered[i] ^= mask
                with pytest.raises(ActasError):
                    open_checkpoint(bytes(tampered), verifier)
        with pytest.raises(ActasError):
            open_checkpoint(data[:-1], verifier)
        with pytest.raises(ActasError):
            open_checkpoint(data + b"\n", verifier)


def _keys() -> tuple[Signer, Signer, Signer]:
    return (
        Signer.from_seed("example.com/log", bytes(32)),
        Signer.from_seed("witness.example/w1", bytes(range(32))),
        Signer.from_seed("witness.example/w2", bytes(range(1, 33))),
    )


def test_unknown_and_bad_signatures() -> None:
    log, other, _ = _keys()
    text = "hello\n"
    note = sign_note(text, [log, other])
    assert open_note(note, [log.verifier]).text == text
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(note, [Signer.from_seed("someone", bytes(32)).verifier])
    # Same name and key id as the known key but a wrong signature: the whole note is rejected.
    forged = NoteSignature(log.name, log.key_id, other.sign(text.encode()))
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(add_signatures(sign_note(text, [other]), [forged]), [log.verifier, other.verifier])
    with pytest.raises(MalformedError, match="more than once"):
        open_note(sign_note(text, [log, log]), [log.verifier])
    with pytest.raises(MalformedError):
        sign_note(text, [])


@pytest.mark.parametrize(
    "data",
    [
        b"hello\n",
        b"hello\n\n",
        b"hello\n\n\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAE=",
        b"hello\n\n\n\xe2\x80\x94 a AAAAAAE=\n",
        b"\n\xe2\x80\x94 a AAAAAAE=\n",
        b"hello\r\n\n\xe2\x80\x94 a AAAAAAE=\n",
        b"he\tllo\n\n\xe2\x80\x94 a AAAAAAE=\n",
        b"hello\n\n- a AAAAAAE=\n",
        b"hello\n\n\xe2\x80\x94 a+b AAAAAAE=\n",
        b"hello\n\n\xe2\x80\x94  a AAAAAAE=\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAE= \n",
        b"hello\n\n\xe2\x80\x94 a AAAAAA==\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAF=\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAE\n",
        b"hello\n\n\xe2\x80\x94 a\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAE=\n\n",
        b"hello\n\n\xe2\x80\x94 a AAAAAAE=\n\xe2\x80\x94 b AAAAAAE=",
        b"hel\xfflo\n\n\xe2\x80\x94 a AAAAAAE=\n",
        b"hello\n\n" + b"\xe2\x80\x94 a AAAAAAE=\n" * 101,
    ],
)
def test_parse_note_rejects(data: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_note(data)


def test_parse_note_accepts() -> None:
    note = parse_note(b"a\n\nb\n\n\xe2\x80\x94 k AAAAAAE=\n")
    assert note.text == "a\n\nb\n"  # the last empty line separates the signatures
    assert note.signatures == (NoteSignature("k", 0, b"\x01"),)
    assert len(parse_note(b"x\n\n" + b"\xe2\x80\x94 a AAAAAAE=\n" * 100).signatures) == 100


@pytest.mark.parametrize(
    "text",
    [
        f"o\n01\n{ROOT}\n",
        f"o\n+1\n{ROOT}\n",
        f"o\n1_0\n{ROOT}\n",
        f"o\n١\n{ROOT}\n",
        f"o\n 1\n{ROOT}\n",
        f"o\n\n{ROOT}\n",
        f"o\n9223372036854775808\n{ROOT}\n",
        f"o\n1\n{ROOT}",
        f"\n1\n{ROOT}\n",
        f"o\n1\n{ROOT}\n\n",
        f"o\n1\n{ROOT}\next\n\n",
        f"o\n1\n{b64encode(bytes(31))}\n",
        f"o\n1\n{ROOT[:-1]}\n",
        "o\n1\n",
        f"o\r\n1\n{ROOT}\n",
    ],
)
def test_checkpoint_text_rejects(text: str) -> None:
    with pytest.raises(MalformedError):
        Checkpoint.from_text(text)


def test_checkpoint_text() -> None:
    checkpoint = Checkpoint.from_text(f"example.com/log\n0\n{ROOT}\nextension one\n")
    assert checkpoint == Checkpoint("example.com/log", 0, bytes(range(32)), ("extension one",))
    assert checkpoint.to_text() == f"example.com/log\n0\n{ROOT}\nextension one\n"
    for bad in [("", 1, bytes(32)), ("o", -1, bytes(32)), ("o", 1, bytes(31)), ("o\n", 1, bytes(32))]:
        with pytest.raises(MalformedError):
            Checkpoint(*bad)
    with pytest.raises(MalformedError):
        Checkpoint("o", 1, bytes(32), ("",))


def test_cosignature_round_trip() -> None:
    log, w1, w2 = _keys()
    checkpoint = Checkpoint(log.name, 12, bytes(range(32)))
    signed = sign_checkpoint(checkpoint, log)
    sig1 = cosign_checkpoint(signed, w1, 1_679_315_147)
    sig2 = cosign_checkpoint(checkpoint.to_text(), w2, 0)
    assert sig1.signature[:8] == (1_679_315_147).to_bytes(8, "big")
    assert len(sig1.signature) == 72
    assert sig1.key_id != w1.key_id  # cosignature key ids use type 0x04
    assert w1.verifier.verify(cosignature_message(checkpoint.to_text(), 1_679_315_147), sig1.signature[8:])
    cosigned = add_signatures(signed, [sig1, sig2.line()])
    assert cosigned == signed + (sig1.line() + sig2.line()).encode()
    assert add_signatures(cosigned, [sig1]) == cosigned
    opened = open_signed_checkpoint(cosigned, log.verifier)
    assert opened.checkpoint == checkpoint
    assert opened.cosignatures([w1.verifier, w2.verifier]) == {w1.name: 1_679_315_147, w2.name: 0}
    assert opened.cosignatures([log.verifier]) == {}
    assert open_checkpoint(cosigned, log.verifier) == checkpoint
    assert verify_cosignature(checkpoint, sig1, w1.verifier) == 1_679_315_147
    # A cosigner's note signature cannot stand in for the log's.
    with pytest.raises(SignatureError):
        open_checkpoint(add_signatures(sign_checkpoint(checkpoint, w1), [sig1]), log.verifier)


def test_cosignature_tamper() -> None:
    log, w1, w2 = _keys()
    checkpoint = Checkpoint(log.name, 12, bytes(range(32)))
    sig = cosign_checkpoint(checkpoint, w1, 1000)
    other = Checkpoint(log.name, 13, bytes(range(32)))
    with pytest.raises(SignatureError):
        verify_cosignature(other, sig, w1.verifier)
    with pytest.raises(SignatureError):
        verify_cosignature(checkpoint, sig, w2.verifier)
    for i in range(len(sig.signature)):
        tampered = bytearray(sig.signature)
        tampered[i] ^= 0x01
        with pytest.raises(SignatureError):
            verify_cosignature(checkpoint, NoteSignature(sig.name, sig.key_id, bytes(tampered)), w1.verifier)
    with pytest.raises(SignatureError):
        verify_cosignature(checkpoint, NoteSignature(sig.name, sig.key_id, sig.signature[:-1]), w1.verifier)
    bad = NoteSignature(sig.name, sig.key_id, (1001).to_bytes(8, "big") + sig.signature[8:])
    signed = add_signatures(sign_checkpoint(checkpoint, log), [bad])
    with pytest.raises(SignatureError):
        open_signed_checkpoint(signed, log.verifier).cosignatures([w1.verifier])
    with pytest.raises(MalformedError):
        cosign_checkpoint(checkpoint, w1, -1)
    with pytest.raises(MalformedError):
        cosign_checkpoint(checkpoint, w1, 1 << 63)
    with pytest.raises(MalformedError):
        cosign_checkpoint("not a checkpoint\n", w1, 0)
