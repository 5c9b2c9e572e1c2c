"""Receipt batches: one authority signature over a group commit's leaves; every leaf's receipt stands alone."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.keys import Signer
from actas.core.merkle import inclusion_proof, perfect_hash_from_leaves, root_of
from actas.core.receipt import Receipt, ReceiptBatch, parse_receipt, receipt_from_value, sign_batch, sign_receipt
from actas.errors import MalformedError, SignatureError

AUTHORITY = Signer.from_seed("results.example.org/batch", b"\x05" * 32)
T = 1_750_000_000


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    """n distinct 32-byte leaf hashes."""
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(n)]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.data())
def test_every_leaf_of_a_batch_has_a_receipt_that_verifies_alone(size: int, data: st.DataObject) -> None:
    """For any batch size, a leaf's receipt verifies from its own bytes, and its path leads to the batch root."""
    hashes = leaves(size)
    batch = sign_batch(hashes, T, AUTHORITY)
    for i in {0, size - 1, data.draw(st.integers(0, size - 1))}:
        receipt = parse_receipt(batch.receipt(hashes[i]).to_bytes())
        assert (receipt.batch_index, receipt.batch_size, receipt.leaf_hash) == (i, size, hashes[i])
        assert receipt.batch_root() == root_of(hashes)
        assert receipt.signature == batch.signature  # one signature for the whole group
        receipt.check(AUTHORITY.verifier)


def test_a_receipt_is_bound_to_its_leaf_place_time_and_batch() -> None:
    """Changing any signed or proved part of a receipt makes it fail: leaf, index, path, size, time, origin, sig."""
    hashes = leaves(37)
    good = sign_batch(hashes, T, AUTHORITY).receipt(hashes[12])
    value = good.to_value()
    other = hashes[13]
    path = list(good.path)
    flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
    forgeries = [
        Receipt(good.origin, other, good.time, good.signature, good.batch_size, good.batch_index, good.path),
        Receipt(good.origin, good.leaf_hash, good.time + 1, good.signature, good.batch_size, 12, good.path),
        Receipt(good.origin, good.leaf_hash, good.time, good.signature, good.batch_size, 13, good.path),
        Receipt(good.origin, good.leaf_hash, good.time, good.signature, good.batch_size, 12, tuple(flipped)),
        Receipt(good.origin, good.leaf_hash, good.time, good.signature, 38, 12, good.path),
        Receipt(
            good.origin,
            good.leaf_hash,
            good.time,
            bytes([good.signature[0] ^ 1]) + good.signature[1:],
            37,
            12,
            good.path,
        ),
    ]
    for forged in forgeries:
        with pytest.raises(SignatureError):
            forged.check(AUTHORITY.verifier)
    stranger = Signer.from_seed(AUTHORITY.name, b"\x06" * 32)
    with pytest.raises(SignatureError):
        good.check(stranger.verifier)
    with pytest.raises(SignatureError, match="origin"):
        Receipt("elsewhere.example/x", good.leaf_hash, T, good.signature, 37, 12, good.path).check(AUTHORITY.verifier)
    assert receipt_from_value(value) == good


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["batch"].update(index=37), "index"),
        (lambda v: v["batch"].update(size=0), "size"),
        (lambda v: v["batch"]["path"].pop(), "path"),
        (lambda v: v["batch"]["path"].append(v["batch"]["path"][0]), "path"),
        (lambda v: v["batch"].update(extra=1), "batch"),
        (lambda v: v["batch"].update(path="x"), "path"),
        (lambda v: v["batch"].update(index=True), "integers"),
        (lambda v: v.update(v=1), "version 2"),
        (lambda v: v.pop("batch"), "missing"),
    ],
)
def test_malformed_batch_members_are_named(change: object, message: str) -> None:
    """A receipt whose batch part has the wrong shape is refused with the member named, before any signature."""
    hashes = leaves(37)
    value = sign_batch(hashes, T, AUTHORITY).receipt(hashes[5]).to_value()
    change(value)  # type: ignore[operator]
    with pytest.raises(MalformedError, match=message):
        receipt_from_value(value)


def test_a_receipt_of_one_is_deterministic() -> None:
    """A batch of one has an empty path and the same bytes every time it is signed (resends of old entries)."""
    leaf = leaves(1)[0]
    one, again = sign_receipt(leaf, T, AUTHORITY), sign_receipt(leaf, T, AUTHORITY)
    assert one.to_bytes() == again.to_bytes()
    assert one.path == ()
    assert one.batch_root() == leaf
    one.check(AUTHORITY.verifier)


def test_batches_refuse_bad_leaves() -> None:
    """A batch needs 1 … 2**20 leaves of 32 bytes; a leaf not in it has no receipt."""
    with pytest.raises(MalformedError):
        sign_batch([], T, AUTHORITY)
    with pytest.raises(MalformedError):
        sign_batch([b"short"], T, AUTHORITY)
    with pytest.raises(KeyError):
        sign_batch(leaves(3), T, AUTHORITY).receipt(leaves(1, b"other")[0])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.data())
def test_batch_paths_are_rfc6962_audit_paths(size: int, data: st.DataObject) -> None:
    """The level-by-level paths equal merkle.inclusion_proof over the same leaves, at every size."""
    hashes = leaves(size, b"paths")
    batch = sign_batch(hashes, T, AUTHORITY)
    index = data.draw(st.integers(0, size - 1))
    expected = inclusion_proof(index, size, perfect_hash_from_leaves(hashes))
    assert list(batch.receipt(hashes[index]).path) == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 130), st.text(min_size=1, max_size=12), st.data())
def test_receipt_text_is_the_receipts_canonical_bytes(size: int, suffix: str, data: st.DataObject) -> None:
    """The text the service sends is byte for byte the receipt's canonical encoding (any origin, size, place)."""
    hashes = leaves(size, b"text")
    batch = sign_batch(hashes, T, AUTHORITY)
    index = data.draw(st.integers(0, size - 1))
    assert batch.receipt_json(hashes[index]).encode() == batch.receipt(hashes[index]).to_bytes()
    odd = ReceiptBatch(f"results.example.org/{suffix}", T, tuple(hashes), batch.signature)
    assert odd.receipt_json(hashes[index]).encode() == odd.receipt(hashes[index]).to_bytes()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100])
def test_a_batch_read_back_from_its_nodes_gives_the_same_receipts(size: int) -> None:
    """from_nodes(nodes()) restores the tree as stored; nodes of the wrong shape are refused."""
    hashes = leaves(size, b"nodes")
    batch = sign_batch(hashes, T, AUTHORITY)
    again = ReceiptBatch.from_nodes(batch.origin, T, size, batch.nodes(), batch.signature)
    assert again == batch
    for leaf in hashes:
        assert again.receipt(leaf).to_bytes() == batch.receipt(leaf).to_bytes()
    with pytest.raises(MalformedError):
        ReceiptBatch.from_nodes(batch.origin, T, size + 1, batch.nodes(), batch.signature)
    with pytest.raises(MalformedError):
        ReceiptBatch.from_nodes(batch.origin, T, size, batch.nodes()[:-1], batch.signature)
