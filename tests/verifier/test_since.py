"""Incremental verification (``--since``): only entries after an earlier, verified checkpoint are read.

A log is grown in steps through the sequencer and published at each step; verifying each bundle with the
previous checkpoint must agree with verifying everything, while reading no entry bundle wholly before it.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from actas.core.election import Election
from actas.core.keys import Signer
from actas.core.note import Checkpoint, open_checkpoint, sign_checkpoint
from actas.core.tally import ConflictRecord
from actas.core.tiles import ENTRIES, TILE_WIDTH, parse_tile_path
from actas.core.verify import S_CHECKPOINT, S_TILES, STEPS, Report
from actas.log.open import open_writer
from actas.log.writer import LogWriter
from actas.publish.bundle import publish_bundle
from actas.simulate.run import create_data_dir
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify
from actas.verifier.state import StateDir
from tests.factories import authority, election_and_enrollments, election_value, signed_acta

KEY = authority().verifier


@dataclass(frozen=True)
class History:
    """Bundles of one log published at growing sizes."""

    election: Election
    bundles: list[Path]
    sizes: list[int]

    def checkpoint(self, step: int) -> bytes:
        return (self.bundles[step] / "log/checkpoint").read_bytes()


class RecordingReader:
    """A DirectoryReader that remembers every path read."""

    def __init__(self, root: Path) -> None:
        self.inner = DirectoryReader(root)
        self.paths: list[str] = []

    def read(self, path: str) -> bytes:
        self.paths.append(path)
        return self.inner.read(path)

    def entry_bundles(self) -> list[tuple[int, int]]:
        """The (first leaf, end leaf) of every entry bundle read."""
        spans = []
        for path in self.paths:
            if path.startswith("log/tile/entries/"):
                coord = parse_tile_path(path.removeprefix("log/"))
                assert coord.level == ENTRIES
                spans.append((coord.index * TILE_WIDTH, coord.index * TILE_WIDTH + coord.width))
        return spans


def grow(root: Path, election: Election, steps: Iterable[list[bytes]]) -> History:
    """Log the election entry and enrollments, then each step's actas, publishing after each step."""
    data = create_data_dir(root / "data", election, authority())
    writer = LogWriter(SqliteLogStore(data.database), data.log, election, authority())
    try:
        assert {r.status for r in writer.append(election_and_enrollments(election))} == {"appended"}
    finally:
        writer.close()
    bundles, sizes = [], []
    for i, actas in enumerate(steps):
        writer = open_writer(DataDir(data.root))  # reopen, as a later ingest session would
        try:
            assert "rejected" not in {r.status for r in writer.append(actas)}
        finally:
            writer.close()
        bundles.append(root / f"bundle-{i}")
        sizes.append(publish_bundle(data, bundles[-1]).size)
    return History(election, bundles, sizes)


