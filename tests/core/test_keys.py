"""C2SP signed-note key strings, key ids, and domain-separated Ed25519 signatures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from actas.core.b64 import b64decode, b64encode
from actas.core.keys import (
    CONTEXT_ACTA,
    CONTEXT_ELECTION,
    CONTEXT_ENROLL,
    CONTEXT_IMPORT,
    CONTEXT_OBSERVATION,
    CONTEXT_RESULTS,
    Signer,
    Verifier,
    domain_message,
    key_hash,
)
from actas.errors import KeyFormatError

SEED = bytes(range(32))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _golden(vectors: Path) -> tuple[str, str]:
    keys = {}
    for line in (vectors / "tlog-tiles-golden" / "keys.txt").read_text().split("\n"):
        if line and not line.startswith("#"):
            kind, key = line.split()
            keys[kind] = key
    return keys["public"], keys["private"]


def _hash8(name: str, public: bytes, alg: int = 1) -> str:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4].hex()


def _verifier_string(name: str, public: bytes, alg: int = 1) -> str:
    """A verifier key string with a correct hash for whatever name, key and algorithm byte it is given."""
    return f"{name}+{_hash8(name, public, alg)}+{b64encode(bytes([alg]) + public)}"


def _signer_string(name: str, seed: bytes, alg: int = 1) -> str:
    public = Signer.from_seed("x", seed).public
    return f"PRIVATE+KEY+{name}+{_hash8(name, public, alg)}+{b64encode(bytes([alg]) + seed)}"


# --- round trips ------------------------------------------------------------------------------------------


def test_golden_keys_round_trip(vectors: Path) -> None:
    public, private = _golden(vectors)
    verifier = Verifier.parse(public)
    signer = Signer.parse(private)
    assert str(verifier) == public
    assert str(signer) == private
    assert verifier.name == signer.name == "example.com/log/testdata"
    assert verifier.key_id == signer.key_id == 0x33D7B496
    assert verifier.key_id_hex == "33d7b496"
    assert signer.verifier == verifier
    assert signer.public == verifier.public
    message = b"hello\n"
    assert verifier.verify(message, signer.sign(message))


def test_generated_keys_round_trip() -> None:
    signer = Signer.from_seed("results.example.org/ve-2024", SEED)
    assert Signer.parse(str(signer)) == signer
    assert Signer.parse(str(signer)).seed == SEED
    assert Verifier.parse(str(signer.verifier)) == signer.verifier
    assert str(signer.verifier) == _verifier_string(signer.name, signer.public)
    assert str(signer) == _signer_string(signer.name, SEED)
    assert signer.key_id == key_hash(signer.name, signer.public)
    assert repr(SEED) not in repr(signer)  # the seed never shows in a repr
    assert "seed" not in repr(signer)


def test_key_id_depends_on_name_and_algorithm() -> None:
    public = Signer.from_seed("a", SEED).public
    assert key_hash("a", public) != key_hash("b", public)
    assert key_hash("a", public, 1) != key_hash("a", public, 4)
    assert f"{key_hash('a', public):08x}" == _hash8("a", public)


# --- rejection --------------------------------------------------------------------------------------------


def test_wrong_hash_rejected(vectors: Path) -> None:
    public, private = _golden(vectors)
    for wrong in ("33d7b497", "00000000", "b496d733"):
        with pytest.raises(KeyFormatError, match="does not match"):
            Verifier.parse(public.replace("33d7b496", wrong))
        with pytest.raises(KeyFormatError, match="does not match"):
            Signer.parse(private.replace("33d7b496", wrong))


def test_hash_of_another_name_rejected() -> None:
    signer = Signer.from_seed("alice", SEED)
    other = _verifier_string("bob", signer.public).replace("bob+", "alice+", 1)
    with pytest.raises(KeyFormatError):
        Verifier.parse(other)


@pytest.mark.parametrize("hash8", ["33D7B496", "33d7B496", "33d7b49", "33d7b4960", "0x3d7b49", "33d7b49g", ""])
def test_malformed_hash_rejected(vectors: Path, hash8: str) -> None:
    public, private = _golden(vectors)
    with pytest.raises(KeyFormatError, match="hash"):
        Verifier.parse(public.replace("33d7b496", hash8))
    with pytest.raises(KeyFormatError, match="hash"):
        Signer.parse(private.replace("33d7b496", hash8))


def test_key_encoding_has_no_spare_bits() -> None:
    # 0x01 ‖ 32 bytes = 33 bytes = 44 base64 characters exactly: no padding and no spare bits, so the only
    # other spellings are stray characters, padding or another alphabet, which the strict decoder refuses.
    assert len(str(Signer.from_seed("k", SEED).verifier).split("+", 2)[2]) == 44


def _split_key(text: str) -> tuple[str, str]:
    """(prefix up to and including the hash, base64 part); the base64 part may itself contain '+'."""
    parts = text.split("+", 4 if text.startswith("PRIVATE+KEY+") else 2)
    return "+".join(parts[:-1]), parts[-1]


@pytest.mark.parametrize(
    "edit",
    ["add-padding", "add-quad", "whitespace", "url-safe", "trailing-newline", "leading-space", "non-ascii"],
)
def test_non_canonical_base64_rejected(vectors: Path, edit: str) -> None:
    public, private = _golden(vectors)
    for text, parse in ((public, Verifier.parse), (private, Signer.parse)):
        prefix, encoded = _split_key(text)
        assert b64decode(encoded)[0] == 1
        bad = {
            "add-padding": encoded + "=",
            "add-quad": encoded + "====",
            "whitespace": encoded[:20] + " " + encoded[20:],
            "url-safe": encoded.replace("+", "-").replace("/", "_"),
            "trailing-newline": encoded + "\n",
            "leading-space": " " + encoded,
            "non-ascii": encoded[:-1] + "\u00e9",
        }[edit]
        assert bad != encoded
        with pytest.raises(KeyFormatError):
            parse(f"{prefix}+{bad}")


@pytest.mark.parametrize("size", [0, 31, 32, 34, 65])
def test_wrong_length_rejected(size: int) -> None:
    public = bytes(range(size))[:size]
    raw = bytes([1]) + public[: size - 1] if size else b""
    text = f"k+{_hash8('k', raw[1:])}+{b64encode(raw)}"
    with pytest.raises(KeyFormatError, match="expected 33 bytes"):
        Verifier.parse(text)
    ptext = f"PRIVATE+KEY+k+00000000+{b64encode(raw)}"
    with pytest.raises(KeyFormatError, match="expected 33 bytes"):
        Signer.parse(ptext)


@pytest.mark.parametrize("alg", [0x00, 0x02, 0x04, 0xFF])
def test_wrong_algorithm_rejected(alg: int) -> None:
    signer = Signer.from_seed("k", SEED)
    with pytest.raises(KeyFormatError, match="algorithm"):
        Verifier.parse(_verifier_string("k", signer.public, alg))
    with pytest.raises(KeyFormatError, match="algorithm"):
        Signer.parse(_signer_string("k", SEED, alg))


@pytest.mark.parametrize("name", ["a+b", "a b", "", " ", "a\tb", "a\nb", "a\u2028b", "a\u00a0b", "+"])
def test_bad_names_rejected(name: str) -> None:
    public = Signer.from_seed("x", SEED).public
    with pytest.raises(KeyFormatError):
        Verifier(name, public)
    with pytest.raises(KeyFormatError):
        Signer.from_seed(name, SEED)
    # Even a string whose hash is right for the bad name is refused.
    with pytest.raises(KeyFormatError):
        Verifier.parse(_verifier_string(name, public))
    with pytest.raises(KeyFormatError):
        Signer.parse(_signer_string(name, SEED))


@pytest.mark.parametrize(
    "text",
    ["", "k", "k+33d7b496", "+", "++", "k+33d7b496+", "PRIVATE+KEY+k", "PRIVATE+KEY+k+33d7b496+"],
)
def test_missing_parts_rejected(text: str) -> None:
    with pytest.raises(KeyFormatError):
        Verifier.parse(text)
    with pytest.raises(KeyFormatError):
        Signer.parse(text)


def test_signer_prefix_required(vectors: Path) -> None:
    _, private = _golden(vectors)
    for bad in (
        private.replace("PRIVATE+KEY+", "", 1),
        private.replace("PRIVATE", "private", 1),
        private.replace("KEY", "KEYS", 1),
        private.replace("PRIVATE+KEY+", "PUBLIC+KEY+", 1),
    ):
        with pytest.raises(KeyFormatError):
            Signer.parse(bad)


def test_verifier_refuses_a_private_key_string(vectors: Path) -> None:
    _, private = _golden(vectors)
    with pytest.raises(KeyFormatError):
        Verifier.parse(private)


def test_seed_and_public_sizes_checked() -> None:
    with pytest.raises(KeyFormatError):
        Signer.from_seed("k", bytes(31))
    with pytest.raises(KeyFormatError):
        Signer.from_seed("k", bytes(33))
    with pytest.raises(KeyFormatError):
        Verifier("k", bytes(31))


# --- signatures -------------------------------------------------------------------------------------------


def test_domain_message_layout() -> None:
    assert domain_message(CONTEXT_ACTA, b"{}") == b"actas/v1/acta\n{}"


def test_contexts_are_distinct() -> None:
    contexts = [
        CONTEXT_ACTA,
        CONTEXT_ENROLL,
        CONTEXT_ELECTION,
        CONTEXT_OBSERVATION,
        CONTEXT_IMPORT,
        CONTEXT_RESULTS,
    ]
    assert len(set(contexts)) == len(contexts)
    # No context is a prefix of another plus the separator, so messages cannot collide across types.
    messages = {domain_message(c, b"x") for c in contexts}
    assert len(messages) == len(contexts)


def test_domain_separation() -> None:
    signer = Signer.from_seed("device-1", SEED)
    payload = b'{"type":"acta","v":1}'
    signature = signer.sign_in_context(CONTEXT_ACTA, payload)
    assert signer.verifier.verify_in_context(CONTEXT_ACTA, payload, signature)
    assert not signer.verifier.verify_in_context(CONTEXT_ENROLL, payload, signature)
    assert not signer.verifier.verify_in_context(CONTEXT_ELECTION, payload, signature)
    assert not signer.verifier.verify(payload, signature)  # nor as a bare, undomained signature
    assert signer.verifier.verify(domain_message(CONTEXT_ACTA, payload), signature)
    assert not signer.verifier.verify_in_context(CONTEXT_ACTA, payload + b" ", signature)


def test_signatures_are_deterministic_and_key_bound() -> None:
    signer = Signer.from_seed("k", SEED)
    other = Signer.from_seed("k", bytes(32))
    signature = signer.sign(b"m")
    assert signature == signer.sign(b"m")
    assert len(signature) == 64
    assert not other.verifier.verify(b"m", signature)


def test_verify_rejects_wrong_size_and_flipped_bits() -> None:
    signer = Signer.from_seed("k", SEED)
    message = b"message"
    signature = signer.sign(message)
    assert signer.verifier.verify(message, signature)
    assert signer.verifier.verify(message, signature[:63]) is False
    assert signer.verifier.verify(message, signature + b"\x00") is False
    assert signer.verifier.verify(message, b"") is False
    for i in range(64):
        for bit in (0x01, 0x80):
            flipped = signature[:i] + bytes([signature[i] ^ bit]) + signature[i + 1 :]
            assert signer.verifier.verify(message, flipped) is False, (i, bit)
    for i in range(len(message)):
        changed = message[:i] + bytes([message[i] ^ 0x01]) + message[i + 1 :]
        assert signer.verifier.verify(changed, signature) is False


SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4, sign bit
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, sign bit
]
NON_CANONICAL = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
]


@pytest.mark.parametrize("public", SMALL_ORDER + NON_CANONICAL)
def test_weak_public_keys_are_refused(public: str) -> None:
    """A small-order key would let anyone forge 'valid' signatures; it is never accepted."""
    with pytest.raises(KeyFormatError):
        Verifier("dev-x", bytes.fromhex(public))


def test_identity_key_would_verify_a_forgery() -> None:
    """Why the check exists: the raw library accepts a forged signature under the identity key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(SMALL_ORDER[0]))
    key.verify(bytes([1]) + bytes(63), b"any message at all")  # does not raise


def test_key_name_with_lone_surrogate_is_a_key_format_error() -> None:
    """A name that cannot be UTF-8 encoded is refused as a key error, not a UnicodeError."""
    with pytest.raises(KeyFormatError):
        Verifier.parse("\udcff+00000000+" + "A" * 44)
