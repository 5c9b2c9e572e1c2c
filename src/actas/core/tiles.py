"""C2SP tlog-tiles: tile coordinates and paths, entry bundles, hash tiles and an incremental tile builder.

The level-L tile n holds, for i in 0..255, MTH(D[(n·256 + i)·256**L : (n·256 + i + 1)·256**L]); the right-edge
tile of each level is partial, ``floor(size / 256**L) mod 256`` hashes wide (https://c2sp.org/tlog-tiles).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass

from actas.core.merkle import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE, Frontier, PerfectHash, node_hash
from actas.errors import MalformedError, ProofError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ENTRIES = -1  # the level of entry bundles in a TileCoord
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # uint16 length prefix

ReadTile = Callable[["TileCoord"], bytes]


@dataclass(frozen=True, order=True)
class TileCoord:
    """A tile (level ≥ 0) or entry bundle (level ENTRIES) by index and width (1..256)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not ENTRIES <= self.level <= MAX_LEVEL:
            raise MalformedError(f"tile level {self.level}: must be ENTRIES or 0..{MAX_LEVEL}")
        if not 0 <= self.index < MAX_TREE_SIZE:
            raise MalformedError(f"tile index {self.index}: must be in [0, 2**63)")
        if not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(f"tile width {self.width}: must be 1..{TILE_WIDTH}")

    @property
    def is_partial(self) -> bool:
        """Whether this is a right-edge tile narrower than 256."""
        return self.width < TILE_WIDTH


def index_path(n: int) -> str:
    """Encode a tile index as 3-digit path elements, all but the last x-prefixed (1234067 → x001/x234/067)."""
    if n < 0:
        raise MalformedError(f"tile index {n}: must be non-negative")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def tile_path(coord: TileCoord) -> str:
    """Return the tlog-tiles path of a tile or entry bundle, e.g. tile/0/x001/234.p/5."""
    level = "entries" if coord.level == ENTRIES else str(coord.level)
    suffix = f".p/{coord.width}" if coord.width < TILE_WIDTH else ""
    return f"tile/{level}/{index_path(coord.index)}{suffix}"


def _digits(text: str, what: str, path: str) -> int:
    # str.isdigit accepts other scripts' digits; limit to ASCII first.
    if not text or not text.isascii() or not text.isdigit():
        raise MalformedError(f"tile path {path!r}: {what} {text!r} is not an ASCII decimal")
    if len(text) > 1 and text[0] == "0":
        raise MalformedError(f"tile path {path!r}: {what} {text!r} has a leading zero")
    return int(text)


