"""Receipts dated far ahead of the checkpoint's fetch time are invalid, not forever pending."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from actas.core.keys import Signer
from actas.core.merkle import leaf_hash
from actas.core.receipt import sign_receipt
from actas.simulate.run import simulate
from actas.verifier.readers import DirectoryReader
from actas.verifier.receipts import DEFAULT_GRACE, MAX_SKEW, check_receipts

T = 1_750_000_000  # the clock of these tests: when the checkpoint is read


@dataclass(frozen=True)
class Log:
    """A small simulated data directory and its authority key."""

    root: Path
    signer: Signer


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    """Five mesas, every acta logged."""
    root = tmp_path_factory.mktemp("skew") / "data"
    simulate(root, 5, 3)
    return Log(root, Signer.parse((root / "keys" / "authority.key").read_text().strip()))


def test_receipt_dated_beyond_max_skew_is_invalid(log: Log) -> None:
    """An authority-signed receipt dated more than MAX_SKEW s after the fetch is invalid (at MAX_SKEW: pending)."""
    leaf = leaf_hash(b"never logged")
    future = sign_receipt(leaf, T + MAX_SKEW + 1, log.signer)
    edge = sign_receipt(leaf, T + MAX_SKEW, log.signer)
    report = check_receipts([future, edge], DirectoryReader(log.root), log.signer.verifier, now=lambda: T)
    assert [r.status for r in report.results] == ["invalid", "pending"]
    assert "after the checkpoint was read" in report.results[0].detail
    assert not report.ok
    assert report.to_value()["counts"] == {"included": 0, "pending": 1, "missing": 0, "invalid": 1}


def test_past_receipt_absent_from_the_log_is_missing(log: Log) -> None:
    """A receipt dated before the fetch, past the grace period and absent from the log, is missing, not pending."""
    receipt = sign_receipt(leaf_hash(b"never logged"), int(T - DEFAULT_GRACE - 1), log.signer)
    report = check_receipts([receipt], DirectoryReader(log.root), log.signer.verifier, now=lambda: T)
    assert [r.status for r in report.results] == ["missing"]
    assert not report.ok
    (evidence,) = report.to_value()["evidence"]
    assert evidence["receipt"].encode() == receipt.to_bytes()
