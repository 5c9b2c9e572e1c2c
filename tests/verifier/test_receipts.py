"""Receipts against a log read from a directory: included, pending, missing, invalid; damaged logs; fuzzing."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.keys import Signer, Verifier
from actas.core.merkle import leaf_hash, root_of
from actas.core.note import Checkpoint, sign_checkpoint
from actas.core.receipt import MAX_TIME, Receipt, parse_receipt, sign_batch, sign_receipt
from actas.errors import ActasError, MalformedError, VerificationFailed
from actas.simulate.run import simulate
from actas.storage.sqlite import SqliteLogStore
from actas.verifier.readers import DirectoryReader
from actas.verifier.receipts import check_receipts, load_receipt_files

T = 1_750_000_000  # when the receipts of these tests were issued


@dataclass(frozen=True)
class Log:
    """A simulated data directory (one full entry bundle and a partial one), its keys and leaf hashes."""

    root: Path
    signer: Signer
    leaves: list[bytes]

    @property
    def authority(self) -> Verifier:
        """The authority verifier key."""
        return self.signer.verifier


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    """150 mesas: 301 entries, so bundle 000 is full and 001 partial."""
    root = tmp_path_factory.mktemp("receipts") / "data"
    simulate(root, 150, 5)
    signer = Signer.parse((root / "keys" / "authority.key").read_text().strip())
    store = SqliteLogStore(root / "log.db")
    try:
        leaves = [leaf_hash(e) for e in store.read(0, store.size())]
    finally:
        store.close()
    assert len(leaves) == 301
    return Log(root, signer, leaves)


@pytest.fixture
def log_copy(log: Log, tmp_path: Path) -> Log:
    """A private copy of the data directory, for tests that damage it."""
    shutil.copytree(log.root, tmp_path / "data")
    return Log(tmp_path / "data", log.signer, log.leaves)


def receipts_for(log: Log, indexes: list[int], time: int = T) -> list[Receipt]:
    """The authority's receipts for some logged leaves."""
    return [sign_receipt(log.leaves[i], time, log.signer) for i in indexes]


def test_logged_leaves_are_included_from_the_entries(log: Log) -> None:
    picks = [0, 5, 255, 256, 300]
    report = check_receipts(receipts_for(log, picks), DirectoryReader(log.root), log.authority, now=lambda: T + 3600)
    assert report.ok
    assert [(r.status, r.index, r.how) for r in report.results] == [("included", i, "entries") for i in picks]
    assert report.entries_read == 301


@pytest.mark.parametrize(("age", "status"), [(3600, "missing"), (61, "missing"), (60, "pending"), (5, "pending")])
def test_unlogged_leaf_is_missing_after_the_grace_period(log: Log, age: int, status: str) -> None:
    receipt = sign_receipt(leaf_hash(b"never logged"), T, log.signer)
    report = check_receipts([receipt], DirectoryReader(log.root), log.authority, now=lambda: T + age)
    assert [r.status for r in report.results] == [status]
    assert report.ok is (status == "pending")
    value = report.to_value()
    if status == "missing":
        (evidence,) = value["evidence"]
        assert evidence["receipt"].encode() == receipt.to_bytes()
        assert evidence["checkpoint"].encode() == (log.root / "log" / "checkpoint").read_bytes()
    else:
        assert value["evidence"] == []


def test_receipts_not_signed_by_the_authority_are_invalid(log: Log) -> None:
    good = receipts_for(log, [3])[0]
    tampered = Receipt(good.origin, good.leaf_hash, good.time, bytes([good.signature[0] ^ 1]) + good.signature[1:])
    stranger = sign_receipt(log.leaves[3], T, Signer.from_seed(log.signer.name, b"\x09" * 32))
    other_origin = sign_receipt(log.leaves[3], T, Signer.from_seed("elsewhere.example/x", b"\x09" * 32))
    report = check_receipts([good, tampered, stranger, other_origin], DirectoryReader(log.root), log.authority)
    assert [r.status for r in report.results] == ["included", "invalid", "invalid", "invalid"]
    assert "origin" in report.results[3].detail
    assert not report.ok


def test_altered_entry_fails_instead_of_deciding(log_copy: Log) -> None:
    bundle = log_copy.root / "log" / "tile" / "entries" / "000"
    data = bytearray(bundle.read_bytes())
    data[100] ^= 0x01
    bundle.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="damaged or altered"):
        check_receipts(receipts_for(log_copy, [1]), DirectoryReader(log_copy.root), log_copy.authority)


