"""A compact column of mesa ids: newline-joined strings, start offsets, and a sparse index for look-ups.

A million ids held as a list of ``str`` plus an id→index dict cost about 150 MB; here they cost about 20 MB.
The ids (``[0-9A-Za-z._-]{1,64}``, so never a newline) are joined :data:`CHUNK` at a time as
``"\\nid0\\nid1\\n…\\n"``, and ``starts[i]`` is where id ``i`` begins in its string. Every :data:`BLOCK`-th id
(in sorted order) is kept in a list searched with :func:`bisect.bisect_right`; a block is then searched with
:meth:`str.find` when the ids are in sorted order (the usual case: definitions list mesas by code), or by
bisecting a sorted permutation otherwise.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate, islice

CHUNK = 8192  # ids per string
BLOCK = 32  # ids per step of the sparse index; divides CHUNK


class MesaIdsBuilder:
    """Collects ids in order; :meth:`build` returns the column, or None if an id repeats."""

    __slots__ = ("_chunks", "_pending", "_previous", "_starts", "sorted")

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._pending: list[str] = []
        self._starts = array("I")
        self._previous = ""
        self.sorted = True

    def add(self, mesa_id: str) -> bool:
        """Append an id (already checked against the id pattern); False if it equals the previous one."""
        if mesa_id <= self._previous and self.sorted:
            if mesa_id == self._previous:
                return False
            self.sorted = False
        self._previous = mesa_id
        pending = self._pending
        pending.append(mesa_id)
        if len(pending) >= CHUNK:
            self._flush()
        return True

    def _flush(self) -> None:
        pending = self._pending
        self._chunks.append("\n".join(["", *pending, ""]))
        self._starts.extend(islice(accumulate(map((1).__add__, map(len, pending)), initial=1), len(pending)))
        pending.clear()

    def build(self) -> MesaIds | None:
        """Return the column, or None if two ids are equal."""
        if self._pending:
            self._flush()
        ids = MesaIds(self._chunks, self._starts, self.sorted)
        return ids if ids.unique else None


class MesaIds:
    """An immutable column of distinct mesa ids with O(log n) look-up by id.

    Ids are kept :data:`CHUNK` to a string, ``"\\nid0\\nid1\\n…\\n"``; ``starts[i]`` is where id ``i`` begins
    in its string.
    """

    __slots__ = ("_chunks", "_order", "_sparse", "_starts", "unique")

    def __init__(self, chunks: list[str], starts: array[int], in_order: bool) -> None:
        self._chunks = chunks
        self._starts = starts
        self._order: array[int] | None = None
        n = len(starts)
        self.unique = True
        if in_order:
            self._sparse = [self[i] for i in range(0, n, BLOCK)]
            return
        order = array("I", sorted(range(n), key=self.__getitem__))
        previous = None
        for i in order:
            current = self[i]
            if current == previous:
                self.unique = False
                break
            previous = current
        self._order = order
        self._sparse = [self[order[k]] for k in range(0, n, BLOCK)]

    @classmethod
    def of(cls, ids: Iterable[str]) -> MesaIds | None:
        """Build a column from ids (each matching the id pattern); None if one repeats."""
        builder = MesaIdsBuilder()
        for mesa_id in ids:
            if not builder.add(mesa_id):
                return None
        return builder.build()

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> str:
        text = self._chunks[index // CHUNK]
        start = self._starts[index]
        return text[start : text.index("\n", start)]

    def __iter__(self) -> Iterator[str]:
        for ids in self.chunks():
            yield from ids

    def chunks(self) -> Iterator[list[str]]:
        """Yield the ids :data:`CHUNK` at a time (one split per chunk, much faster than id by id)."""
        for text in self._chunks:
            yield text[1:-1].split("\n")

    def index(self, mesa_id: str) -> int | None:
        """Return the index of an id, or None."""
        if type(mesa_id) is not str or not mesa_id or "\n" in mesa_id:
            return None
        block = bisect_right(self._sparse, mesa_id) - 1
        if block < 0:
            return None
        lo = block * BLOCK
        hi = min(lo + BLOCK, len(self))
        order = self._order
        if order is None:
            starts = self._starts
            text = self._chunks[lo // CHUNK]
            end = starts[hi] if hi < len(self) and hi % CHUNK else len(text)
            at = text.find("\n" + mesa_id + "\n", starts[lo] - 1, end)
            return None if at < 0 else lo + text.count("\n", starts[lo] - 1, at)
        found = bisect_left(order, mesa_id, lo, hi, key=self.__getitem__)
        return order[found] if found < hi and self[order[found]] == mesa_id else None
