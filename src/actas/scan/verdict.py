"""The verdict on the QR texts of one image: which status they earn, and the counts of the copy they state.

The reader's fallback ladder (:func:`actas.scan.qr_read.read_qr`) stops at the first step whose texts
:class:`Acceptor` accepts: a text that parses strictly as a known payload (an ``actas1`` acta, a CNE 2024 acta
or one part of a Brazilian boletim, ``QRBU``). Rejected texts are kept with the parser's reason. :class:`Judge`
then turns the accepted texts into one :class:`Verdict`, against an election definition or none:

* no text accepted: ``bad-payload`` with the first rejected text and its reason, or ``no-qr`` when nothing was
  read at all;
* an ``actas1`` or CNE 2024 text: ``unknown-mesa`` first for a CNE text whose mesa is not in the definition;
  ``bad-payload`` if it does not parse strictly; ``bad-signature`` if the device signature does not verify; then,
  with a definition, ``wrong-election`` (another election origin), ``unknown-mesa``, ``bad-payload`` (a contest
  the definition does not have, or other ticket and option counts); otherwise ``ok``;
* the ``QRBU`` parts of one image are assembled when all parts 1..N are present and their hash chain holds
  (else ``bad-payload``); its mesa must be in the definition (else ``unknown-mesa``); the result is ``ok`` with
  signature ``unsigned``, because the ASSI signature needs the TSE's key.

Several verdicts in one image: the best wins (ok, then bad-signature, wrong-election, unknown-mesa,
bad-payload), and two different ok payloads in one image are refused as ``bad-payload`` (one acta per photo).

Kept apart from :mod:`actas.scan.batch` so that the rules of one image can be read and tested without the pool,
the hashing and the batch-wide duplicate and conflict marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from actas.core.election import Election
from actas.core.entries import ActaEntry, parse_entry
from actas.core.payloads import PaperCopy, identify, read_copy
from actas.core.qr_cne import parse_cne
from actas.core.qr_qrbu import assemble, parse_part
from actas.errors import ActasError

Status = Literal[
    "ok",
    "duplicate-image",
    "duplicate-payload",
    "no-qr",
    "bad-payload",
    "bad-signature",
    "unknown-mesa",
    "wrong-election",
    "error",
]
STATUSES: tuple[Status, ...] = get_args(Status)  # of a scan record; a verdict gives no duplicate-* status
# Which read of an image wins when it holds several QR codes: the lower, the better.
_RANK = {"ok": 0, "bad-signature": 1, "wrong-election": 2, "unknown-mesa": 3, "bad-payload": 4}


@dataclass(frozen=True, slots=True)
class ScannedCopy:
    """The counts a paper copy states, whatever its format; None where the format does not carry them.

    ``entry`` is the exact signed entry of an ``actas1`` copy (not in the JSON: the payload carries it).
    """

    mesa: str
    contest: str | None
    tickets: tuple[int, ...]
    options: tuple[int, ...]
    null: int | None
    blank: int | None
    registered: int | None
    device: str | None
    entry: bytes | None = None

    @classmethod
    def of(cls, copy: PaperCopy) -> ScannedCopy:
        """The counts of a decoded paper copy."""
        return cls(
            copy.mesa,
            copy.contest,
            tuple(copy.tickets),
            tuple(copy.options),
            copy.null,
            copy.blank,
            copy.registered,
            copy.device,
            copy.entry,
        )

    def agrees_with(self, other: ScannedCopy) -> bool:
        """Same counts, comparing only what both copies carry."""
        pairs = ((self.null, other.null), (self.blank, other.blank), (self.registered, other.registered))
        return (
            self.tickets == other.tickets
            and self.options == other.options
            and all(a is None or b is None or a == b for a, b in pairs)
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, keys sorted."""
        return {
            "blank": self.blank,
            "contest": self.contest,
            "device": self.device,
            "mesa": self.mesa,
            "null": self.null,
            "options": list(self.options),
            "registered": self.registered,
            "tickets": list(self.tickets),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict on the QR texts of one page."""

    status: Status
    reason: str | None = None
    payload: str | None = None
    format: str | None = None
    copy: ScannedCopy | None = None
    signature: str | None = None


@dataclass(slots=True)
class Acceptor:
    """The ladder's accept test: a text that parses as a known payload; the others are kept with the reason."""

    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, text: str) -> bool:
        try:
            kind = identify(text)
            if kind == "qrbu":
                parse_part(text)
            elif kind == "cne2024":
                parse_cne(text)
            else:
                read_copy(text, None)
        except ActasError as exc:
            self.rejected.append((text, str(exc)))
            return False
        return True


