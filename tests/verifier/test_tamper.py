"""Tampering with any published file of a bundle is caught, and the report names the file and the step.

One bundle is simulated and published per module; every test verifies its own copy in this process.
The simulation is sized so the bundle holds a full and a partial tile at level 0, a level-1 tile, and a
full and a partial entry bundle.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from actas.core.keys import Signer, Verifier
from actas.core.note import open_checkpoint, sign_checkpoint
from actas.core.tiles import ENTRIES, TILE_WIDTH, TileCoord, parse_tile_path, tile_path, tiles_for_size
from actas.core.verify import (
    S_CHECKPOINT,
    S_ELECTION,
    S_ELECTION_ENTRY,
    S_RESULTS,
    S_TILES,
    STEPS,
    Failure,
    Report,
)
from actas.publish.bundle import publish_bundle
from actas.simulate.geography import generate_election
from actas.simulate.run import simulate
from actas.verifier.readers import DirectoryReader
from actas.verifier.runner import verify

MESAS, SEED = 130, 7
SIZE = 1 + 2 * MESAS  # the election entry, one enrollment and one acta per mesa
ELECTION = generate_election(MESAS, SEED)
TILES = [f"log/{tile_path(c)}" for c in tiles_for_size(SIZE)]
RESULTS = [
    f"results/{contest.id}/{name}.json" for contest in ELECTION.contests for name in ("national", *ELECTION.levels)
]
TAMPERED = [*TILES, "log/checkpoint", *RESULTS, "election.json"]
POSITIONS = ("first", "middle", "last")


@dataclass(frozen=True)
class Published:
    """The pristine bundle and the authority key it verifies under."""

    bundle: Path
    key: Verifier


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Simulate and publish one bundle for the whole module."""
    root = tmp_path_factory.mktemp("tamper")
    summary = simulate(root / "data", mesas=MESAS, seed=SEED, workers=0)
    assert summary.entries == SIZE
    assert summary.rejected == 0
    bundle = root / "bundle"
    publish_bundle(summary.data, bundle, site=False)  # the site is guarded by the MANIFEST (test_mirror.py)
    key = Verifier.parse((summary.data.authority_vkey).read_text(encoding="utf-8").strip())
    return Published(bundle, key)


@pytest.fixture
def bundle(published: Published, tmp_path: Path) -> Path:
    """A fresh copy of the published bundle for one test to damage."""
    copy = tmp_path / "bundle"
    shutil.copytree(published.bundle, copy)
    return copy


def run(bundle: Path, key: Verifier) -> Report:
    return verify(DirectoryReader(bundle), key, workers=0)


def flip(path: Path, position: str) -> int:
    """Flip the lowest bit of the first, middle or last byte of a file; return the offset."""
    data = bytearray(path.read_bytes())
    offset = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[position]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return offset


def describe(report: Report) -> str:
    return "\n".join(f"step {f.step} {f.where}: {f.message}" for f in report.failures)


def names_file(failure: Failure, relative: str) -> bool:
    """Whether a failure points at this bundle file, at the step that checks files of its kind."""
    if relative == "log/checkpoint":
        return failure.step == S_CHECKPOINT and failure.where == relative
    if relative == "election.json":
        # Bytes that no longer parse fail step 2; a definition that still parses no longer matches entry 0.
        return failure.step in (S_ELECTION, S_ELECTION_ENTRY) and failure.where == relative
    if relative.startswith("results/"):
        return failure.step == S_RESULTS and failure.where == relative
    coord = parse_tile_path(relative.removeprefix("log/"))
    if failure.step != S_TILES:
        return False
    if coord.level != ENTRIES:
        return failure.where == relative
    # An entry bundle is reported by its own path when it no longer decodes, or at its level-0 tile when an
    # entry's hash no longer matches, with the message naming the bundle.
    level0 = f"log/{tile_path(TileCoord(0, coord.index, coord.width))}"
    return failure.where == relative or (failure.where == level0 and failure.message.endswith(f" of {relative}"))


def test_bundle_has_every_kind_of_tile(published: Published) -> None:
    """The fixture covers what the tamper tests claim: full and partial tiles, level 1, every file listed."""
    coords = [parse_tile_path(t.removeprefix("log/")) for t in TILES]
    assert {c.level for c in coords} == {ENTRIES, 0, 1}
    for level in (ENTRIES, 0):
        widths = {c.width for c in coords if c.level == level}
        assert TILE_WIDTH in widths
        assert len(widths) == 2
    files = {str(p.relative_to(published.bundle)) for p in published.bundle.rglob("*") if p.is_file()}
    # MANIFEST and MANIFEST.note are guarded by `actas mirror-check` (tests/verifier/test_mirror.py).
    assert files == {*TAMPERED, "keys/authority.vkey", "MANIFEST", "MANIFEST.note"}


def test_untampered_copy_verifies(published: Published, bundle: Path) -> None:
    report = run(bundle, published.key)
    assert report.ok, describe(report)
    assert report.size == SIZE
    assert report.reached == len(STEPS)
    assert report.failures == []
    assert report.conflicts == []
    assert report.counts == {"election": 1, "enroll": MESAS, "acta": MESAS}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("relative", TAMPERED)
