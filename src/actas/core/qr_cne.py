"""The QR code printed on a Venezuelan CNE 2024 tally sheet (acta de escrutinio): parsed, never trusted.

Format, as read from the paper copies the opposition's witnesses scanned in July 2024 (one line, ASCII)::

    <centre>.<mesa>.<t>.<seq>!<count>,<count>,…,<count>!<null>!<x>

    201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,1,2,0,0,0,5,7,155,1,1!0!0

* ``centre``: the CNE code of the voting centre, exactly 9 ASCII digits (CNE centre codes are built as
  2 state + 2 municipality + 2 parish + 3 centre digits).
* ``mesa``: the mesa (table) number within the centre, exactly 2 digits. An election definition spells
  that mesa ``<centre>.<mesa>`` (:attr:`CnePayload.mesa_id`).
* ``t``: 1 to 3 digits, ``1`` on the published presidential actas seen. The CNE has not published what it
  means (it may number the election or the acta type); it is kept, not interpreted.
* ``seq``: exactly 4 digits, ``0001`` on the published actas. Not documented either (perhaps a copy or
  transmission sequence number); kept, not interpreted. Community readers treat the whole
  ``centre.mesa.t.seq`` as the acta's identifier.
* the ticket counts: one per ballot position (party card) in ballot order, 38 in 2024, where tickets 1–13
  counted for Maduro and 34–36 for González (the example: 188 and 167 votes).
* ``null``: read by the published readers as the null (spoilt) votes of the mesa.
* ``x``: the last field, ``0`` on the published examples. Its meaning is not published; readers have
  labelled it "invalid" or "vacíos" without a source. It is kept and never used in totals.

Parsing is strict. Each count is 1–7 ASCII digits without sign, space, separator or leading zero (``0``
itself is fine); Unicode digits such as ``١`` are refused; every field must be present and non-empty; no
whitespace is allowed anywhere, not even a trailing newline (callers strip what their scanner adds);
at most 1,000 characters and 200 tickets. Every error is a :class:`~actas.errors.MalformedError` whose
message names the character position and the reason (``cne payload at 27: ticket count 5 is empty``).
:func:`format_cne` writes the canonical text back, so parsing and formatting round-trip exactly.

**The CNE QR carries no signature and no checksum.** Anyone can print a QR code in this format with any
numbers; it proves nothing about who produced it. A witness's copy of such an acta is evidence only
together with the paper it was printed on (signatures of the mesa members, the image kept by the
witness), and the numbers are cross-checked against other copies, never trusted on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from actas.core.acta import option_totals
from actas.core.election import Contest, Election
from actas.errors import MalformedError

MAX_LENGTH = 1000
MAX_TICKETS = 200
MAX_COUNT_DIGITS = 7
MAX_COUNT = 10**MAX_COUNT_DIGITS - 1
_DIGITS = frozenset("0123456789")
_WIDTHS = {"centre": (9, 9), "mesa": (2, 2), "t": (1, 3), "seq": (4, 4)}


def _fail(position: int, reason: str) -> MalformedError:
    return MalformedError(f"cne payload at {position}: {reason}")


def _check_code(name: str, value: object) -> None:
    low, high = _WIDTHS[name]
    if type(value) is not str or not low <= len(value) <= high or not set(value) <= _DIGITS:
        width = f"{low}" if low == high else f"{low} to {high}"
        raise MalformedError(f"cne payload: {name} must be {width} ASCII digits, not {value!r}")


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise MalformedError(f"cne payload: {name} must be an integer 0..{MAX_COUNT}, not {value!r}")


@dataclass(frozen=True, slots=True)
class CnePayload:
    """The fields of one CNE 2024 acta QR code, exactly as printed (see the module docstring)."""

    centre: str
    mesa: str
    t: str
    seq: str
    tickets: tuple[int, ...]
    null: int
    x: int

    def __post_init__(self) -> None:
        for name in ("centre", "mesa", "t", "seq"):
            _check_code(name, getattr(self, name))
        if not isinstance(self.tickets, tuple) or not 1 <= len(self.tickets) <= MAX_TICKETS:
            raise MalformedError(f"cne payload: tickets must be a tuple of 1 to {MAX_TICKETS} counts")
        for i, count in enumerate(self.tickets):
            _check_count(f"ticket count {i + 1}", count)
        _check_count("null", self.null)
        _check_count("x", self.x)

    @property
    def mesa_id(self) -> str:
        """The mesa as an election definition spells it: ``<centre>.<mesa>``."""
        return f"{self.centre}.{self.mesa}"


def _digits(text: str, start: int, what: str) -> None:
    """Refuse an empty field or any character that is not an ASCII digit, naming its position."""
    if not text:
        raise _fail(start, f"{what} is empty")
    for i, char in enumerate(text):
        if char not in _DIGITS:
            raise _fail(start + i, f"{what} holds {char!r}, not an ASCII digit")


def _code(text: str, start: int, name: str) -> str:
    _digits(text, start, name)
    low, high = _WIDTHS[name]
    if not low <= len(text) <= high:
        width = f"{low}" if low == high else f"{low} to {high}"
        raise _fail(start, f"{name} must be {width} digits, found {len(text)}")
    return text


def _count(text: str, start: int, what: str) -> int:
    _digits(text, start, what)
    if len(text) > MAX_COUNT_DIGITS:
        raise _fail(start, f"{what} has more than {MAX_COUNT_DIGITS} digits")
    if len(text) > 1 and text[0] == "0":
        raise _fail(start, f"{what} has a leading zero")
    return int(text)  # ASCII digits only, checked above


def _sections(text: str) -> list[tuple[int, str]]:
    """Split on '!' into exactly four (start, text) sections, or say where the structure breaks."""
    sections: list[tuple[int, str]] = []
    start = 0
    while True:
        bang = text.find("!", start)
        if bang < 0:
            sections.append((start, text[start:]))
            break
        if len(sections) == 3:
            raise _fail(bang, "trailing data: a fifth '!'-separated section")
        sections.append((start, text[start:bang]))
        start = bang + 1
    if len(sections) != 4:
        raise _fail(len(text), f"expected 4 sections separated by '!' (id, tickets, null, x), found {len(sections)}")
    return sections


def parse_cne(text: str) -> CnePayload:
    """Parse a CNE 2024 acta QR text strictly; MalformedError names the position and reason of any fault."""
    if not isinstance(text, str):
        raise MalformedError("cne payload: expected text")
    if len(text) > MAX_LENGTH:
        raise _fail(MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    if text[:1].isspace():
        raise _fail(0, "leading whitespace (strip the scanned text first)")
    if text[-1:].isspace():
        raise _fail(len(text) - 1, "trailing whitespace or newline (strip the scanned text first)")
    (id_start, ident), (tickets_start, tickets), (null_start, null), (x_start, x) = _sections(text)
    codes: list[str] = []
    position = id_start
    names = ("centre", "mesa", "t", "seq")
    pieces = ident.split(".")
    if len(pieces) != 4:
        raise _fail(
            id_start + len(ident), f"the id needs 4 '.'-separated fields (centre.mesa.t.seq), found {len(pieces)}"
        )
    for name, piece in zip(names, pieces, strict=True):
        codes.append(_code(piece, position, name))
        position += len(piece) + 1
    counts: list[int] = []
    position = tickets_start
    for k, piece in enumerate(tickets.split(","), start=1):
        if k > MAX_TICKETS:
            raise _fail(position, f"more than {MAX_TICKETS} ticket counts")
        counts.append(_count(piece, position, f"ticket count {k}"))
        position += len(piece) + 1
    return CnePayload(
        centre=codes[0],
        mesa=codes[1],
        t=codes[2],
        seq=codes[3],
        tickets=tuple(counts),
        null=_count(null, null_start, "null count"),
        x=_count(x, x_start, "last field (x)"),
    )


def format_cne(payload: CnePayload) -> str:
    """The canonical QR text of a payload (what :func:`parse_cne` reads back to an equal payload)."""
    counts = ",".join(map(str, payload.tickets))
    return f"{payload.centre}.{payload.mesa}.{payload.t}.{payload.seq}!{counts}!{payload.null}!{payload.x}"


@dataclass(frozen=True, slots=True)
class CneActa:
    """A CNE acta mapped onto an election definition: ticket counts, per-option totals and null votes."""

    mesa: str
    contest: str
    tickets: tuple[int, ...]
    options: tuple[int, ...]
    null: int

    def __post_init__(self) -> None:
        for name in ("mesa", "contest"):
            if type(getattr(self, name)) is not str or not getattr(self, name):
                raise MalformedError(f"cne acta: {name} must be a non-empty string")
        for name in ("tickets", "options"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values or any(type(v) is not int or v < 0 for v in values):
                raise MalformedError(f"cne acta: {name} must be a non-empty tuple of counts")
        _check_count("null", self.null)
        if sum(self.tickets) != sum(self.options):
            raise MalformedError("cne acta: option totals do not add up to the ticket counts")


def _contest(election: Election, contest_id: str | None) -> Contest:
    if contest_id is None:
        if len(election.contests) != 1:
            ids = ", ".join(c.id for c in election.contests)
            raise MalformedError(f"cne payload: the definition has {len(election.contests)} contests ({ids}); name one")
        return election.contests[0]
    contest = election.contest(contest_id)
    if contest is None:
        raise MalformedError(f"cne payload: contest {contest_id!r} is not in the definition")
    return contest


def cne_counts(payload: CnePayload, election: Election, contest_id: str | None = None) -> CneActa:
    """Map a payload's ticket counts to the options of a contest (the only one, or the one named)."""
    contest = _contest(election, contest_id)
    if len(payload.tickets) != len(contest.ticket_option):
        at = len(payload.centre) + len(payload.mesa) + len(payload.t) + len(payload.seq) + 4
        raise _fail(
            at,
            f"{len(payload.tickets)} ticket counts, but contest {contest.id!r} has "
            f"{len(contest.ticket_option)} tickets",
        )
    if election.mesa_index(payload.mesa_id) is None:
        raise _fail(0, f"mesa {payload.mesa_id!r} is not in the definition")
    return CneActa(
        mesa=payload.mesa_id,
        contest=contest.id,
        tickets=payload.tickets,
        options=option_totals(payload.tickets, contest),
        null=payload.null,
    )
