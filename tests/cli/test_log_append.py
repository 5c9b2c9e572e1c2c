"""`actas log append`: signed entries from files into a data directory's log, under its sequencer lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from actas.cli.main import EXIT_ERROR, EXIT_FAILED
from actas.simulate.run import simulate
from actas.storage.filelock import FileLock
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from tests.conftest import Cli

MESAS = 12


def size(data: DataDir) -> int:
    store = SqliteLogStore(data.database)
    try:
        return store.size()
    finally:
        store.close()


@pytest.fixture
def election(tmp_path: Path) -> tuple[DataDir, Path]:
    """A data directory with enrollments logged, and its stations' signed actas in a file."""
    actas = tmp_path / "actas.ndjson"
    simulate(tmp_path / "data", MESAS, 3, actas_out=actas)
    return DataDir(tmp_path / "data"), actas


def test_append_logs_each_entry_once(election: tuple[DataDir, Path], cli: Cli) -> None:
    data, actas = election
    before = size(data)
    result = cli("log", "append", str(data.root), str(actas))
    assert result.code == 0, result.err
    assert f"{MESAS} entries: {MESAS} appended, 0 duplicate, 0 conflict, 0 rejected" in result.out
    assert size(data) == before + MESAS
    result = cli("log", "append", str(data.root), str(actas))
    assert result.code == 0, result.err
    assert f"0 appended, {MESAS} duplicate" in result.out
    assert size(data) == before + MESAS


def test_a_bad_line_is_rejected_by_number_and_the_rest_is_logged(
    election: tuple[DataDir, Path], tmp_path: Path, cli: Cli
) -> None:
    data, actas = election
    lines = actas.read_bytes().split(b"\n")
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_bytes(b"\n".join([lines[0], b'{"v":1,"type":"acta"}', lines[1]]) + b"\n")
    before = size(data)
    result = cli("log", "append", str(data.root), str(mixed))
    assert result.code == EXIT_FAILED, result.err
    captured = result
    assert "2 appended" in captured.out
    assert "rejected line 2:" in captured.err
    assert size(data) == before + 2


def test_append_refuses_while_a_service_sequences(election: tuple[DataDir, Path], cli: Cli) -> None:
    data, actas = election
    lock = FileLock(data.root / "sequencer.lock")
    assert lock.try_acquire()
    try:
        before = size(data)
        result = cli("log", "append", str(data.root), str(actas))
        assert result.code == EXIT_ERROR, result.err
        assert "a service is sequencing" in " ".join(result.err.split())
        assert size(data) == before
    finally:
        lock.release()
