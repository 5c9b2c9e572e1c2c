"""Receipts: the authority's signed promise that an entry will be in its log.

The service stores submissions in group commits and signs each group once: a *receipt batch* is the RFC 6962
Merkle tree over the leaf hashes stored together, and the authority signs the statement (origin, root, size,
time). A receipt is one leaf's share of it: the statement's fields, the leaf's index and audit path in the batch
tree, and the signature, so it stands alone (docs/formats.md §11). It is issued only after the submission is
durably stored. Together with a signed checkpoint that does not contain the leaf, it is evidence of omission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from actas.core import canonical, merkle
from actas.core.b64 import b64decode, b64encode
from actas.core.keys import CONTEXT_RECEIPT, Signer, Verifier
from actas.errors import MalformedError, ProofError, SignatureError

VERSION = 2
MAX_RECEIPT_SIZE = 4096
MAX_BATCH = 1 << 20  # leaves per receipt batch (the service signs far fewer); a path is at most 20 hashes
_KEYS = frozenset({"batch", "leaf_hash", "origin", "sig", "time", "type", "v"})
_BATCH_KEYS = frozenset({"index", "path", "size"})
MAX_TIME = (1 << 53) - 1  # the largest integer canonical JSON encodes


def _statement(origin: str, root: bytes, size: int, time: int) -> bytes:
    """The canonical bytes the authority signs for a batch."""
    value = {"origin": origin, "root": b64encode(root), "size": size, "time": time, "type": "receipt-batch"}
    return canonical.encode(value | {"v": VERSION})


def _path_length(index: int, size: int) -> int:
    """The number of hashes in an RFC 6962 audit path of leaf index in a tree of size leaves."""
    length = 0
    while size > 1:
        if index ^ 1 < size:  # else the node is carried up unpaired: no hash at this level
            length += 1
        index >>= 1
        size = (size + 1) >> 1
    return length


@dataclass(frozen=True, slots=True)
class Receipt:
    """A signed promise of inclusion of one leaf (by its RFC 6962 leaf hash) in the log named by origin.

    A receipt of a batch of one (the defaults) has an empty path: the batch root is the leaf hash itself.
    """

    origin: str
    leaf_hash: bytes
    time: int  # Unix seconds when the submission was stored
    signature: bytes
    batch_size: int = 1
    batch_index: int = 0
    path: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if len(self.leaf_hash) != 32:
            raise MalformedError(f"receipt.leaf_hash: expected 32 bytes, got {len(self.leaf_hash)}")
        if not 0 <= self.time <= MAX_TIME:
            raise MalformedError(f"receipt.time: {self.time} is out of range")
        if len(self.signature) != 64:
            raise MalformedError(f"receipt.sig: expected 64 bytes, got {len(self.signature)}")
        if not self.origin:
            raise MalformedError("receipt.origin: empty")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise MalformedError(f"receipt.batch.size: {self.batch_size} is not in 1 … {MAX_BATCH}")
        if not 0 <= self.batch_index < self.batch_size:
            raise MalformedError(f"receipt.batch.index: {self.batch_index} is not below the size {self.batch_size}")
        want = _path_length(self.batch_index, self.batch_size)
        if len(self.path) != want:
            raise MalformedError(f"receipt.batch.path: {len(self.path)} hashes, a leaf at this index needs {want}")
        for i, node in enumerate(self.path):
            if len(node) != 32:
                raise MalformedError(f"receipt.batch.path[{i}]: expected 32 bytes, got {len(node)}")

    def __reduce__(self) -> tuple[type[Receipt], tuple[object, ...]]:
        fields = (self.origin, self.leaf_hash, self.time, self.signature, self.batch_size, self.batch_index)
        return (Receipt, (*fields, self.path))

    def batch_root(self) -> bytes:
        """The root of the batch tree this receipt's path leads to."""
        try:
            return merkle.inclusion_root(self.leaf_hash, self.batch_index, self.batch_size, self.path)
        except ProofError as exc:  # construction checked the shape; kept as a named error all the same
            raise MalformedError(f"receipt.batch: {exc}") from None

    def statement(self) -> bytes:
        """The canonical bytes the authority signed: the batch's origin, root, size and time."""
        return _statement(self.origin, self.batch_root(), self.batch_size, self.time)

    def to_value(self) -> dict[str, Any]:
        """The receipt as a JSON value (for embedding in a response)."""
        return {
            "batch": {"index": self.batch_index, "path": [b64encode(p) for p in self.path], "size": self.batch_size},
            "leaf_hash": b64encode(self.leaf_hash),
            "origin": self.origin,
            "sig": b64encode(self.signature),
            "time": self.time,
            "type": "receipt",
            "v": VERSION,
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes of the receipt."""
        return canonical.encode(self.to_value())

    def check(self, authority: Verifier) -> None:
        """Raise SignatureError unless the authority key signed this receipt's batch for its own origin."""
        if authority.name != self.origin:
            raise SignatureError(f"receipt: origin {self.origin!r} is not the key's name {authority.name!r}")
        if not authority.verify_in_context(CONTEXT_RECEIPT, self.statement(), self.signature):
            raise SignatureError("receipt: the authority signature does not verify")


@dataclass(frozen=True)
class ReceiptBatch:
    """Leaves stored together at one time and the authority's one signature over their tree."""

    origin: str
    time: int
    leaves: tuple[bytes, ...]
    signature: bytes
    _positions: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.leaves) <= MAX_BATCH:
            raise MalformedError(f"receipt batch: {len(self.leaves)} leaves is not in 1 … {MAX_BATCH}")
        positions: dict[bytes, int] = {}
        for i, leaf in enumerate(self.leaves):
            if len(leaf) != 32:
                raise MalformedError(f"receipt batch: leaf {i} is not a 32-byte hash")
            positions.setdefault(leaf, i)
        object.__setattr__(self, "_positions", positions)

    @cached_property
    def _levels(self) -> list[list[bytes]]:
        """Every level of the tree, leaves first; a level's odd last node is carried up unpaired (RFC 6962)."""
        levels = [list(self.leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        return levels

    @cached_property
    def _texts(self) -> tuple[list[list[str]], str]:
        """Every node in base64, and the receipt text's members after the leaf hash, once per batch."""
        levels = [[f'"{b64encode(node)}"' for node in level] for level in self._levels]
        origin = canonical.encode(self.origin).decode()
        return levels, f',"origin":{origin},"sig":"{b64encode(self.signature)}","time":{self.time},"type":"receipt"'

    def receipt_json(self, leaf: bytes) -> str:
        """One leaf's receipt as canonical JSON text: receipt(leaf).to_bytes(), made without building it."""
        index = self._positions[leaf]
        levels, tail = self._texts
        path: list[str] = []
        at = index
        for level in levels[:-1]:
            if at ^ 1 < len(level):
                path.append(level[at ^ 1])
            at >>= 1
        batch = f'{{"batch":{{"index":{index},"path":[{",".join(path)}],"size":{len(self.leaves)}}}'
        return f'{batch},"leaf_hash":{levels[0][index]}{tail},"v":{VERSION}}}'

    def nodes(self) -> bytes:
        """Every node of the tree, level by level from the leaves up, concatenated: what a store keeps.

        A resend's receipt is then read off the stored nodes without hashing the batch again.
        """
        return b"".join(node for level in self._levels for node in level)

    @classmethod
    def from_nodes(cls, origin: str, time: int, size: int, nodes: bytes, signature: bytes) -> ReceiptBatch:
        """A batch from its stored nodes (see nodes()); MalformedError if they do not have the tree's shape."""
        counts = [size]
        while counts[-1] > 1:
            counts.append((counts[-1] + 1) // 2)
        if not 1 <= size <= MAX_BATCH or len(nodes) != 32 * sum(counts):
            raise MalformedError(f"receipt batch: {len(nodes)} bytes of nodes for {size} leaves")
        levels: list[list[bytes]] = []
        at = 0
        for count in counts:
            levels.append([nodes[i : i + 32] for i in range(at, at + 32 * count, 32)])
            at += 32 * count
        batch = cls(origin, time, tuple(levels[0]), signature)
        batch.__dict__["_levels"] = levels  # the cached property, taken as stored
        return batch

    def receipt(self, leaf: bytes) -> Receipt:
        """The receipt of one leaf of the batch."""
        index = self._positions[leaf]
        path: list[bytes] = []
        at = index
        for level in self._levels[:-1]:
            sibling = at ^ 1
            if sibling < len(level):  # a carried node has no sibling at this level
                path.append(level[sibling])
            at >>= 1
        return Receipt(self.origin, leaf, self.time, self.signature, len(self.leaves), index, tuple(path))


def sign_batch(leaves: Sequence[bytes], time: int, authority: Signer) -> ReceiptBatch:
    """The authority's one signature over leaves stored together at time (Unix seconds)."""
    root = merkle.root_of(leaves)
    signature = authority.sign_in_context(CONTEXT_RECEIPT, _statement(authority.name, root, len(leaves), time))
    return ReceiptBatch(authority.name, time, tuple(leaves), signature)


def sign_receipt(leaf_hash: bytes, time: int, authority: Signer) -> Receipt:
    """The authority's receipt for one leaf stored at time on its own (a batch of one)."""
    return sign_batch([leaf_hash], time, authority).receipt(leaf_hash)


def receipt_from_value(value: object, where: str = "receipt") -> Receipt:
    """A receipt from a decoded JSON value, strictly: exact fields, types and encodings."""
    if not isinstance(value, dict):
        raise MalformedError(f"{where}: must be a JSON object")
    if value.keys() != _KEYS:
        missing, extra = sorted(_KEYS - value.keys()), sorted(value.keys() - _KEYS)
        raise MalformedError(f"{where}: fields differ (missing {missing}, unexpected {extra})")
    if value["type"] != "receipt" or value["v"] != VERSION or type(value["v"]) is not int:
        raise MalformedError(f"{where}: not a version {VERSION} receipt")
    origin, time, batch = value["origin"], value["time"], value["batch"]
    if not isinstance(origin, str):
        raise MalformedError(f"{where}.origin: must be a string")
    if type(time) is not int:
        raise MalformedError(f"{where}.time: must be an integer")
    for key in ("leaf_hash", "sig"):
        if not isinstance(value[key], str):
            raise MalformedError(f"{where}.{key}: must be a base64 string")
    if not isinstance(batch, dict) or batch.keys() != _BATCH_KEYS:
        raise MalformedError(f"{where}.batch: must be an object with exactly index, path and size")
    index, size, path = batch["index"], batch["size"], batch["path"]
    if type(index) is not int or type(size) is not int:
        raise MalformedError(f"{where}.batch: index and size must be integers")
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise MalformedError(f"{where}.batch.path: must be a list of base64 strings")
    if len(path) > 64:
        raise MalformedError(f"{where}.batch.path: {len(path)} hashes is too many")
    hashes = tuple(b64decode(p, f"{where}.batch.path[{i}]", 32) for i, p in enumerate(path))
    leaf = b64decode(value["leaf_hash"], f"{where}.leaf_hash", 32)
    signature = b64decode(value["sig"], f"{where}.sig", 64)
    return Receipt(origin, leaf, time, signature, size, index, hashes)


def parse_receipt(data: bytes) -> Receipt:
    """A receipt from its canonical bytes, strictly."""
    if len(data) > MAX_RECEIPT_SIZE:
        raise MalformedError(f"receipt: {len(data)} bytes is more than {MAX_RECEIPT_SIZE}")
    return receipt_from_value(canonical.decode(data), "receipt")