class Judge:
    """Judges the QR texts of a page against one election definition (or none)."""

    def __init__(self, election: Election | None) -> None:
        self.election = election

    def judge(self, texts: Sequence[str], rejected: Sequence[tuple[str, str]]) -> Verdict:
        """The best verdict over the accepted texts of a page; a rejected text only when none was accepted."""
        if not texts:
            if rejected:
                text, reason = rejected[0]
                return Verdict("bad-payload", reason, text, _format_of(text))
            return Verdict("no-qr", "no QR code found")
        parts = [t for t in texts if _format_of(t) == "qrbu"]
        outcomes = [self.judge_text(t) for t in texts if t not in parts]
        if parts:
            outcomes.append(self.judge_boletim(parts))
        good = {o.payload for o in outcomes if o.status == "ok"}
        if len(good) > 1:
            reason = f"{len(good)} different acta QR codes in one image; photograph one acta at a time"
            return Verdict("bad-payload", reason, "\n".join(sorted(p for p in good if p is not None)))
        return min(outcomes, key=lambda o: _RANK[o.status])

    def judge_text(self, text: str) -> Verdict:
        """The verdict on one actas1 or CNE 2024 text."""
        kind = _format_of(text)
        try:
            if kind == "cne2024" and self.election is not None:
                mesa = parse_cne(text).mesa_id
                if self.election.mesa_index(mesa) is None:
                    return Verdict("unknown-mesa", f"mesa {mesa!r} is not in the definition", text, kind)
            copy = read_copy(text, self.election)
        except ActasError as exc:
            return Verdict("bad-payload", str(exc), text, kind)
        scanned = ScannedCopy.of(copy)
        if copy.signature == "invalid":
            reason = "the device signature does not verify"
            return Verdict("bad-signature", reason, text, kind, scanned, copy.signature)
        problem = self._definition_problem(copy)
        if problem is not None:
            return Verdict(problem[0], problem[1], text, kind, scanned, copy.signature)
        return Verdict("ok", None, text, kind, scanned, copy.signature)

    def _definition_problem(self, copy: PaperCopy) -> tuple[Status, str] | None:
        """Why a well-signed copy does not belong to the definition's election, if it does not."""
        election = self.election
        if election is None:
            return None
        if copy.entry is not None:
            entry = parse_entry(copy.entry).entry
            if isinstance(entry, ActaEntry) and entry.acta.election != election.origin:
                return "wrong-election", f"acta of election {entry.acta.election!r}, not {election.origin!r}"
        if election.mesa_index(copy.mesa) is None:
            return "unknown-mesa", f"mesa {copy.mesa!r} is not in the definition"
        contest = election.contest(copy.contest)
        if contest is None:
            return "bad-payload", f"contest {copy.contest!r} is not in the definition"
        if len(copy.tickets) != len(contest.tickets) or len(copy.options) != len(contest.options):
            counts = f"{len(copy.tickets)} tickets and {len(copy.options)} options"
            want = f"{len(contest.tickets)} and {len(contest.options)}"
            return "bad-payload", f"contest {contest.id!r} has {want}; the copy has {counts}"
        return None

    def judge_boletim(self, texts: Sequence[str]) -> Verdict:
        """The verdict on the QRBU parts of one image: all parts of one boletim, assembled."""
        try:
            pairs = sorted(((parse_part(t), t) for t in texts), key=lambda pair: pair[0].index)
        except ActasError as exc:
            return Verdict("bad-payload", str(exc), "\n".join(texts), "qrbu")
        payload = "\n".join(text for _, text in pairs)  # in part order, so the same boletim has one payload
        total = pairs[0][0].count
        found = sorted({part.index for part, _ in pairs})
        if found != list(range(1, total + 1)):
            numbers = ", ".join(str(i) for i in found)
            return Verdict("bad-payload", f"incomplete boletim: parts {numbers} of {total} found", payload, "qrbu")
        try:
            boletim = assemble(part for part, _ in pairs)
        except ActasError as exc:
            return Verdict("bad-payload", str(exc), payload, "qrbu")
        mesa = boletim.mesa_id
        if self.election is not None and self.election.mesa_index(mesa) is None:
            return Verdict("unknown-mesa", f"mesa {mesa!r} is not in the definition", payload, "qrbu")
        copy = ScannedCopy(mesa, None, (), (), None, None, boletim.apt, None)
        note = "hash chain verified; the ASSI signature is not checked (it needs the TSE's key)"
        return Verdict("ok", note, payload, "qrbu", copy, "unsigned")


def _format_of(text: str) -> str | None:
    try:
        return identify(text)
    except ActasError:
        return None
