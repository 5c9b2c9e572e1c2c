"""Which of the witnesses a verifier trusts cosigned a checkpoint (C2SP tlog-cosignature, type 0x04).

A witness counts once however many of its lines a note carries, and only if one of them verifies; lines of
keys the verifier did not name are ignored (anyone may append signature lines to a note). The check holds when
at least ``required`` distinct witnesses cosigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actas.core.keys import Verifier
from actas.core.note import Note, cosigner_key_id, verify_cosignature
from actas.errors import ActasError, MalformedError

VALID, MISSING, INVALID = "valid", "missing", "invalid"


@dataclass(frozen=True)
class WitnessStatus:
    """One trusted witness's verdict: valid (with its cosignature time), missing, or invalid (and why)."""

    witness: Verifier
    status: str
    timestamp: int | None = None
    reason: str = ""

    @property
    def label(self) -> str:
        """The witness as people read it: name and verifier key id."""
        return f"{self.witness.name} ({self.witness.key_id_hex})"

    def to_value(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "name": self.witness.name,
            "key": str(self.witness),
            "status": self.status,
            "timestamp": self.timestamp,
            "reason": self.reason or None,
        }


@dataclass(frozen=True)
class WitnessCheck:
    """The verdict of every trusted witness and how many valid cosignatures are required."""

    required: int
    statuses: tuple[WitnessStatus, ...]

    @property
    def valid(self) -> int:
        """Distinct witnesses with a valid cosignature."""
        return sum(1 for s in self.statuses if s.status == VALID)

    @property
    def ok(self) -> bool:
        """Whether enough witnesses cosigned."""
        return self.valid >= self.required

    def problem(self) -> str | None:
        """None when enough witnesses cosigned, else a message naming the missing and invalid ones."""
        if self.ok:
            return None
        parts = [f"{self.valid} of {self.required} required witness cosignatures"]
        missing = [s.label for s in self.statuses if s.status == MISSING]
        if missing:
            parts.append("missing: " + ", ".join(missing))
        invalid = [f"{s.label}: {s.reason}" for s in self.statuses if s.status == INVALID]
        if invalid:
            parts.append("invalid: " + "; ".join(invalid))
        return "; ".join(parts)

    def to_value(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "required": self.required,
            "valid": self.valid,
            "ok": self.ok,
            "witnesses": [s.to_value() for s in self.statuses],
        }


def distinct_witnesses(witnesses: Sequence[Verifier]) -> list[Verifier]:
    """The witnesses without repeats (the same key given twice is one witness), in the order given."""
    seen: set[tuple[str, bytes]] = set()
    out: list[Verifier] = []
    for witness in witnesses:
        if (witness.name, witness.public) not in seen:
            seen.add((witness.name, witness.public))
            out.append(witness)
    return out


def check_witnesses(note: Note, witnesses: Sequence[Verifier], required: int | None = None) -> WitnessCheck:
    """Verify the cosignatures of the trusted witnesses on a checkpoint note; required defaults to all of them."""
    trusted = distinct_witnesses(witnesses)
    if required is None:
        required = len(trusted)
    if isinstance(required, bool) or not isinstance(required, int) or required < 0:
        raise MalformedError(f"required witnesses {required!r}: must be a non-negative integer")
    statuses: list[WitnessStatus] = []
    for witness in trusted:
        key_id = cosigner_key_id(witness)
        lines = [s for s in note.signatures if s.name == witness.name and s.key_id == key_id]
        if not lines:
            statuses.append(WitnessStatus(witness, MISSING, reason="no cosignature line by this key"))
            continue
        verdict = WitnessStatus(witness, INVALID)
        for line in lines:
            try:
                timestamp = verify_cosignature(note.text, line, witness)
            except ActasError as exc:  # SignatureError, or MalformedError for a note that is no checkpoint
                verdict = WitnessStatus(witness, INVALID, reason=str(exc))
                continue
            verdict = WitnessStatus(witness, VALID, timestamp)
            break
        statuses.append(verdict)
    return WitnessCheck(required, tuple(statuses))
