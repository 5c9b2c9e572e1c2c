"""C2SP tlog-tiles: paths, bundles, tiles, the golden 15-entry log and the incremental builder."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.merkle import (
    inclusion_proof,
    leaf_hash,
    perfect_hash_from_leaves,
    root_from_perfect,
    root_of,
    verify_inclusion,
)
from actas.core.note import Checkpoint, parse_note
from actas.core.tiles import (
    ENTRIES,
    TILE_WIDTH,
    TileBuilder,
    TileCoord,
    decode_bundle,
    decode_tile,
    encode_bundle,
    encode_tile,
    index_path,
    parse_tile_path,
    perfect_hash_from_tiles,
    tile_path,
    tiles_for_size,
)
from actas.errors import MalformedError


def _log(vectors: Path) -> Path:
    return vectors / "tlog-tiles-golden" / "log"


def _entries(log: Path) -> list[bytes]:
    """The golden log's 15 entries ("one" … "fivten"), read from its last bundle."""
    entries = decode_bundle((log / "tile/entries/000.p/15").read_bytes(), 15)
    assert entries[0] == b"one"
    assert entries[-1] == b"fivten"
    return entries


def _checkpoint(log: Path, n: int) -> Checkpoint:
    return Checkpoint.from_text(parse_note((log / f"checkpoint.{n}").read_bytes()).text)


def test_golden_bundles_and_tiles(vectors: Path) -> None:
    log = _log(vectors)
    previous_tile, previous_bundle = b"", b""
    for width in range(1, 16):
        bundle = (log / "tile/entries/000.p" / str(width)).read_bytes()
        tile = (log / "tile/0/000.p" / str(width)).read_bytes()
        entries = decode_bundle(bundle, width)
        hashes = decode_tile(tile, width)
        assert [leaf_hash(e) for e in entries] == hashes
        assert tile.startswith(previous_tile)
        assert bundle.startswith(previous_bundle)
        assert encode_bundle(entries) == bundle
        assert encode_tile(hashes) == tile
        previous_tile, previous_bundle = tile, bundle
    assert decode_bundle(previous_bundle) == _entries(log)


def test_golden_roots(vectors: Path) -> None:
    log = _log(vectors)

    def read_tile(coord: TileCoord) -> bytes:
        return (log / tile_path(coord)).read_bytes()

    entries = _entries(log)
    for size in range(16):
        checkpoint = _checkpoint(log, size)
        assert checkpoint.size == size
        assert root_from_perfect(size, perfect_hash_from_tiles(read_tile, size)) == checkpoint.root_hash
        assert root_of([leaf_hash(e) for e in entries[:size]]) == checkpoint.root_hash
    assert (log / "checkpoint").read_bytes() == (log / "checkpoint.15").read_bytes()


def test_golden_builder_reproduces_tiles(vectors: Path) -> None:
    log = _log(vectors)
    entries = _entries(log)
    written: dict[TileCoord, bytes] = {}
    builder = TileBuilder(0, written.__getitem__)
    for i, entry in enumerate(entries):
        # Reopen from storage every other entry, as a restarted writer would.
        if i % 2:
            builder = TileBuilder(builder.size, written.__getitem__)
        changed = builder.append([leaf_hash(entry)])
        assert [coord for coord, _ in changed] == [TileCoord(0, 0, i + 1)]
        written.update(changed)
        assert builder.root() == _checkpoint(log, i + 1).root_hash
        expected_bundle = (log / tile_path(TileCoord(ENTRIES, 0, i + 1))).read_bytes()
        assert encode_bundle(entries[: i + 1]) == expected_bundle
    for coord, data in written.items():
        assert (log / tile_path(coord)).read_bytes() == data
    assert sorted(written) == [TileCoord(0, 0, w) for w in range(1, 16)]


def test_index_path() -> None:
    assert index_path(0) == "000"
    assert index_path(999) == "999"
    assert index_path(1000) == "x001/000"
    assert index_path(1234067) == "x001/x234/067"
    assert tile_path(TileCoord(0, 1234, 5)) == "tile/0/x001/234.p/5"
    assert tile_path(TileCoord(2, 7)) == "tile/2/007"
    assert tile_path(TileCoord(ENTRIES, 1000, 3)) == "tile/entries/x001/000.p/3"


@given(st.integers(-1, 63), st.integers(0, 2**63 - 1), st.integers(1, 256))
def test_tile_path_round_trip(level: int, index: int, width: int) -> None:
    coord = TileCoord(level, index, width)
    assert parse_tile_path(tile_path(coord)) == coord


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x1/002",
        "tile/0/001.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p/+5",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/x000/001",
        "tile/0/001/",
        "tile/0/0001",
        "tile/0/01",
        "tile/0/1_0",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile//000",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile/0/x001",
        "tile/0/001/x002",
        "tile/data/000",
        "tile/Entries/000",
        "tile/٣/000",
        "tile/0/00٣",
        "tile/0/000.p/٣",
        "tile/0/x00٣/000",
        "tile/0/000.p/5/000",
    ],
)
def test_parse_tile_path_rejects(path: str) -> None:
    with pytest.raises(MalformedError):
        parse_tile_path(path)