# 300 mesas: 301 head entries, so the first checkpoint lies past entry bundle 0, and the second step adds no
# full level-0 tile (level 1 is untouched between the second and third checkpoints).
BIG = Election.from_value(election_value(mesas_per_centre=75))
CONFLICTING_MESA = 5


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("since")
    return grow(
        root,
        BIG,
        [
            [signed_acta(BIG, i) for i in range(20)],
            [signed_acta(BIG, i) for i in range(20, 120)],
            [
                *(signed_acta(BIG, i) for i in range(120, 170)),
                signed_acta(BIG, CONFLICTING_MESA, tickets=(1, 2, 3, 4)),
            ],
        ],
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A log whose checkpoints all fall inside entry bundle 0."""
    election = Election.from_value(election_value())
    root = tmp_path_factory.mktemp("since-small")
    return grow(root, election, [[signed_acta(election, i) for i in r] for r in (range(4), range(4, 8))])


def describe(report: Report) -> str:
    return "\n".join(f"step {f.step} {f.where}: {f.message}" for f in report.failures)


def test_history_shape(history: History) -> None:
    head = 1 + BIG.mesa_count
    assert history.sizes == [head + 20, head + 120, head + 171]
    assert history.sizes[0] > TILE_WIDTH
    assert history.sizes[1] < 2 * TILE_WIDTH


def test_incremental_runs_read_only_new_entries(history: History, tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = verify(DirectoryReader(history.bundles[0]), KEY, workers=0, state_dir=states)
    assert first.ok, describe(first)
    assert first.since is None
    for step in (1, 2):
        old = history.sizes[step - 1]
        reader = RecordingReader(history.bundles[step])
        report = verify(reader, KEY, workers=0, since=history.checkpoint(step - 1), state_dir=states)
        assert report.ok, describe(report)
        assert report.since == old
        assert report.size == history.sizes[step]
        spans = reader.entry_bundles()
        assert spans, "no entry bundle read at all"
        assert all(end > old for _, end in spans), f"read entries before {old}: {spans}"
        # The incremental result equals a full verification of the same bundle.
        full = verify(DirectoryReader(history.bundles[step]), KEY, workers=0)
        assert full.ok
        assert (report.national, report.counts, report.conflicts) == (
            full.national,
            full.counts,
            full.conflicts,
        )
    # The conflict spans runs: its first acta was logged before the second checkpoint.
    head = 1 + BIG.mesa_count
    conflict = ConflictRecord(BIG.mesa_id(CONFLICTING_MESA), BIG.contests[0].id, (head + CONFLICTING_MESA, head + 170))
    assert report.conflicts == [conflict]


def test_full_run_reads_every_entry_bundle(history: History) -> None:
    """The check above means something: without --since, entry bundle 0 is read."""
    reader = RecordingReader(history.bundles[1])
    assert verify(reader, KEY, workers=0).ok
    assert reader.entry_bundles()[0] == (0, TILE_WIDTH)


def test_since_inside_the_first_entry_bundle(small: History, tmp_path: Path) -> None:
    """An earlier checkpoint inside bundle 0: entry 0 was verified before and must not be re-judged."""
    states = tmp_path / "state"
    assert verify(DirectoryReader(small.bundles[0]), KEY, workers=0, state_dir=states).ok
    report = verify(DirectoryReader(small.bundles[1]), KEY, workers=0, since=small.checkpoint(0), state_dir=states)
    assert report.ok, describe(report)
    assert report.since == small.sizes[0]
    assert report.counts == {"election": 1, "enroll": small.election.mesa_count, "acta": 8}


def test_without_saved_state_everything_is_read(history: History, tmp_path: Path) -> None:
    reader = RecordingReader(history.bundles[1])
    report = verify(reader, KEY, workers=0, since=history.checkpoint(0), state_dir=tmp_path / "empty")
    assert report.ok, describe(report)
    assert report.since is None
    assert reader.entry_bundles()[0] == (0, TILE_WIDTH)


def test_failed_run_saves_no_state(history: History, tmp_path: Path) -> None:
    states = tmp_path / "state"
    copy = tmp_path / "bundle"
    shutil.copytree(history.bundles[0], copy)
    national = next((copy / "results").rglob("national.json"))
    national.write_bytes(national.read_bytes() + b" ")
    assert not verify(DirectoryReader(copy), KEY, workers=0, state_dir=states).ok
    report = verify(DirectoryReader(history.bundles[1]), KEY, workers=0, since=history.checkpoint(0), state_dir=states)
    assert report.ok
    assert report.since is None


def test_forked_since_checkpoint_fails_step_3(history: History, tmp_path: Path) -> None:
    states = tmp_path / "state"
    assert verify(DirectoryReader(history.bundles[0]), KEY, workers=0, state_dir=states).ok
    genuine = open_checkpoint(history.checkpoint(0), KEY)
    fork = Checkpoint(genuine.origin, genuine.size, hashlib.sha256(b"another history").digest())
    forked = sign_checkpoint(fork, authority())
    report = verify(DirectoryReader(history.bundles[1]), KEY, workers=0, since=forked, state_dir=states)
    assert not report.ok
    assert report.since is None
    tiles = [f for f in report.failures if f.step == S_TILES]
    assert [f.where for f in tiles] == ["log/checkpoint"]
    assert "not an append-only extension of the --since checkpoint" in tiles[0].message
    assert report.reached == len(STEPS)  # the rest of the bundle is still verified in full
    assert {f.step for f in report.failures} == {S_TILES}


def test_since_checkpoint_larger_than_the_bundle_fails_step_3(history: History, tmp_path: Path) -> None:
    report = verify(
        DirectoryReader(history.bundles[0]), KEY, workers=0, since=history.checkpoint(1), state_dir=tmp_path
    )
    assert [(f.step, f.where) for f in report.failures] == [(S_TILES, "log/checkpoint")]
    assert "more than this one's" in report.failures[0].message


def test_since_checkpoint_signed_by_another_key_fails_step_1(history: History, tmp_path: Path) -> None:
    genuine = open_checkpoint(history.checkpoint(0), KEY)
    other = sign_checkpoint(genuine, Signer(genuine.origin, b"\x09" * 32))
    report = verify(DirectoryReader(history.bundles[1]), KEY, workers=0, since=other, state_dir=tmp_path)
    assert [(f.step, f.where) for f in report.failures] == [(S_CHECKPOINT, "--since checkpoint")]
    assert report.reached == S_CHECKPOINT


def test_saved_state_without_its_edge_tiles_is_not_used(history: History, tmp_path: Path) -> None:
    """A state that cannot seed the tree builder is ignored (everything is read) instead of crashing."""
    states = StateDir(tmp_path / "state")
    assert verify(DirectoryReader(history.bundles[0]), KEY, workers=0, state_dir=states.root).ok
    checkpoint = open_checkpoint(history.checkpoint(0), KEY)
    state = states.load(checkpoint, history.election)
    assert state is not None
    assert set(state.edge) == {"tile/0/001.p/65", "tile/1/000.p/1"}
    del state.edge["tile/1/000.p/1"]
    states.save(state)
    report = verify(
        DirectoryReader(history.bundles[1]),
        KEY,
        workers=0,
        since=history.checkpoint(0),
        state_dir=states.root,
    )
    assert report.ok, describe(report)
    assert report.since is None
