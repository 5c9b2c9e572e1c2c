"""Receipts: the authority's signed promise that an entry will be in its log.

A receipt is canonical JSON, ``{"leaf_hash":…,"origin":…,"sig":…,"time":…,"type":"receipt","v":1}``, signed by
the authority log key over the body without ``sig``, in the ``actas/v1/receipt`` context (so a receipt can never
be taken for an entry or a checkpoint). It is issued only after the submission is durably stored. Together with a
signed checkpoint that does not contain the leaf, it is evidence of omission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actas.core import canonical
from actas.core.b64 import b64decode, b64encode
from actas.core.keys import CONTEXT_RECEIPT, Signer, Verifier
from actas.errors import MalformedError, SignatureError

VERSION = 1
MAX_RECEIPT_SIZE = 4096
_KEYS = frozenset({"leaf_hash", "origin", "sig", "time", "type", "v"})
MAX_TIME = (1 << 53) - 1  # the largest integer canonical JSON encodes


@dataclass(frozen=True, slots=True)
class Receipt:
    """A signed promise of inclusion of one leaf (by its RFC 6962 leaf hash) in the log named by origin."""

    origin: str
    leaf_hash: bytes
    time: int  # Unix seconds when the submission was stored
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.leaf_hash) != 32:
            raise MalformedError(f"receipt.leaf_hash: expected 32 bytes, got {len(self.leaf_hash)}")
        if not 0 <= self.time <= MAX_TIME:
            raise MalformedError(f"receipt.time: {self.time} is out of range")
        if len(self.signature) != 64:
            raise MalformedError(f"receipt.sig: expected 64 bytes, got {len(self.signature)}")
        if not self.origin:
            raise MalformedError("receipt.origin: empty")

    def __reduce__(self) -> tuple[type[Receipt], tuple[object, ...]]:
        # Pickled by constructor arguments: receipts signed in verification workers cross to the service process.
        return (Receipt, (self.origin, self.leaf_hash, self.time, self.signature))

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        leaf = b64encode(self.leaf_hash)
        return {"leaf_hash": leaf, "origin": self.origin, "time": self.time, "type": "receipt", "v": VERSION}

    def to_bytes(self) -> bytes:
        """Canonical bytes of the receipt."""
        return canonical.encode({**self.body(), "sig": b64encode(self.signature)})

    def to_value(self) -> dict[str, Any]:
        """The receipt as a JSON value (for embedding in a response)."""
        return {**self.body(), "sig": b64encode(self.signature)}

    def check(self, authority: Verifier) -> None:
        """Raise SignatureError unless the authority key signed this receipt for its own origin."""
        if authority.name != self.origin:
            raise SignatureError(f"receipt: origin {self.origin!r} is not the key's name {authority.name!r}")
        if not authority.verify_in_context(CONTEXT_RECEIPT, canonical.encode(self.body()), self.signature):
            raise SignatureError("receipt: the authority signature does not verify")


def sign_receipt(leaf_hash: bytes, time: int, authority: Signer) -> Receipt:
    """The authority's receipt for a leaf stored at time (Unix seconds)."""
    unsigned = Receipt(authority.name, leaf_hash, time, bytes(64))
    signature = authority.sign_in_context(CONTEXT_RECEIPT, canonical.encode(unsigned.body()))
    return Receipt(authority.name, leaf_hash, time, signature)


def receipt_from_value(value: object, where: str = "receipt") -> Receipt:
    """A receipt from a decoded JSON value, strictly: exact fields, types and encodings."""
    if not isinstance(value, dict):
        raise MalformedError(f"{where}: must be a JSON object")
    if value.keys() != _KEYS:
        missing, extra = sorted(_KEYS - value.keys()), sorted(value.keys() - _KEYS)
        raise MalformedError(f"{where}: fields differ (missing {missing}, unexpected {extra})")
    if value["type"] != "receipt" or value["v"] != VERSION or type(value["v"]) is not int:
        raise MalformedError(f"{where}: not a version {VERSION} receipt")
    origin, time = value["origin"], value["time"]
    if not isinstance(origin, str):
        raise MalformedError(f"{where}.origin: must be a string")
    if type(time) is not int:
        raise MalformedError(f"{where}.time: must be an integer")
    for key in ("leaf_hash", "sig"):
        if not isinstance(value[key], str):
            raise MalformedError(f"{where}.{key}: must be a base64 string")
    leaf = b64decode(value["leaf_hash"], f"{where}.leaf_hash", 32)
    signature = b64decode(value["sig"], f"{where}.sig", 64)
    return Receipt(origin, leaf, time, signature)


def parse_receipt(data: bytes) -> Receipt:
    """A receipt from its canonical bytes, strictly."""
    if len(data) > MAX_RECEIPT_SIZE:
        raise MalformedError(f"receipt: {len(data)} bytes is more than {MAX_RECEIPT_SIZE}")
    return receipt_from_value(canonical.decode(data), "receipt")
