"""The outcome of a verification: the numbered steps, their failures, and the report (docs/verification.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from actas.core.b64 import b64encode
from actas.core.tally import ConflictRecord
from actas.core.witness_check import WitnessCheck

STEPS: tuple[tuple[int, str, str], ...] = (
    (1, "checkpoint", "checkpoint signed by the authority key"),
    (2, "election", "election definition parses"),
    (3, "tiles", "every tile and entry bundle consistent with the checkpoint root"),
    (4, "entries", "every entry canonical and of a known type"),
    (5, "election-entry", "entry 0 binds the election definition's digest"),
    (6, "enrollments", "every enrollment signed by the authority for known mesas"),
    (7, "actas", "every acta signed by a key enrolled for its mesa and passing the rules; every observation readable"),
    (8, "conflicts", "mesas with more than one different acta listed"),
    (9, "results", "totals recomputed from the log equal the published results files"),
)
S_CHECKPOINT, S_ELECTION, S_TILES, S_ENTRIES, S_ELECTION_ENTRY, S_ENROLL, S_ACTAS, S_CONFLICTS, S_RESULTS = range(1, 10)
MAX_LISTED = 50  # failures kept per step; all are counted


@dataclass(frozen=True, slots=True)
class Failure:
    """One thing that does not hold: the step, the file (or entry) at fault, and why."""

    step: int
    where: str
    message: str


@dataclass
class Report:
    """The outcome of a verification: every step's verdict, failures, conflicts and counts."""

    origin: str = ""
    size: int = 0
    root_hash: bytes = b""
    failures: list[Failure] = field(default_factory=list)
    failure_counts: dict[int, int] = field(default_factory=dict)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    reached: int = 0  # the last step that was run
    since: int | None = None  # entries before this were verified earlier (incremental run)
    national: dict[str, list[int]] = field(default_factory=dict)
    witnesses: WitnessCheck | None = None  # the cosignatures checked in step 1, when witnesses were given

    @property
    def ok(self) -> bool:
        """Whether every step ran and held."""
        return self.reached == len(STEPS) and not self.failure_counts

    def fail(self, failure: Failure) -> None:
        """Record a failure (listing at most MAX_LISTED per step)."""
        count = self.failure_counts.get(failure.step, 0)
        if count < MAX_LISTED:
            self.failures.append(failure)
        self.failure_counts[failure.step] = count + 1

    def step_ok(self, step: int) -> bool | None:
        """True or False for a step that ran, None for one that did not."""
        if step > self.reached:
            return None
        return step not in self.failure_counts

    def to_value(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "ok": self.ok,
            "origin": self.origin,
            "checkpoint": {"size": self.size, "root": b64encode(self.root_hash)},
            "steps": [
                {
                    "number": number,
                    "name": name,
                    "description": text,
                    "ok": self.step_ok(number),
                    "failures": self.failure_counts.get(number, 0),
                }
                for number, name, text in STEPS
            ],
            "failures": [{"step": f.step, "where": f.where, "message": f.message} for f in self.failures],
            "since": self.since,
            "conflicts": [{"mesa": c.mesa, "contest": c.contest, "leaves": list(c.leaves)} for c in self.conflicts],
            "counts": dict(self.counts),
            "national": self.national,
            "witnesses": self.witnesses.to_value() if self.witnesses is not None else None,
        }