def parse_tile_path(path: str) -> TileCoord:
    """Parse a canonical tile or entry bundle path; anything else raises MalformedError."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise MalformedError(f"tile path {path!r}: must start with tile/<level>/")
    level = ENTRIES if parts[1] == "entries" else _digits(parts[1], "level", path)
    if level > MAX_LEVEL:
        raise MalformedError(f"tile path {path!r}: level {level} is above {MAX_LEVEL}")
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width = _digits(rest[-1], "width", path)
        if not 1 <= width < TILE_WIDTH:
            raise MalformedError(f"tile path {path!r}: partial width {width} must be 1..255")
        rest = [*rest[:-2], rest[-2][:-2]]
    index = 0
    for i, element in enumerate(rest):
        last = i == len(rest) - 1
        digits = element if last else element[1:]
        if (not last and element[:1] != "x") or len(digits) != 3 or not digits.isascii() or not digits.isdigit():
            raise MalformedError(f"tile path {path!r}: index element {element!r} is malformed")
        index = index * 1000 + int(digits)
    if index >= MAX_TREE_SIZE:
        raise MalformedError(f"tile path {path!r}: index is too large")
    coord = TileCoord(level, index, width)
    if tile_path(coord) != path:  # rejects non-canonical forms such as a leading x000 element
        raise MalformedError(f"tile path {path!r}: not canonical (expected {tile_path(coord)!r})")
    return coord


def tiles_for_size(size: int) -> Iterator[TileCoord]:
    """Yield every entry bundle, then every hash tile by level, that a log of size entries publishes."""
    if not 0 <= size < MAX_TREE_SIZE:
        raise MalformedError(f"log size {size}: must be in [0, 2**63)")
    yield from _level_tiles(ENTRIES, size)
    level = 0
    while size >> (TILE_HEIGHT * level):
        yield from _level_tiles(level, size)
        level += 1


def _level_tiles(level: int, size: int) -> Iterator[TileCoord]:
    count = size >> (TILE_HEIGHT * max(level, 0))  # entries (or subtree hashes) at this level
    full, width = divmod(count, TILE_WIDTH)
    for index in range(full):
        yield TileCoord(level, index, TILE_WIDTH)
    if width:
        yield TileCoord(level, full, width)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Encode entries as big-endian uint16 length-prefixed records."""
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise MalformedError(f"entry {i}: {len(entry)} bytes exceeds the bundle limit of {MAX_ENTRY_SIZE}")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Decode an entry bundle, rejecting truncation, trailing bytes and (if width given) a wrong count."""
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 2:
            raise MalformedError(f"entry bundle: truncated length prefix at byte {pos}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        if end - pos - 2 < n:
            raise MalformedError(f"entry bundle: entry {len(entries)} at byte {pos} is truncated")
        entries.append(bytes(data[pos + 2 : pos + 2 + n]))
        pos += 2 + n
        if width is not None and len(entries) > width:
            raise MalformedError(f"entry bundle: more than {width} entries (extra data at byte {pos - 2 - n})")
    if width is not None and len(entries) != width:
        raise MalformedError(f"entry bundle: {len(entries)} entries, expected {width} (ends at byte {end})")
    return entries


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    """Concatenate 1..256 hashes of 32 bytes into a tile."""
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise MalformedError(f"tile: {len(hashes)} hashes, must be 1..{TILE_WIDTH}")
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise MalformedError(f"tile hash {i}: expected {HASH_SIZE} bytes, got {len(h)}")
    return b"".join(hashes)


def decode_tile(data: bytes, width: int) -> list[bytes]:
    """Split a tile of width hashes; its length must be exactly 32·width."""
    if not 1 <= width <= TILE_WIDTH:
        raise MalformedError(f"tile width {width}: must be 1..{TILE_WIDTH}")
    if len(data) != HASH_SIZE * width:
        raise MalformedError(f"tile: {len(data)} bytes, expected {HASH_SIZE * width} for width {width}")
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


class TileBuilder:
    """Incrementally computes the hash tiles of a growing log, holding only its right-edge partial tiles."""

    def __init__(self, size: int, read_tile: ReadTile | None = None) -> None:
        if not 0 <= size < MAX_TREE_SIZE:
            raise MalformedError(f"log size {size}: must be in [0, 2**63)")
        self._size = size
        # Per level: the right-edge partial tile's hashes and a frontier over them (its root when full).
        self._edges: list[list[bytes]] = []
        self._frontiers: list[Frontier] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            hashes: list[bytes] = []
            if width:
                if read_tile is None:
                    raise MalformedError(f"log size {size}: a read_tile callable is needed for its partial tiles")
                hashes = decode_tile(read_tile(TileCoord(level, count // TILE_WIDTH, width)), width)
            frontier = Frontier()
            frontier.extend(hashes)
            self._edges.append(hashes)
            self._frontiers.append(frontier)
            level += 1

    @property
    def size(self) -> int:
        """Number of leaves in the log."""
        return self._size

    def append(self, leaf_hashes: Iterable[bytes]) -> list[tuple[TileCoord, bytes]]:
        """Add leaf hashes; return every tile (full or new partial, any level) this batch made or changed."""
        out: list[tuple[TileCoord, bytes]] = []
        touched: set[int] = set()
        edge0 = self._ensure_level(0)
        frontier0 = self._frontiers[0]
        batch = list(leaf_hashes)
        # Check the whole batch first so a bad hash cannot leave the builder half-updated.
        for i, h in enumerate(batch):
            if len(h) != HASH_SIZE:
                raise MalformedError(f"leaf hash {i}: expected {HASH_SIZE} bytes, got {len(h)}")
        added = 0
        for h in batch:
            edge0.append(h)
            frontier0.append(h)
            added += 1
            if len(edge0) == TILE_WIDTH:
                self._complete(0, self._size + added, out, touched)
                frontier0 = self._frontiers[0]
        self._size += added
        if added:
            touched.add(0)
        for level in sorted(touched):
            edge = self._edges[level]
            if edge:
                count = self._size >> (TILE_HEIGHT * level)
                out.append((TileCoord(level, count // TILE_WIDTH, len(edge)), b"".join(edge)))
        out.sort(key=lambda item: item[0])
        return out

    def _ensure_level(self, level: int) -> list[bytes]:
        while len(self._edges) <= level:
            self._edges.append([])
            self._frontiers.append(Frontier())
        return self._edges[level]

    def _complete(self, level: int, size: int, out: list[tuple[TileCoord, bytes]], touched: set[int]) -> None:
        """Emit the full tile at level and carry its root into the level above (size = leaves so far)."""
        edge = self._edges[level]
        index = (size >> (TILE_HEIGHT * level)) // TILE_WIDTH - 1
        out.append((TileCoord(level, index, TILE_WIDTH), b"".join(edge)))
        parent_hash = self._frontiers[level].root()
        edge.clear()
        self._frontiers[level] = Frontier()
        parent = self._ensure_level(level + 1)
        parent.append(parent_hash)
        self._frontiers[level + 1].append(parent_hash)
        touched.add(level + 1)
        if len(parent) == TILE_WIDTH:
            self._complete(level + 1, size, out, touched)

    def root(self) -> bytes:
        """Return the Merkle tree hash of the log."""
        # The frontiers' perfect subtrees, from the highest level down, are the tree's compact range.
        hashes = [h for frontier in reversed(self._frontiers) for h in frontier.hashes]
        if not hashes:
            return EMPTY_ROOT
        root = hashes[-1]
        for left in reversed(hashes[:-1]):
            root = node_hash(left, root)
        return root


def perfect_hash_from_tiles(
    read_tile: ReadTile,
    size: int,
    cache_tiles: int = 8,
    shared: MutableMapping[tuple[int, int, int], list[list[bytes]]] | None = None,
) -> PerfectHash:
    """Return a PerfectHash for a tiled log of size leaves, reading hash tiles through read_tile.

    shared, when given, keeps the hashed levels of tiles across calls: a tile of a given width never changes.
    """
    if not 0 <= size < MAX_TREE_SIZE:
        raise MalformedError(f"log size {size}: must be in [0, 2**63)")
    # Each cached tile keeps all 9 of its internal levels, so repeated lookups in one tile cost no hashing.
    # Keyed by (level, index, width) tuples: a TileCoord (validated) is built only to read a tile.
    cache: OrderedDict[tuple[int, int, int], list[list[bytes]]] = OrderedDict()

    def load(key: tuple[int, int, int]) -> list[list[bytes]]:
        levels = cache.get(key)
        if levels is not None:
            cache.move_to_end(key)
            return levels
        if shared is not None:
            levels = shared.get(key)
            if levels is not None:
                return levels
        coord = TileCoord(*key)
        levels = [decode_tile(read_tile(coord), coord.width)]
        while len(levels[-1]) >= 2:
            below = levels[-1]
            levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        cache[key] = levels
        if len(cache) > cache_tiles:
            cache.popitem(last=False)
        if shared is not None:
            shared[key] = levels
        return levels

    def perfect_hash(k: int, i: int) -> bytes:
        if k < 0 or i < 0 or (i + 1) << k > size:
            raise ProofError(f"perfect subtree ({k}, {i}) is outside a tree of size {size}")
        level, height = divmod(k, TILE_HEIGHT)
        count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
        first = i << height  # first tile-level hash covered
        tile_index = first // TILE_WIDTH
        full = count // TILE_WIDTH
        width = TILE_WIDTH if tile_index < full else count % TILE_WIDTH
        levels = load((level, tile_index, width))
        return levels[height][(first % TILE_WIDTH) >> height]

    return perfect_hash
