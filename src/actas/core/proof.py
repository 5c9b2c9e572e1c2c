"""C2SP tlog-proof@v1 (https://c2sp.org/tlog-proof): an offline-verifiable proof that an entry is logged.

::

    c2sp.org/tlog-proof@v1
    extra <base64>                 (optional, unauthenticated)
    index <N>
    <base64 proof hash>            (zero or more, from the leaf's sibling upward)

    <signed checkpoint note, verbatim>
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from actas.core.b64 import b64decode, b64encode
from actas.core.keys import Verifier
from actas.core.merkle import HASH_SIZE, MAX_TREE_SIZE, leaf_hash, verify_inclusion
from actas.core.note import Checkpoint, open_checkpoint, parse_note
from actas.errors import MalformedError, ProofError

HEADER = b"c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64  # an inclusion proof in a tree below 2**63 leaves has at most 63 hashes


@functools.lru_cache(maxsize=8)  # notes are at most 1 MiB: a bounded memory
def _check_note(note: bytes) -> None:
    """Parse a checkpoint note (remembered: a service proves many leaves against the same checkpoint)."""
    Checkpoint.from_text(parse_note(note).text)


@dataclass(frozen=True)
class TlogProof:
    """An entry's index, its inclusion proof, the signed checkpoint note and optional extra data."""

    index: int
    proof_hashes: tuple[bytes, ...]
    checkpoint_note: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "proof_hashes", tuple(self.proof_hashes))
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < MAX_TREE_SIZE:
            raise MalformedError(f"tlog-proof index {self.index!r}: must be an integer in [0, 2**63)")
        if len(self.proof_hashes) > MAX_PROOF_HASHES:
            raise MalformedError(f"tlog-proof: more than {MAX_PROOF_HASHES} proof hashes")
        for i, h in enumerate(self.proof_hashes):
            if len(h) != HASH_SIZE:
                raise MalformedError(f"tlog-proof hash {i}: expected {HASH_SIZE} bytes, got {len(h)}")
        if self.extra is not None and not self.extra:
            raise MalformedError("tlog-proof extra: must be omitted rather than empty")
        # The note must at least parse as a checkpoint, so encode() never emits an unreadable proof.
        _check_note(self.checkpoint_note)

    def encode(self) -> bytes:
        """Serialise the proof."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append(b"extra " + b64encode(self.extra).encode("ascii"))
        lines.append(b"index " + str(self.index).encode("ascii"))
        lines.extend(b64encode(h).encode("ascii") for h in self.proof_hashes)
        return b"\n".join(lines) + b"\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse a proof strictly (the checkpoint is parsed, not verified)."""
        pos = 0
        line_no = 0

        def next_line() -> bytes:
            nonlocal pos, line_no
            end = data.find(b"\n", pos)
            if end < 0:
                raise MalformedError(f"tlog-proof: line {line_no + 1} at byte {pos} has no newline")
            line = data[pos:end]
            pos = end + 1
            line_no += 1
            return line

        if next_line() != HEADER:
            raise MalformedError("tlog-proof: first line must be c2sp.org/tlog-proof@v1")
        line = next_line()
        extra = None
        if line.startswith(b"extra "):
            extra = b64decode(line[6:], "tlog-proof extra")
            if not extra:
                raise MalformedError("tlog-proof: empty extra line")
            line = next_line()
        if not line.startswith(b"index "):
            raise MalformedError(f"tlog-proof: line {line_no} must be 'index <N>'")
        index = _decimal(line[6:], line_no)
        hashes: list[bytes] = []
        while (line := next_line()) != b"":
            if len(hashes) == MAX_PROOF_HASHES:
                raise MalformedError(f"tlog-proof: more than {MAX_PROOF_HASHES} proof hashes")
            hashes.append(b64decode(line, f"tlog-proof line {line_no} (proof hash)", HASH_SIZE))
        return cls(index, tuple(hashes), bytes(data[pos:]), extra)

    def verify(self, entry: bytes, verifier: Verifier) -> Checkpoint:
        """Open the checkpoint with the log key and check the entry's inclusion; return the checkpoint."""
        checkpoint = open_checkpoint(self.checkpoint_note, verifier)
        if self.index >= checkpoint.size:
            raise ProofError(f"tlog-proof: index {self.index} is not below checkpoint size {checkpoint.size}")
        verify_inclusion(leaf_hash(entry), self.index, checkpoint.size, self.proof_hashes, checkpoint.root_hash)
        return checkpoint


def _decimal(raw: bytes, line_no: int) -> int:
    # bytes.isdigit is ASCII-only, so Unicode digits never reach int().
    if not raw or not raw.isdigit() or (len(raw) > 1 and raw[:1] == b"0") or len(raw) > 19:
        raise MalformedError(f"tlog-proof line {line_no}: index {raw!r} is not a decimal without leading zeros")
    value = int(raw)
    if value >= MAX_TREE_SIZE:
        raise MalformedError(f"tlog-proof line {line_no}: index {value} is too large")
    return value