def test_truncated_or_missing_bundle_fails(log_copy: Log) -> None:
    partial = log_copy.root / "log" / "tile" / "entries" / "001.p" / "45"
    partial.write_bytes(partial.read_bytes()[:-3])
    with pytest.raises(VerificationFailed, match=r"001\.p/45"):
        check_receipts(receipts_for(log_copy, [1]), DirectoryReader(log_copy.root), log_copy.authority)
    partial.unlink()
    with pytest.raises(ActasError, match="001"):
        check_receipts(receipts_for(log_copy, [1]), DirectoryReader(log_copy.root), log_copy.authority)


def test_partial_bundle_of_an_older_checkpoint_is_read_from_the_full_one(log_copy: Log) -> None:
    """A checkpoint at size 100 needs entries/000.p/100, gone once 000 is full: the full bundle's first 100 do."""
    checkpoint = Checkpoint(log_copy.signer.name, 100, root_of(log_copy.leaves[:100]))
    (log_copy.root / "log" / "checkpoint").write_bytes(sign_checkpoint(checkpoint, log_copy.signer))
    receipts = receipts_for(log_copy, [99, 100])
    report = check_receipts(receipts, DirectoryReader(log_copy.root), log_copy.authority, now=lambda: T + 3600)
    assert [r.status for r in report.results] == ["included", "missing"]
    assert report.entries_read == 100


def test_checkpoint_not_signed_by_the_authority_is_an_error(log: Log) -> None:
    stranger = Signer.from_seed(log.signer.name, b"\x05" * 32).verifier
    with pytest.raises(ActasError):
        check_receipts([], DirectoryReader(log.root), stranger)


def test_load_receipt_files_reads_directories_and_names_bad_files(log: Log, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    good = receipts_for(log, [1, 2])
    (tmp_path / "a" / "1.receipt").write_bytes(good[0].to_bytes())
    (tmp_path / "a" / "2.receipt").write_bytes(good[1].to_bytes() + b" ")
    (tmp_path / "a" / "note.txt").write_text("ignored")
    loaded = load_receipt_files([tmp_path / "a"])
    assert [(f.path.name, f.receipt) for f in loaded] == [("1.receipt", good[0]), ("2.receipt", None)]
    assert loaded[1].error


# -- receipt parsing, fuzzed ------------------------------------------------------------------------------

SIGNER = Signer.from_seed("results.example.org/fuzz", b"\x03" * 32)
# A receipt of a batch of five, so that mutations also land in its place, size and audit path.
BATCH_LEAVES = [bytes([i]) * 32 for i in range(4)] + [bytes(range(32))]
SIGNED = sign_batch(BATCH_LEAVES, T, SIGNER).receipt(bytes(range(32))).to_bytes()
origins = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


ENCODABLE_TIME = min(MAX_TIME, 2**53 - 1)


@given(
    origins, st.binary(min_size=32, max_size=32), st.integers(0, ENCODABLE_TIME), st.binary(min_size=64, max_size=64)
)
def test_receipt_round_trips(origin: str, leaf: bytes, time: int, signature: bytes) -> None:
    receipt = Receipt(origin, leaf, time, signature)
    assert parse_receipt(receipt.to_bytes()) == receipt
    assert parse_receipt(receipt.to_bytes()).to_bytes() == receipt.to_bytes()


@settings(max_examples=300)
@given(st.data())
def test_mutated_receipt_fails_to_parse_or_to_verify(data: st.DataObject) -> None:
    raw = bytearray(SIGNED)
    kind = data.draw(st.sampled_from(["flip", "delete", "insert", "replace"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "delete":
        del raw[at]
    elif kind == "insert":
        raw.insert(at, data.draw(st.integers(0, 255)))
    else:
        replacement = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
        raw[at] = replacement
    with pytest.raises(ActasError):
        parse_receipt(bytes(raw)).check(SIGNER.verifier)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedError):
        parse_receipt(data)


def test_a_receipt_that_cannot_be_encoded_cannot_be_made() -> None:
    with pytest.raises(MalformedError):
        Receipt("results.example.org/fuzz", bytes(32), 2**53, bytes(64))


def test_the_unmutated_receipt_verifies() -> None:
    receipt = parse_receipt(SIGNED)
    receipt.check(SIGNER.verifier)
    assert (receipt.batch_index, receipt.batch_size, len(receipt.path)) == (4, 5, 1)
