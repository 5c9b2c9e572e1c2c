"""RFC 6962 Merkle trees: the 196 reference proof cases and generated-proof properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_hash_from_leaves,
    root_from_perfect,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from actas.errors import ProofError
from tests.conftest import vectors_root

MERKLE = vectors_root() / "merkle"
CASES = sorted(
    [*MERKLE.glob("inclusion/**/*.json"), *MERKLE.glob("consistency/**/*.json")],
    key=lambda p: p.as_posix(),
)


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def test_vector_count() -> None:
    assert len(CASES) == 196


@pytest.mark.parametrize("path", CASES, ids=[p.relative_to(MERKLE).as_posix() for p in CASES])
def test_vector(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    proof = [_b(p) for p in case["proof"] or []]
    try:
        if "size1" in case:
            verify_consistency(case["size1"], case["size2"], proof, _b(case["root1"]), _b(case["root2"]))
        else:
            verify_inclusion(_b(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b(case["root"]))
    except ProofError:
        assert case["wantErr"], case["desc"]
    else:
        assert not case["wantErr"], case["desc"]


def test_hashes() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_of([]) == EMPTY_ROOT
    assert root_of([leaf_hash(b"")]) == leaf_hash(b"")


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC 6962 recursive definition."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _inclusion_shape(index: int, size: int) -> list[bool]:
    """The RFC 6962 PATH recursion's steps from the root: True where the leaf is in the right half."""
    steps = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        steps.append(index >= lo + k)
        lo, hi = (lo + k, hi) if index >= lo + k else (lo, lo + k)
    return steps


def _consistency_shape(size1: int, size2: int) -> tuple[list[bool], bool]:
    """The RFC 6962 SUBPROOF recursion's steps, and whether the old tree is a left-edge perfect subtree."""
    steps = []
    lo, hi = 0, size2
    while size1 != hi:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        steps.append(size1 > lo + k)
        lo, hi = (lo + k, hi) if size1 > lo + k else (lo, lo + k)
    return steps, lo == 0


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_inclusion_properties(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    ph = perfect_hash_from_leaves(leaves)
    root = root_of(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, ph)
    verify_inclusion(leaves[index], index, size, proof, root)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1))
    with pytest.raises(ProofError):
        verify_inclusion(_flip(leaves[index], bit), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, _flip(root, bit))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = _flip(bad[i], bit)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, bad, root)
    other_index = data.draw(st.integers(0, size))
    if other_index != index:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], other_index, size, proof, root)
    # RFC 6962 proofs bind the size only through the path's shape: a size whose path has the same
    # left/right steps (e.g. leaf 0 of 5 or 6 leaves) yields the same computation, and must verify.
    other_size = data.draw(st.integers(1, 2 * size + 1))
    if other_size != size:
        if index < other_size and _inclusion_shape(index, other_size) == _inclusion_shape(index, size):
            verify_inclusion(leaves[index], index, other_size, proof, root)
        else:
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, other_size, proof, root)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_consistency_properties(size2: int, data: st.DataObject) -> None:
    leaves = _leaves(size2)
    ph = perfect_hash_from_leaves(leaves)
    size1 = data.draw(st.integers(1, size2))
    root1, root2 = root_of(leaves[:size1]), root_of(leaves)
    proof = consistency_proof(size1, size2, ph)
    verify_consistency(size1, size2, proof, root1, root2)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1))
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, _flip(root1, bit), root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, root1, _flip(root2, bit))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = _flip(bad[i], bit)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)
    shape = _consistency_shape(size1, size2)
    changes = [(data.draw(st.integers(0, size2)), size2), (size1, data.draw(st.integers(1, 2 * size2)))]
    for other1, other2 in changes:
        if (other1, other2) == (size1, size2):
            continue
        if 0 < other1 <= other2 and _consistency_shape(other1, other2) == shape:
            verify_consistency(other1, other2, proof, root1, root2)
        else:
            with pytest.raises(ProofError):
                verify_consistency(other1, other2, proof, root1, root2)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 2000))
def test_frontier_root(size: int, split: int) -> None:
    leaves = _leaves(size)
    frontier = Frontier()
    split = min(split, size)
    for h in leaves[:split]:
        frontier.append(h)
    snapshot = frontier.copy()
    frontier.extend(leaves[split:])
    assert frontier.size == size
    assert frontier.root() == root_of(leaves)
    assert snapshot.root() == root_of(leaves[:split])
    if size:
        assert root_of(leaves) == _reference_root(leaves)
        ph = perfect_hash_from_leaves(leaves)
        assert root_from_perfect(size, ph) == frontier.root()
        assert Frontier.from_perfect(size, ph).root() == frontier.root()


def test_exhaustive_small_trees() -> None:
    for size in range(1, 70):
        leaves = _leaves(size)
        ph = perfect_hash_from_leaves(leaves)
        root = root_of(leaves)
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(index, size, ph), root)
        for size1 in range(1, size + 1):
            verify_consistency(size1, size, consistency_proof(size1, size, ph), root_of(leaves[:size1]), root)


def test_bad_arguments() -> None:
    ph = perfect_hash_from_leaves(_leaves(4))
    with pytest.raises(ProofError):
        inclusion_proof(4, 4, ph)
    with pytest.raises(ProofError):
        consistency_proof(0, 4, ph)
    with pytest.raises(ProofError):
        consistency_proof(5, 4, ph)
    with pytest.raises(ProofError):
        inclusion_proof(0, 8, ph)  # beyond the stored leaves
    with pytest.raises(ProofError):
        verify_inclusion(b"\x00" * 32, -1, 4, [], b"")
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 600), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_inclusion_proofs_sharing_right_edge_ranges_are_unchanged(size: int, picks: list[int]) -> None:
    """Proofs in one tree that share a memo of right-edge range hashes equal proofs computed alone."""
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    perfect = perfect_hash_from_leaves(leaves)
    ranges: dict[tuple[int, int], bytes] = {}
    root = root_of(leaves)
    for pick in picks:
        index = pick % size
        shared = inclusion_proof(index, size, perfect, ranges)
        assert shared == inclusion_proof(index, size, perfect)
        verify_inclusion(leaves[index], index, size, shared, root)


def test_the_range_memo_keeps_only_right_edge_ranges() -> None:
    """Proofs of every leaf leave at most log2(size) memoized ranges: the memo does not grow with the log."""
    size = 1000
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    perfect = perfect_hash_from_leaves(leaves)
    ranges: dict[tuple[int, int], bytes] = {}
    for index in range(size):
        inclusion_proof(index, size, perfect, ranges)
    assert 0 < len(ranges) <= size.bit_length()
    assert all(hi == size for _, hi in ranges)
