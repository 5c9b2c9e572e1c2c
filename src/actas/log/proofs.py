"""Inclusion proofs of logged actas, as C2SP tlog-proof@v1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actas.core import merkle
from actas.core.election import Election
from actas.core.keys import Verifier
from actas.core.note import open_checkpoint
from actas.core.proof import TlogProof
from actas.core.tiles import TileCoord, perfect_hash_from_tiles, tile_path
from actas.errors import FetchError, MalformedError
from actas.storage.layout import DataDir
from actas.storage.sqlite import SqliteLogStore


@dataclass(frozen=True)
class MesaProof:
    """An acta entry and its tlog-proof."""

    index: int
    entry: bytes
    proof: bytes


def mesa_proof(data: DataDir, mesa: str, contest: str | None = None) -> MesaProof:
    """The proof of the first acta logged for a mesa, against the latest checkpoint."""
    election = Election.from_json(data.election.read_bytes())
    if contest is None:
        contest = election.contests[0].id
    if election.contest(contest) is None:
        raise MalformedError(f"--contest: {contest!r} is not a contest of {election.origin}")
    checkpoint_bytes = data.checkpoint.read_bytes()
    authority = Verifier.parse(data.authority_vkey.read_text(encoding="utf-8").strip())
    checkpoint = open_checkpoint(checkpoint_bytes, authority)
    store = SqliteLogStore(data.database)
    try:
        indexes = [i for i in store.mesa_indexes(mesa, contest) if i < checkpoint.size]
        if not indexes:
            raise MalformedError(f"--mesa: no acta logged for mesa {mesa!r} in contest {contest!r}")
        index = indexes[0]
        entry = store.read(index, index + 1)[0]
    finally:
        store.close()

    return MesaProof(index, entry, leaf_proof(data.log, index, checkpoint_bytes, checkpoint.size))


class TileCache:
    """The hashed levels of tiles, kept across proofs: a tile of a given width (partial or full) never changes."""

    def __init__(self, log_dir: Path, capacity: int = 4096) -> None:
        self.dir = log_dir
        self.capacity = capacity
        self.levels: dict[tuple[int, int, int], list[list[bytes]]] = {}
        self._ranges: tuple[int, dict[tuple[int, int], bytes]] = (-1, {})

    def ranges(self, size: int) -> dict[tuple[int, int], bytes]:
        """The right-edge range hashes kept for proofs in the tree of size leaves (forgotten when it grows)."""
        if self._ranges[0] != size:
            self._ranges = (size, {})
        return self._ranges[1]

    def read(self, coord: TileCoord) -> bytes:
        """A tile's bytes from the log directory."""
        try:
            return (self.dir / tile_path(coord)).read_bytes()
        except FileNotFoundError:
            raise FetchError(f"{tile_path(coord)}: missing") from None

    def trim(self) -> None:
        """Forget everything once over capacity (a crude bound; the hot tiles come back at once)."""
        if len(self.levels) > self.capacity:
            self.levels.clear()


def leaf_proof(log_dir: Path, index: int, checkpoint_bytes: bytes, size: int, tiles: TileCache | None = None) -> bytes:
    """The tlog-proof@v1 of leaf ``index`` in the tree of ``size`` leaves, from the hash tiles under log_dir."""
    cache = tiles or TileCache(log_dir)
    cache.trim()
    perfect_hash = perfect_hash_from_tiles(cache.read, size, shared=cache.levels)
    hashes = merkle.inclusion_proof(index, size, perfect_hash, cache.ranges(size))
    proof = TlogProof(index=index, proof_hashes=tuple(hashes), checkpoint_note=checkpoint_bytes, extra=None)
    return proof.encode()
