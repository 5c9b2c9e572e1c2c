"""C2SP tlog-proof@v1: round trip, tampering and strict parsing."""

from __future__ import annotations

import pytest

from actas.core.b64 import b64encode
from actas.core.keys import Signer
from actas.core.merkle import inclusion_proof, leaf_hash, perfect_hash_from_leaves, root_of
from actas.core.note import Checkpoint, add_signatures, cosign_checkpoint, sign_checkpoint
from actas.core.proof import TlogProof
from actas.errors import ActasError, MalformedError, ProofError, SignatureError

LOG = Signer.from_seed("example.com/log", bytes(32))
ENTRIES = [f"entry {i}".encode() for i in range(13)]


def _proof(index: int, extra: bytes | None = None) -> TlogProof:
    leaves = [leaf_hash(e) for e in ENTRIES]
    checkpoint = Checkpoint(LOG.name, len(leaves), root_of(leaves))
    note = sign_checkpoint(checkpoint, LOG)
    witness = Signer.from_seed("witness.example", bytes(range(32)))
    note = add_signatures(note, [cosign_checkpoint(checkpoint, witness, 1_700_000_000)])
    hashes = inclusion_proof(index, len(leaves), perfect_hash_from_leaves(leaves))
    return TlogProof(index, tuple(hashes), note, extra)


@pytest.mark.parametrize("extra", [None, b"\x00vrf"])
def test_round_trip(extra: bytes | None) -> None:
    for index in range(len(ENTRIES)):
        proof = _proof(index, extra)
        data = proof.encode()
        assert data.startswith(b"c2sp.org/tlog-proof@v1\n")
        assert TlogProof.parse(data) == proof
        checkpoint = proof.verify(ENTRIES[index], LOG.verifier)
        assert checkpoint.size == len(ENTRIES)
        with pytest.raises(ProofError):
            proof.verify(ENTRIES[(index + 1) % len(ENTRIES)], LOG.verifier)


def test_layout() -> None:
    proof = _proof(5, b"hi")
    lines = proof.encode().split(b"\n")
    assert lines[:3] == [b"c2sp.org/tlog-proof@v1", b"extra aGk=", b"index 5"]
    assert lines[3 : 3 + len(proof.proof_hashes)] == [b64encode(h).encode() for h in proof.proof_hashes]
    assert lines[3 + len(proof.proof_hashes)] == b""
    assert proof.encode().endswith(b"\n\n" + proof.checkpoint_note)


def test_single_entry_log_has_no_proof_hashes() -> None:
    checkpoint = Checkpoint(LOG.name, 1, leaf_hash(b"only"))
    proof = TlogProof(0, (), sign_checkpoint(checkpoint, LOG))
    assert TlogProof.parse(proof.encode()) == proof
    assert proof.verify(b"only", LOG.verifier) == checkpoint


def test_tamper_each_line() -> None:
    proof = _proof(6, b"extra data")
    data = proof.encode()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        for j in range(len(line)):
            changed = bytearray(line)
            changed[j] ^= 0x01
            tampered = b"\n".join([*lines[:i], bytes(changed), *lines[i + 1 :]])
            if i in (1, len(lines) - 2):
                # Neither the extra data nor a witness cosignature is checked against the log key: a change
                # either fails to parse or leaves a proof that still verifies.
                try:
                    parsed = TlogProof.parse(tampered)
                except MalformedError:
                    continue
                parsed.verify(ENTRIES[6], LOG.verifier)
                continue
            with pytest.raises(ActasError):
                TlogProof.parse(tampered).verify(ENTRIES[6], LOG.verifier)


def test_wrong_key_and_index() -> None:
    proof = _proof(3)
    with pytest.raises(SignatureError):
        proof.verify(ENTRIES[3], Signer.from_seed("example.com/log", bytes(range(32))).verifier)
    moved = TlogProof(4, proof.proof_hashes, proof.checkpoint_note)
    with pytest.raises(ProofError):
        moved.verify(ENTRIES[3], LOG.verifier)
    beyond = TlogProof(13, proof.proof_hashes, proof.checkpoint_note)
    with pytest.raises(ProofError):
        beyond.verify(ENTRIES[3], LOG.verifier)


def _variants() -> list[bytes]:
    good = _proof(2, b"x").encode()
    header, extra, index, *rest = good.split(b"\n")
    body = b"\n".join(rest)
    h = b"\n".join([header, extra, index])
    return [
        b"",
        good[: good.index(b"\n\n")],
        b"c2sp.org/tlog-proof@v2\n" + good.split(b"\n", 1)[1],
        b"C2SP.org/tlog-proof@v1\n" + good.split(b"\n", 1)[1],
        b"\n".join([header, index, extra, body]),
        b"\n".join([header, extra, extra, index, body]),
        b"\n".join([header, b"extra ", index, body]),
        b"\n".join([header, b"extra  eA==", index, body]),
        b"\n".join([header, b"extra eA", index, body]),
        b"\n".join([header, extra, b"index 02", body]),
        b"\n".join([header, extra, b"index +2", body]),
        b"\n".join([header, extra, b"index 2 ", body]),
        b"\n".join([header, extra, b"index  2", body]),
        b"\n".join([header, extra, b"index", body]),
        b"\n".join([header, extra, b"index \xd9\xa2", body]),
        b"\n".join([header, extra, b"index 9223372036854775808", body]),
        b"\n".join([header, extra, b"Index 2", body]),
        h + b"\n" + b64encode(bytes(31)).encode() + b"\n" + body,
        h + b"\n" + b64encode(bytes(33)).encode() + b"\n" + body,
        h + b"\n" + b"!" * 44 + b"\n" + body,
        h + b"\n" + (b64encode(bytes(32)).encode() + b"\n") * 65 + b"\n" + body,
        good.replace(b"\r", b"") + b"trailing",
        good[:-1],
        h + b"\n\nnot a checkpoint\n\n\xe2\x80\x94 a AAAAAAE=\n",
        good.replace(b"\n", b"\r\n", 1),
    ]


@pytest.mark.parametrize("data", _variants())
def test_parse_rejects(data: bytes) -> None:
    with pytest.raises(MalformedError):
        TlogProof.parse(data)


def test_construction_rejects() -> None:
    note = _proof(0).checkpoint_note
    for args in [(-1, (), note), (0, (bytes(31),), note), (0, (), note, b""), (0, (), b"garbage")]:
        with pytest.raises(MalformedError):
            TlogProof(*args)  # type: ignore[arg-type]
