"""The durability promise under SIGKILL, small enough for every run (``make chaos`` is the long version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.chaos import run_chaos


@pytest.mark.parametrize(("backend", "processes", "workers"), [("sqlite", 1, 1), ("postgres", 2, 0)])
def test_every_receipted_acta_survives_ten_kills_exactly_once(
    backend: str, processes: int, workers: int, tmp_path: Path
) -> None:
    """8 clients with retries, 10 SIGKILLs of a server process (of the sequencer, on PostgreSQL, every other time).

    Afterwards every receipted acta is in the log exactly once, resends made no second leaf, and the published
    bundle verifies. On SQLite the server checks in a worker process (-j 1), on PostgreSQL on its own threads.
    """
    result = run_chaos(tmp_path, backend=backend, mesas=240, clients=8, kills=10, processes=processes, workers=workers)
    assert result.receipts == result.actas == 240
    assert result.resends > 0
    assert result.kills == 10
    if backend == "postgres":
        assert result.sequencer_kills >= 3
        assert 0 < result.takeover_max < 5  # another process sequences within seconds
