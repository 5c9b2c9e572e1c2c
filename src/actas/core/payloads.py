"""One entry point for every QR payload printed on a tally sheet: identify it, read it as a paper copy.

Formats, told apart by their first characters (:func:`identify`):

* ``actas1`` — the project's own signed payload, ``ACTAS1:`` + Base45 of the DEFLATE-compressed signed acta
  entry (:mod:`actas.core.qr`, docs/formats.md §12). Read by decoding the entry, parsing it (only ``acta``
  entries are accepted) and checking its Ed25519 signature under the device key the acta itself names: the
  copy says ``"valid"`` or ``"invalid"``. Whether that key was enrolled for the mesa is a question for the
  log, not for the paper, and is not answered here.
* ``cne2024`` — the Venezuelan CNE 2024 acta code, ``<9 digits>.<mesa>.<t>.<seq>!…`` (:mod:`actas.core.qr_cne`).
  It names tickets only by position, so reading it needs the election definition (the contest's ticket →
  option map and the mesa's existence). It carries no signature: the copy says ``"unsigned"``.
* ``qrbu`` — one QR code of a Brazilian boletim de urna, ``QRBU:<i>:<n> …`` (:mod:`actas.core.qr_qrbu`). One
  part is not a copy: :func:`read_copy` checks the part and then refuses it, telling the caller to collect
  every part and :func:`~actas.core.qr_qrbu.assemble` them. A BU is not turned into :class:`PaperCopy`
  values here because a BU's cargos and candidate numbers have no fixed mapping to a definition's contests
  and tickets.

Anything else is refused with a :class:`~actas.errors.MalformedError` at position 0. Every failure of
:func:`read_copy` on untrusted text is a ``MalformedError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from actas.core.election import Election
from actas.core.entries import ActaEntry, parse_entry
from actas.core.keys import CONTEXT_ACTA
from actas.core.qr import PREFIX as ACTAS1_PREFIX
from actas.core.qr import decode_payload
from actas.core.qr_cne import cne_counts, parse_cne
from actas.core.qr_qrbu import parse_part
from actas.errors import KeyFormatError, MalformedError

Format = Literal["actas1", "cne2024", "qrbu"]
Signature = Literal["valid", "invalid", "unsigned"]
FORMATS: tuple[Format, ...] = get_args(Format)
SIGNATURES: tuple[Signature, ...] = get_args(Signature)
_CNE_SHAPE = re.compile(r"[0-9]+\.").match


def identify(text: str) -> Format:
    """The payload format by its prefix or shape; MalformedError at position 0 if it is none of them."""
    if not isinstance(text, str):
        raise MalformedError("payload at 0: expected text")
    if text.startswith(ACTAS1_PREFIX):
        return "actas1"
    if text.startswith("QRBU:"):
        return "qrbu"
    if _CNE_SHAPE(text):
        return "cne2024"
    raise MalformedError(f"payload at 0: not a known format ({ACTAS1_PREFIX}…, QRBU:…, or a CNE 2024 acta code)")


def _counts(values: object, name: str) -> None:
    if not isinstance(values, tuple) or not values or any(type(v) is not int for v in values):
        raise MalformedError(f"paper copy: {name} must be a non-empty tuple of integers")


@dataclass(frozen=True, slots=True)
class PaperCopy:
    """What one printed QR code says about one mesa's acta, whatever its format.

    ``null``, ``blank`` and ``registered`` are None where the format does not carry them; ``entry`` is the
    exact signed entry (actas1 only) and ``device`` the key string the acta names (actas1 only).
    """

    format: Format
    mesa: str
    contest: str
    tickets: tuple[int, ...]
    options: tuple[int, ...]
    null: int | None
    blank: int | None
    registered: int | None
    entry: bytes | None
    signature: Signature
    device: str | None

    def __post_init__(self) -> None:
        if self.format not in FORMATS or self.signature not in SIGNATURES:
            raise MalformedError(f"paper copy: unknown format {self.format!r} or signature {self.signature!r}")
        for name in ("mesa", "contest"):
            if type(getattr(self, name)) is not str or not getattr(self, name):
                raise MalformedError(f"paper copy: {name} must be a non-empty string")
        _counts(self.tickets, "tickets")
        _counts(self.options, "options")
        for name in ("null", "blank", "registered"):
            if getattr(self, name) is not None and type(getattr(self, name)) is not int:
                raise MalformedError(f"paper copy: {name} must be an integer or None")
        signed = self.format == "actas1"
        if signed != (type(self.entry) is bytes) or signed != (type(self.device) is str):
            raise MalformedError("paper copy: entry and device are given for actas1 payloads and only for them")
        if signed == (self.signature == "unsigned"):
            raise MalformedError("paper copy: actas1 copies are valid or invalid, other formats unsigned")


def _read_actas1(text: str) -> PaperCopy:
    entry = decode_payload(text)
    try:
        parsed = parse_entry(entry)
    except KeyFormatError as exc:  # an enroll entry with a bad key: still not an acta
        raise MalformedError(f"payload: {exc}") from None
    if not isinstance(parsed.entry, ActaEntry):
        kind = type(parsed.entry).__name__.removesuffix("Entry").lower()
        raise MalformedError(f"payload: carries an {kind} entry, not an acta")
    acta = parsed.entry.acta
    try:
        valid = acta.device_verifier().verify_in_context(CONTEXT_ACTA, parsed.signed_bytes, parsed.entry.signature)
    except KeyFormatError:  # a device key that does not parse signs nothing
        valid = False
    return PaperCopy(
        format="actas1",
        mesa=acta.mesa,
        contest=acta.contest,
        tickets=acta.tickets,
        options=acta.options,
        null=acta.null,
        blank=acta.blank,
        registered=acta.registered,
        entry=entry,
        signature="valid" if valid else "invalid",
        device=acta.device,
    )


def _read_cne(text: str, election: Election | None) -> PaperCopy:
    payload = parse_cne(text)
    if election is None:
        raise MalformedError("payload: a CNE 2024 code names tickets by position; reading it needs the election")
    acta = cne_counts(payload, election)
    return PaperCopy(
        format="cne2024",
        mesa=acta.mesa,
        contest=acta.contest,
        tickets=acta.tickets,
        options=acta.options,
        null=acta.null,
        blank=None,
        registered=None,
        entry=None,
        signature="unsigned",
        device=None,
    )


def read_copy(text: str, election: Election | None) -> PaperCopy:
    """Read any supported payload as a paper copy (the election is needed for CNE 2024 codes)."""
    kind = identify(text)
    if kind == "actas1":
        return _read_actas1(text)
    if kind == "cne2024":
        return _read_cne(text, election)
    part = parse_part(text)
    raise MalformedError(
        f"payload at 0: part {part.index} of {part.count} of a boletim de urna is not a copy by itself; "
        "collect every part and assemble them (actas.core.qr_qrbu.assemble)"
    )