def test_tiles_for_size() -> None:
    assert list(tiles_for_size(0)) == []
    coords = list(tiles_for_size(70_000))
    level0 = [c for c in coords if c.level == 0]
    assert len(level0) == 274
    assert level0[-1] == TileCoord(0, 273, 112)
    assert [c for c in coords if c.level >= 1] == [TileCoord(1, 0), TileCoord(1, 1, 17), TileCoord(2, 0, 1)]
    assert [c for c in coords if c.level == ENTRIES] == [TileCoord(ENTRIES, c.index, c.width) for c in level0]
    assert [c for c in tiles_for_size(256) if c.level >= 0] == [TileCoord(0, 0), TileCoord(1, 0, 1)]
    assert len(set(coords)) == len(coords)


def test_bundle_errors() -> None:
    with pytest.raises(MalformedError, match="entry 1"):
        encode_bundle([b"a", b"x" * 65536])
    assert decode_bundle(encode_bundle([b"x" * 65535, b""])) == [b"x" * 65535, b""]
    data = encode_bundle([b"abc", b"de"])
    for cut in range(1, len(data)):
        with pytest.raises(MalformedError, match="byte"):
            decode_bundle(data[:cut], 2)
    with pytest.raises(MalformedError, match="byte"):
        decode_bundle(data + b"\x00", 2)
    with pytest.raises(MalformedError, match="byte"):
        decode_bundle(data, 3)
    with pytest.raises(MalformedError, match="byte"):
        decode_bundle(data, 1)


def test_tile_errors() -> None:
    with pytest.raises(MalformedError):
        decode_tile(b"\x00" * 31, 1)
    with pytest.raises(MalformedError):
        decode_tile(b"\x00" * 64, 1)
    with pytest.raises(MalformedError):
        decode_tile(b"", 0)
    with pytest.raises(MalformedError):
        encode_tile([])
    with pytest.raises(MalformedError):
        encode_tile([b"\x00" * 31])
    builder = TileBuilder(0)
    with pytest.raises(MalformedError, match="leaf hash 1"):
        builder.append([b"\x00" * 32, b"\x00" * 31])
    assert builder.size == 0
    assert builder.append([b"\x00" * 32]) == [(TileCoord(0, 0, 1), b"\x00" * 32)]
    with pytest.raises(MalformedError):
        TileBuilder(5)  # partial tiles exist but there is nothing to read them from


def _scratch_tiles(leaves: list[bytes]) -> dict[TileCoord, bytes]:
    """Every hash tile of a log, computed directly from the spec's MTH definition."""
    ph = perfect_hash_from_leaves(leaves)
    tiles: dict[TileCoord, bytes] = {}
    for coord in tiles_for_size(len(leaves)):
        if coord.level == ENTRIES:
            continue
        first = coord.index * TILE_WIDTH
        tiles[coord] = b"".join(ph(8 * coord.level, first + i) for i in range(coord.width))
    return tiles


@pytest.mark.parametrize("seed", range(4))
def test_builder_random_batches(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([300, 5_000, 65_536, 70_123])
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    stored: dict[TileCoord, bytes] = {}
    builder = TileBuilder(0, stored.__getitem__)
    pos = 0
    while pos < size:
        batch = leaves[pos : pos + rng.choice([1, 2, 255, 256, 257, 1000, 20_000])]
        if rng.random() < 0.3:
            builder = TileBuilder(pos, stored.__getitem__)
        changed = builder.append(batch)
        assert len({c for c, _ in changed}) == len(changed)
        stored.update(changed)
        pos += len(batch)
        assert builder.size == pos
        if rng.random() < 0.2:
            assert builder.root() == root_of(leaves[:pos])
    assert builder.root() == root_of(leaves)
    expected = _scratch_tiles(leaves)
    assert {c: stored[c] for c in expected} == expected
    # Proofs from tiles agree with the in-memory tree.
    ph = perfect_hash_from_tiles(stored.__getitem__, size)
    root = root_from_perfect(size, ph)
    assert root == root_of(leaves)
    for index in rng.sample(range(size), 20):
        proof = inclusion_proof(index, size, ph)
        assert proof == inclusion_proof(index, size, perfect_hash_from_leaves(leaves))
        verify_inclusion(leaves[index], index, size, proof, root)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 600), min_size=1, max_size=6))
def test_builder_changed_tiles_are_exact(batches: list[int]) -> None:
    stored: dict[TileCoord, bytes] = {}
    builder = TileBuilder(0, stored.__getitem__)
    pos = 0
    for n in batches:
        before = set(_scratch_tiles([leaf_hash(i.to_bytes(4, "big")) for i in range(pos)]))
        changed = dict(builder.append([leaf_hash(i.to_bytes(4, "big")) for i in range(pos, pos + n)]))
        pos += n
        after = _scratch_tiles([leaf_hash(i.to_bytes(4, "big")) for i in range(pos)])
        assert changed == {c: d for c, d in after.items() if c not in before}
        stored.update(changed)
