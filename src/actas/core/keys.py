"""Ed25519 keys as C2SP signed-note key strings, key ids, and domain-separated signatures.

A verifier key is ``<name>+<hash8>+base64(0x01 ‖ public key)``, a signer key
``PRIVATE+KEY+<name>+<hash8>+base64(0x01 ‖ seed)``; ``hash8`` is the first four bytes of
SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key) in lower-case hex (https://c2sp.org/signed-note).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from actas.core.b64 import b64decode, b64encode
from actas.errors import KeyFormatError, MalformedError

ALG_ED25519 = 0x01
ALG_COSIGNATURE = 0x04  # C2SP tlog-cosignature/v1 uses the same Ed25519 key with this type byte
_HASH8 = re.compile(r"[0-9a-f]{8}\Z")
# \s is Unicode whitespace for str patterns, as str.isspace; lone surrogates cannot be encoded as UTF-8.
_NAME = re.compile("[^\\s+\ud800-\udfff]+\\Z")

# Domain separation: each signed object type has its own context prefixed to the canonical bytes.
CONTEXT_ACTA = "actas/v1/acta"
CONTEXT_ENROLL = "actas/v1/enroll"
CONTEXT_ELECTION = "actas/v1/election"
CONTEXT_OBSERVATION = "actas/v1/observation"
CONTEXT_IMPORT = "actas/v1/import"
CONTEXT_RESULTS = "actas/v1/results"
CONTEXT_RECEIPT = "actas/v1/receipt"


def check_key_name(name: str) -> None:
    """Reject key names the signed-note format forbids (empty, '+', whitespace, or not encodable as UTF-8)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeyFormatError(f"key name {name!r}: must be non-empty UTF-8 without '+' or whitespace")


# Ed25519 public keys whose point has small order (or is encoded non-canonically) let anyone forge
# signatures that verify: a device or authority key must never be one of them. The y coordinates of the
# points of order 1, 2, 4 and 8; any encoding of y >= p is refused as non-canonical.
_P = 2**255 - 19
_SMALL_ORDER_Y = frozenset(
    {
        0,
        1,
        _P - 1,
        2707385501144840649318225287225658788936804267575313519463743609750303402022,
        _P - 2707385501144840649318225287225658788936804267575313519463743609750303402022,
    }
)


def check_public_key(public: bytes) -> None:
    """Refuse Ed25519 public keys of small order or in non-canonical encoding."""
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P:
        raise KeyFormatError("public key: non-canonical point encoding")
    if y in _SMALL_ORDER_Y:
        raise KeyFormatError("public key: a point of small order (signatures by it could be forged)")


def key_hash(name: str, public: bytes, alg: int = ALG_ED25519) -> int:
    """Return the 32-bit key id of a named public key for a signature type."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def domain_message(context: str, payload: bytes) -> bytes:
    """Prefix canonical bytes with a type's context so a signature cannot be replayed as another type."""
    return context.encode("ascii") + b"\n" + payload


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key."""

    name: str
    public: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public) != 32:
            raise KeyFormatError(f"key {self.name!r}: public key must be 32 bytes")
        check_public_key(self.public)
        try:
            key = Ed25519PublicKey.from_public_bytes(self.public)
        except ValueError:
            raise KeyFormatError(f"key {self.name!r}: not an Ed25519 public key") from None
        object.__setattr__(self, "key_id", key_hash(self.name, self.public))
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse a verifier key string ``name+hash8+base64``."""
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise KeyFormatError("verifier key: expected name+hash+key")
        name, hash8, encoded = parts
        if not _HASH8.match(hash8):
            raise KeyFormatError("verifier key: hash must be 8 lower-case hex digits")
        try:
            raw = b64decode(encoded, "verifier key", 33)
        except MalformedError as exc:
            raise KeyFormatError(str(exc)) from None
        if raw[0] != ALG_ED25519:
            raise KeyFormatError(f"verifier key: unknown algorithm {raw[0]}")
        verifier = cls(name, raw[1:])
        if verifier.key_id != int(hash8, 16):
            raise KeyFormatError(f"verifier key {name!r}: hash {hash8} does not match the key")
        return verifier

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([ALG_ED25519]) + self.public)}"

    @property
    def key_id_hex(self) -> str:
        """The key id as 8 lower-case hex digits."""
        return f"{self.key_id:08x}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether signature is this key's Ed25519 signature of message."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify_in_context(self, context: str, payload: bytes, signature: bytes) -> bool:
        """Verify a domain-separated signature over canonical bytes."""
        return self.verify(domain_message(context, payload), signature)


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key."""

    name: str
    seed: bytes = field(repr=False)
    verifier: Verifier = field(init=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != 32:
            raise KeyFormatError(f"key {self.name!r}: private seed must be 32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = key.public_key().public_bytes_raw()
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "verifier", Verifier(self.name, public))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """Build a signer from a 32-byte seed (the caller supplies the randomness)."""
        return cls(name, seed)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse a signer key string ``PRIVATE+KEY+name+hash8+base64``."""
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError("signer key: expected PRIVATE+KEY+name+hash+key")
        _, _, name, hash8, encoded = parts
        if not _HASH8.match(hash8):
            raise KeyFormatError("signer key: hash must be 8 lower-case hex digits")
        try:
            raw = b64decode(encoded, "signer key", 33)
        except MalformedError as exc:
            raise KeyFormatError(str(exc)) from None
        if raw[0] != ALG_ED25519:
            raise KeyFormatError(f"signer key: unknown algorithm {raw[0]}")
        signer = cls(name, raw[1:])
        if signer.key_id != int(hash8, 16):
            raise KeyFormatError(f"signer key {name!r}: hash {hash8} does not match the key")
        return signer

    def __str__(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([ALG_ED25519]) + self.seed)}"

    @property
    def key_id(self) -> int:
        """The 32-bit key id."""
        return self.verifier.key_id

    @property
    def public(self) -> bytes:
        """The raw 32-byte public key."""
        return self.verifier.public

    def sign(self, message: bytes) -> bytes:
        """Sign message (Ed25519 is deterministic)."""
        return self._key.sign(message)

    def sign_in_context(self, context: str, payload: bytes) -> bytes:
        """Sign canonical bytes under a type's domain-separation context."""
        return self.sign(domain_message(context, payload))
