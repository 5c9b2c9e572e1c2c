"""What a finished verification knows, saved so ``actas verify --since`` reads only new entries.

The state holds what later entries are checked against: the enrolled keys, the first acta of each mesa, the
tally accumulators and the right edge of the tree. It is the verifier's own cache, bound to the checkpoint
(origin, size, root) and the election digest it was computed for, and is only ever loaded for that checkpoint
after a consistency proof from it to the new one has verified.
"""

from __future__ import annotations

import hashlib
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from actas.core import canonical
from actas.core.b64 import b64decode, b64encode
from actas.core.election import Election
from actas.errors import MalformedError

STATE_VERSION = 4  # 2: conflicting actas' prefixes; 3: enrolled devices as digests; 4: 16-byte prefixes
DIGEST = 16
PREFIX = 16  # bytes of an acta's leaf hash kept to tell a repeat from a conflict (2**64 to collide)
_NONE = bytes(DIGEST)


def device_digest(device: str) -> bytes:
    """A device key string's 16-byte identity in the verifier's tables (SHA-256 prefix)."""
    return hashlib.sha256(device.encode("utf-8")).digest()[:DIGEST]


@dataclass
class VerifiedState:
    """Everything verification carries from one entry to the next."""

    election: Election
    size: int = 0
    root_hash: bytes = b""
    # The enrolled device of each mesa as a 16-byte digest (zeros: none), so 1 M mesas cost 16 MB; a mesa
    # with more than one enrolled device keeps the others in ``extra_devices``.
    mesa_device: bytearray = field(default_factory=bytearray)
    extra_devices: dict[int, set[bytes]] = field(default_factory=dict)
    first: list[array[int]] = field(default_factory=list)  # per contest: leaf of each mesa's counted acta, -1
    first_hash: list[bytearray] = field(default_factory=list)  # per contest: leaf-hash prefixes
    rows: list[array[int]] = field(default_factory=list)  # per contest: Tally.rows
    conflicts: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    conflict_hashes: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)  # prefixes, leaves[1:]
    edge: dict[str, bytes] = field(default_factory=dict)  # tile path → right-edge partial tile at size
    counts: dict[str, int] = field(default_factory=dict)
    election_digest: bytes | None = None

    @classmethod
    def empty(cls, election: Election) -> VerifiedState:
        """The state before entry 0."""
        n = election.mesa_count
        return cls(
            election,
            mesa_device=bytearray(DIGEST * n),
            first=[array("q", [-1]) * n for _ in election.contests],
            first_hash=[bytearray(PREFIX * n) for _ in election.contests],
        )

    def enroll(self, mesa: int, device: bytes) -> None:
        """Record that a device (by digest) may sign for a mesa."""
        at = DIGEST * mesa
        current = bytes(self.mesa_device[at : at + DIGEST])
        if current == _NONE:
            self.mesa_device[at : at + DIGEST] = device
        elif current != device:
            self.extra_devices.setdefault(mesa, set()).add(device)

    def is_enrolled(self, mesa: int, device: bytes) -> bool:
        """Whether a device (by digest) was enrolled for a mesa."""
        at = DIGEST * mesa
        return self.mesa_device[at : at + DIGEST] == device or device in self.extra_devices.get(mesa, ())

    def to_bytes(self) -> bytes:
        """Compressed canonical JSON."""
        value: dict[str, Any] = {
            "v": STATE_VERSION,
            "origin": self.election.origin,
            "election": self.election.digest.hex(),
            "size": self.size,
            "root": b64encode(self.root_hash),
            "mesa_device": b64encode(bytes(self.mesa_device)),
            "extra_devices": [[m, sorted(b64encode(d) for d in ds)] for m, ds in sorted(self.extra_devices.items())],
            "first": [b64encode(a.tobytes()) for a in self.first],
            "first_hash": [b64encode(bytes(b)) for b in self.first_hash],
            "rows": [b64encode(a.tobytes()) for a in self.rows],
            "conflicts": [
                [m, c, leaves, [b64encode(h) for h in self.conflict_hashes.get((m, c), [])]]
                for (m, c), leaves in sorted(self.conflicts.items())
            ],
            "edge": {path: b64encode(data) for path, data in sorted(self.edge.items())},
            "counts": dict(sorted(self.counts.items())),
            "logged_election": self.election_digest.hex() if self.election_digest is not None else None,
        }
        return zlib.compress(canonical.encode(value), 6)

    @classmethod
    def from_bytes(cls, data: bytes, election: Election) -> VerifiedState:
        """Load a state saved for this election; MalformedError if it does not fit."""
        try:
            value = canonical.decode(zlib.decompress(data))
            if value["v"] != STATE_VERSION or value["election"] != election.digest.hex():
                raise MalformedError("verification state: saved for another election or format")
            n = election.mesa_count

            def q(text: str, length: int | None = None) -> array[int]:
                items = array("q")
                items.frombytes(b64decode(text, "state"))
                if length is not None and len(items) != length:
                    raise MalformedError("verification state: array of the wrong length")
                return items

            logged = value["logged_election"]
            return cls(
                election,
                size=int(value["size"]),
                root_hash=b64decode(value["root"], "state.root", 32),
                mesa_device=bytearray(b64decode(value["mesa_device"], "state", DIGEST * n)),
                extra_devices={int(m): {b64decode(d, "state") for d in ds} for m, ds in value["extra_devices"]},
                first=[q(t, n) for t in value["first"]],
                first_hash=[bytearray(b64decode(t, "state", PREFIX * n)) for t in value["first_hash"]],
                rows=[q(t) for t in value["rows"]],
                conflicts={(int(m), int(c)): list(leaves) for m, c, leaves, _ in value["conflicts"]},
                conflict_hashes={
                    (int(m), int(c)): [b64decode(h, "state.conflicts", PREFIX) for h in hashes]
                    for m, c, _, hashes in value["conflicts"]
                },
                edge={path: b64decode(text, "state.edge") for path, text in value["edge"].items()},
                counts=dict(value["counts"]),
                election_digest=bytes.fromhex(logged) if logged is not None else None,
            )
        except (zlib.error, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedError(f"verification state: unreadable ({exc.__class__.__name__})") from None
