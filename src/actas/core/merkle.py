"""RFC 6962 SHA-256 Merkle trees: hashing, roots, compact ranges, inclusion and consistency proofs.

Proofs are generated from a ``PerfectHash`` callable, ``perfect_hash(k, i)`` = the hash of the perfect subtree
over leaves ``[i·2**k, (i+1)·2**k)``, so the same code serves an in-memory list and a tiled log. Verification
follows RFC 9162 §2.1.3.2 and §2.1.4.2 and never trusts the proof's length or its hashes' sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from actas.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = 1 << 63  # sizes and indices are uint64 in every format that carries them

PerfectHash = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 6962 leaf hash SHA-256(0x00 ‖ entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(b"\x01" + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a list of leaf hashes (EMPTY_ROOT for none)."""
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


class Frontier:
    """The compact range [0, size) of a growing tree: one perfect-subtree hash per set bit of size."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        # Perfect subtree hashes, largest (leftmost) first; their sizes are the set bits of _size.
        self._hashes: list[bytes] = []

    @classmethod
    def from_perfect(cls, size: int, perfect_hash: PerfectHash) -> Frontier:
        """Rebuild the frontier of a tree of size leaves from its perfect subtree hashes."""
        _check_size(size, "size")
        frontier = cls()
        start = 0
        for k in range(size.bit_length() - 1, -1, -1):
            if size >> k & 1:
                frontier._hashes.append(perfect_hash(k, start >> k))
                start += 1 << k
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtree hashes, leftmost (largest) first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        hashes = self._hashes
        sha = _sha256
        size = self._size
        h = leaf
        # Each trailing one bit of size is a subtree of equal height that now merges with the new one.
        while size & 1:
            h = sha(b"\x01" + hashes.pop() + h).digest()
            size >>= 1
        hashes.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes."""
        hashes = self._hashes
        sha = _sha256
        n = self._size
        for leaf in leaves:
            size = n
            h = leaf
            while size & 1:
                h = sha(b"\x01" + hashes.pop() + h).digest()
                size >>= 1
            hashes.append(h)
            n += 1
        self._size = n

    def root(self) -> bytes:
        """Return the Merkle tree hash of the leaves so far."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def copy(self) -> Frontier:
        """Return an independent copy."""
        other = Frontier()
        other._size = self._size
        other._hashes = list(self._hashes)
        return other


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TREE_SIZE:
        raise ProofError(f"{what} {value!r}: must be an integer in [0, 2**63)")


def _range_hash(lo: int, hi: int, perfect_hash: PerfectHash) -> bytes:
    """Hash of leaves [lo, hi), lo aligned to a power of two ≥ hi - lo (true of every RFC 6962 range)."""
    parts: list[bytes] = []
    n = hi - lo
    for k in range(n.bit_length() - 1, -1, -1):
        if n >> k & 1:
            parts.append(perfect_hash(k, lo >> k))
            lo += 1 << k
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_perfect(size: int, perfect_hash: PerfectHash) -> bytes:
    """Return the root of a tree of size leaves from its perfect subtree hashes."""
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, perfect_hash)


def inclusion_proof(
    index: int, size: int, perfect_hash: PerfectHash, ranges: dict[tuple[int, int], bytes] | None = None
) -> list[bytes]:
    """Return the RFC 6962 audit path of leaf index in a tree of size leaves.

    ranges, when given, keeps the hashes of the tree's right-edge ranges for proofs in the same tree (at most
    log₂ size of them, shared by every leaf to their left, and costing several node hashes each).
    """
    _check_size(size, "size")
    _check_size(index, "index")
    if index >= size:
        raise ProofError(f"index {index} is not below size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; the sibling found at each step is the next proof hash from the top.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            if ranges is None or hi != size:  # below the right edge a range is one perfect subtree: no memo
                path.append(_range_hash(lo + k, hi, perfect_hash))
            else:
                known = ranges.get((lo + k, hi))
                if known is None:
                    known = ranges[(lo + k, hi)] = _range_hash(lo + k, hi, perfect_hash)
                path.append(known)
            hi = lo + k
        else:
            path.append(perfect_hash(k.bit_length() - 1, lo >> (k.bit_length() - 1)))
            lo += k
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, perfect_hash: PerfectHash) -> list[bytes]:
    """Return the RFC 6962 consistency proof from a tree of size1 leaves to one of size2."""
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    path: list[bytes] = []
    lo, hi = 0, size2
    complete = True  # SUBPROOF's flag: the old tree is still a left-aligned subtree of the current range
    while size1 != hi:
        k = _split(hi - lo)
        if size1 <= lo + k:
            path.append(_range_hash(lo + k, hi, perfect_hash))
            hi = lo + k
        else:
            path.append(perfect_hash(k.bit_length() - 1, lo >> (k.bit_length() - 1)))
            lo += k
            complete = False
    if not complete:
        path.append(_range_hash(lo, hi, perfect_hash))
    path.reverse()
    return path


def perfect_hash_from_leaves(leaf_hashes: Sequence[bytes]) -> PerfectHash:
    """Return a PerfectHash over an in-memory list of leaf hashes (stores every level: O(n) memory)."""
    levels: list[list[bytes]] = [list(leaf_hashes)]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def perfect_hash(k: int, i: int) -> bytes:
        if not 0 <= k < len(levels) or not 0 <= i < len(levels[k]):
            raise ProofError(f"perfect subtree ({k}, {i}) is outside the tree")
        return levels[k][i]

    return perfect_hash


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what}: expected {HASH_SIZE} bytes, got {len(value)}")


def inclusion_root(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that leaf hash, at index in a tree of size leaves, leads to through proof; ProofError if malformed."""
    _check_size(size, "size")
    _check_size(index, "index")
    if index >= size:
        raise ProofError(f"index {index} is not below size {size}")
    _check_hash(leaf, "leaf hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    sha = _sha256
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            if not fn & 1:
                # A right-edge node with no sibling at these levels: climb until it is a right child.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(proof)} hashes")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf hash is at index in the tree of size leaves with root; raise ProofError if not."""
    if inclusion_root(leaf, index, size, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree (size2, root2) extends (size1, root1); raise ProofError if not.

    A proof from the empty tree proves nothing, so size1 == 0 is rejected unless both trees are empty
    with EMPTY_ROOT; a caller whose previous tree was empty checks root1 == EMPTY_ROOT itself.
    """
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is greater than size2 {size2}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    if size1 == 0:
        if proof:
            raise ProofError("size1 is 0 but the proof is not empty")
        if size2 != 0:
            raise ProofError("size1 is 0: a consistency proof from the empty tree proves nothing")
        if root1 != EMPTY_ROOT or root2 != EMPTY_ROOT:
            raise ProofError("the root of an empty tree must be SHA-256 of the empty string")
        return
    if size1 == size2:
        if proof:
            raise ProofError("size1 equals size2 but the proof is not empty")
        if root1 != root2:
            raise ProofError("size1 equals size2 but the roots differ")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a perfect subtree of the new one, so its root is the proof's implicit first hash.
        path.insert(0, root1)
    sha = _sha256
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = sha(b"\x01" + c + fr).digest()
            sr = sha(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short: {len(proof)} hashes")
    if fr != root1:
        raise ProofError("consistency proof does not lead to root1")
    if sr != root2:
        raise ProofError("consistency proof does not lead to root2")