def test_flipped_byte_is_caught_and_named(published: Published, bundle: Path, relative: str, position: str) -> None:
    offset = flip(bundle / relative, position)
    report = run(bundle, published.key)
    assert not report.ok, f"{relative} byte {offset} flipped and the bundle still verifies"
    assert any(names_file(f, relative) for f in report.failures), describe(report)


@pytest.mark.parametrize("position", ["middle", "last"])  # the first byte is a length prefix (below)
@pytest.mark.parametrize("relative", [t for t in TILES if "/entries/" in t])
def test_flipped_entry_names_an_entry_of_that_bundle(
    published: Published, bundle: Path, relative: str, position: str
) -> None:
    """Past the length prefix, the damaged entry itself fails, by its index inside this bundle."""
    flip(bundle / relative, position)
    report = run(bundle, published.key)
    coord = parse_tile_path(relative.removeprefix("log/"))
    first = coord.index * TILE_WIDTH
    leaves = {int(f.where.removeprefix("entry ")) for f in report.failures if f.where.startswith("entry ")}
    assert leaves & set(range(first, first + coord.width)), describe(report)
    # The damaged hash changes the root the verifier recomputes from the entries.
    assert Failure(S_TILES, "log/checkpoint", "root recomputed from the entries differs") in report.failures


def test_undecodable_entry_bundle_is_named_by_its_own_path(published: Published, bundle: Path) -> None:
    relative = next(t for t in TILES if "/entries/" in t)
    flip(bundle / relative, "first")  # the first entry's length prefix now overruns the bundle
    report = run(bundle, published.key)
    assert any(f.step == S_TILES and f.where == relative for f in report.failures), describe(report)


@pytest.mark.parametrize("relative", TAMPERED)
def test_missing_file_is_reported_by_path(published: Published, bundle: Path, relative: str) -> None:
    (bundle / relative).unlink()
    report = run(bundle, published.key)
    assert not report.ok
    missing = [f for f in report.failures if f.where == relative and "missing" in f.message]
    assert missing, describe(report)
    expected = {"log/checkpoint": S_CHECKPOINT, "election.json": S_ELECTION}.get(
        relative, S_RESULTS if relative.startswith("results/") else S_TILES
    )
    assert {f.step for f in missing} == {expected}


def test_checkpoint_failure_stops_at_step_1(published: Published, bundle: Path) -> None:
    flip(bundle / "log/checkpoint", "middle")
    report = run(bundle, published.key)
    assert report.reached == S_CHECKPOINT
    assert [(f.step, f.where) for f in report.failures] == [(S_CHECKPOINT, "log/checkpoint")]
    assert report.step_ok(S_CHECKPOINT) is False
    assert report.step_ok(S_ELECTION) is None


def test_checkpoint_signed_by_another_key_fails_step_1(published: Published, bundle: Path) -> None:
    genuine = open_checkpoint((bundle / "log/checkpoint").read_bytes(), published.key)
    impostor = Signer(genuine.origin, b"\x42" * 32)  # same name, different key
    (bundle / "log/checkpoint").write_bytes(sign_checkpoint(genuine, impostor))
    report = run(bundle, published.key)
    assert not report.ok
    assert report.reached == S_CHECKPOINT
    assert [(f.step, f.where) for f in report.failures] == [(S_CHECKPOINT, "log/checkpoint")]
    # Under the impostor's key the checkpoint opens, but the published key file names the real key.
    under_impostor = run(bundle, impostor.verifier)
    assert [f.where for f in under_impostor.failures if f.step == S_CHECKPOINT] == ["keys/authority.vkey"]


def test_wrong_pinned_key_fails_step_1(published: Published, bundle: Path) -> None:
    other = Signer(published.key.name, b"\x07" * 32).verifier
    report = run(bundle, other)
    assert [(f.step, f.where) for f in report.failures] == [(S_CHECKPOINT, "log/checkpoint")]


def test_published_key_file_must_hold_the_pinned_key(published: Published, bundle: Path) -> None:
    """Verification uses the pinned key, and a bundle whose key file names another key fails step 1."""
    impostor = Signer(published.key.name, b"\x42" * 32)
    (bundle / "keys/authority.vkey").write_text(str(impostor.verifier) + "\n", encoding="utf-8")
    report = run(bundle, published.key)
    assert [(f.step, f.where) for f in report.failures] == [(S_CHECKPOINT, "keys/authority.vkey")]


def test_non_canonical_definition_fails_step_2(published: Published, bundle: Path) -> None:
    """election.json must be byte for byte the canonical definition, not merely an equivalent one."""
    import json

    value = json.loads((bundle / "election.json").read_bytes())
    (bundle / "election.json").write_text(json.dumps(value, indent=1), encoding="utf-8")
    report = run(bundle, published.key)
    assert [(f.step, f.where) for f in report.failures] == [(S_ELECTION, "election.json")]


def test_edited_but_valid_definition_fails_step_5(published: Published, bundle: Path) -> None:
    """A definition that still parses but is not the one logged in entry 0 is named at step 5."""
    text = (bundle / "election.json").read_text(encoding="utf-8")
    assert ELECTION.title in text
    (bundle / "election.json").write_text(text.replace(ELECTION.title, ELECTION.title + "!", 1), "utf-8")
    report = run(bundle, published.key)
    assert report.step_ok(S_ELECTION) is True
    assert any(f.step == S_ELECTION_ENTRY and f.where == "election.json" for f in report.failures), describe(report)
