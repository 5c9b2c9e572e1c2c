"""Printable actas: a signed acta entry in, a tally sheet out (A4 page, thermal strip, PDF).

Where every printed value comes from
    The renderer takes only the signed entry bytes and the election definition. It parses the entry with
    :func:`~actas.core.entries.parse_entry` and checks its device signature; every number on the sheet (registered
    voters as stated on the acta, each ticket's votes, each option's total as signed, null, blank, valid = the sum
    of the tickets, cast = valid + null + blank) is read from that parsed acta, and the QR code carries
    :func:`~actas.core.qr.encode_payload` of the very same bytes. Paper and QR code agree by construction. Only
    names (title, contest, options, tickets, areas) come from the definition. An entry that is not an acta, is for
    another election, names a mesa or contest the definition lacks, or has another ticket or option count than its
    contest is refused with ``MalformedError``; one whose signature does not verify with ``SignatureError``.

What the sheet shows
    Heading, election title and origin; contest, mesa id, registered voters; the mesa's areas from the root down,
    one field per level; the signing device key; a table of tickets (ballot position, name, votes); the option
    totals; valid, null, blank and cast; signature lines for the poll workers; the QR code and under it the
    fingerprint, the first 16 hex digits of SHA-256 of the entry bytes, so that a person can match paper and log.
    Every printed label is in :data:`LABELS`, so a translation swaps one table.

The QR code
    segno, model 2 (never Micro QR), one segment in alphanumeric mode, error correction M, raised to Q or H when
    that needs no larger version, and a quiet zone of 4 modules. A module is a whole number of pixels, at least
    0.5 mm (6 px at 300 dpi) and at most 1 mm. A payload beyond QR capacity is refused with ``TooLargeError``.

Layouts
    ``a4``: 210 x 297 mm at ``dpi``; the header across the page, tickets on the left, QR code and totals on the
    right, signature lines at the bottom. Body text is 9 pt; when the sheet does not fit it is set again smaller
    (down to 60 %) and then with the ticket table in 2 or 3 columns; a contest that still does not fit raises
    ``TooLargeError`` (the strip takes any length). ``strip``: 72 mm wide, the printable width of an 80 mm
    thermal roll (575 px at 203 dpi), as long as needed: header, tickets, totals, signature lines, QR code.

Output is grayscale (mode ``L``) and deterministic: equal input gives equal pixels and bytes. Text is set in
DejaVu Sans, shipped with the package (``scan/fonts``, Bitstream Vera licence) subset to the Latin letters of
Spanish, Portuguese and the other Latin-script languages (U+0020–U+017F): ``República``, ``Eleição``. Any other
character is printed as its base letters without accents or, failing that, as ``?``.

The PDF has one page per acta, each page one Flate-compressed 8-bit grayscale image at 300 dpi filling a MediaBox
of the page's size; it is written here object by object, with no date or id in it.
"""

from __future__ import annotations

import hashlib
import io
import math
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import segno
from PIL import Image, ImageDraw, ImageFont

from actas.core.acta import Acta
from actas.core.election import Contest, Election
from actas.core.entries import ActaEntry, parse_entry
from actas.core.keys import CONTEXT_ACTA
from actas.core.qr import encode_payload
from actas.errors import MalformedError, SignatureError, TooLargeError

Layout = Literal["a4", "strip"]
LAYOUTS: tuple[Layout, ...] = ("a4", "strip")
MIN_DPI, MAX_DPI = 100, 600
PDF_DPI = 300
QUIET_ZONE = 4  # modules of light margin around the QR symbol, as ISO/IEC 18004 requires
MIN_MODULE_MM, MAX_MODULE_MM = 0.5, 1.0
A4_MM = (210.0, 297.0)
STRIP_MM = 72.0

LABELS: Mapping[str, str] = MappingProxyType(
    {
        "heading": "ACTA DE ESCRUTINIO",
        "contest": "Elección",
        "mesa": "Mesa",
        "registered": "Electores inscritos",
        "device": "Dispositivo firmante",
        "position": "N.",
        "ticket": "Tarjeta",
        "votes": "Votos",
        "option": "Candidatura",
        "total": "Total",
        "valid": "Votos válidos",
        "null": "Votos nulos",
        "blank": "Votos en blanco",
        "cast": "Total de votos",
        "fingerprint": "SHA-256",
        "president": "Presidente/a",
        "secretary": "Secretario/a",
        "member": "Miembro",
        "witness": "Testigo",
    }
)
SIGNATURE_ROLES = ("president", "secretary", "member", "witness")

Style = Literal["heading", "title", "body", "small"]
_POINTS: Mapping[Style, float] = MappingProxyType({"heading": 15, "title": 11, "body": 9, "small": 7})
_A4_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True, slots=True)
class _Sheet:
    """What one printed acta shows: the parsed acta, the names it needs, and its QR code."""

    acta: Acta
    contest: Contest
    title: str
    origin: str
    areas: tuple[tuple[str, str], ...]  # (level, area name) from the root down
    qr: segno.QRCode
    fingerprint: str


def qr_code(entry: bytes) -> segno.QRCode:
    """The QR code printed for a signed entry: its own-format payload, alphanumeric mode, level M or higher."""
    payload = encode_payload(entry)
    try:
        return segno.make_qr(payload, error="m", boost_error=True, mode="alphanumeric")
    except segno.DataOverflowError:
        raise TooLargeError(f"QR payload: {len(payload)} characters do not fit a QR code at level M") from None


def _sheet(entry: bytes, election: Election) -> _Sheet:
    parsed = parse_entry(entry)
    if not isinstance(parsed.entry, ActaEntry):
        kind = parsed.entry.body()["type"]
        raise MalformedError(f"entry.type: only an acta can be printed, not an {kind!r} entry")
    acta = parsed.entry.acta
    if acta.election != election.origin:
        raise MalformedError(f"acta.election: {acta.election!r} is not the definition's origin {election.origin!r}")
    mesa = election.mesa_index(acta.mesa)
    if mesa is None:
        raise MalformedError(f"acta.mesa: mesa {acta.mesa!r} is not in the definition")
    contest = election.contest(acta.contest)
    if contest is None:
        raise MalformedError(f"acta.contest: contest {acta.contest!r} is not in the definition")
    if len(acta.tickets) != len(contest.tickets) or len(acta.options) != len(contest.options):
        raise MalformedError(
            f"acta.tickets: contest {contest.id!r} has {len(contest.tickets)} tickets and {len(contest.options)} "
            f"options; the acta has {len(acta.tickets)} and {len(acta.options)}"
        )
    if not acta.device_verifier().verify_in_context(CONTEXT_ACTA, parsed.signed_bytes, parsed.entry.signature):
        raise SignatureError(f"acta for mesa {acta.mesa!r}: the device signature does not verify")
    path = election.area_path(election.mesa_area(mesa))
    areas = tuple((election.levels[election.areas[i].level], election.areas[i].name) for i in path)
    fingerprint = hashlib.sha256(entry).hexdigest()[:16]
    return _Sheet(acta, contest, election.title, election.origin, areas, qr_code(entry), fingerprint)


_FONT = Path(__file__).parent / "fonts" / "DejaVuSans-Latin.ttf"


@cache
def _font(size: int) -> _Font:
    return ImageFont.truetype(str(_FONT), size=size)


# Letters and dashes that Unicode does not decompose into ASCII, spelt the way a typist would.
_SPELLED = MappingProxyType(
    dict.fromkeys("–—‐‑−", "-")
    | {"ß": "ss", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o"}
    | {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "ı": "i"}
)


@cache
def _covered(char: str) -> bool:
    """Whether the shipped font has a glyph for a character (its mask differs from the missing-glyph box)."""
    font = _font(24)
    mask, missing = font.getmask(char), font.getmask("\U0010fffd")
    return mask.size != missing.size or bytes(mask) != bytes(missing)


def _printable(text: str) -> str:
    """Text the font can show: characters it lacks become their base letters without accents, else '?'."""
    out: list[str] = []
    for char in text:
        if _covered(char):
            out.append(char)
            continue
        spelled = _SPELLED.get(char) or unicodedata.normalize("NFKD", char)
        base = [c for c in spelled if not unicodedata.combining(c) and _covered(c)]
        out.append("".join(base) or "?")
    return "".join(out)


class _Pen:
    """Sets text and lines at one scale; without an image it only measures, so layout and drawing share code."""

    def __init__(self, image: Image.Image | None, dpi: int, scale: float) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image) if image is not None else None
        self.dpi = dpi
        self.scale = scale
        self.sizes = {style: max(8, round(points * scale * dpi / 72)) for style, points in _POINTS.items()}
        self.thin = max(1, self.mm(0.15))
        self.thick = max(2, self.mm(0.4))

    def dry(self) -> _Pen:
        """A pen of the same scale that only measures."""
        return _Pen(None, self.dpi, self.scale)

    def mm(self, length: float, scaled: bool = False) -> int:
        """Millimetres in pixels (optionally at the pen's scale)."""
        return round(length * (self.scale if scaled else 1.0) * self.dpi / 25.4)

    def lead(self, style: Style) -> int:
        """Line height of a style."""
        return round(self.sizes[style] * 1.3)

    def wrap(self, text: str, style: Style, width: int) -> list[str]:
        """Greedy word wrap; a word wider than the width is broken between characters, so nothing is cut off."""
        font = _font(self.sizes[style])
        lines: list[str] = []
        line = ""
        for word in _printable(text).split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:
                if line and font.getlength(line + char) > width:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
        return lines

    def text(
        self, x: int, y: int, width: int, text: str, style: Style = "body", align: str = "left", bold: bool = False
    ) -> int:
        """Set wrapped text in a column; returns the y below it."""
        lines = self.wrap(text, style, width)
        lead = self.lead(style)
        if self.draw is not None:
            font = _font(self.sizes[style])
            stroke = max(1, self.sizes[style] // 36) if bold else 0  # one face shipped: bold is a stroke
            for i, line in enumerate(lines):
                room = width - font.getlength(line)
                shift = {"left": 0.0, "right": room, "center": room / 2}[align]
                self.draw.text((x + round(shift), y + i * lead), line, fill=0, font=font, stroke_width=stroke)
        return y + lead * len(lines)

    def rule(self, x: int, y: int, width: int, weight: int) -> None:
        """A horizontal line of a weight in pixels, its top at y."""
        if self.draw is not None:
            self.draw.rectangle((x, y, x + width - 1, y + weight - 1), fill=0)

    def paste(self, picture: Image.Image, x: int, y: int) -> None:
        """Place an image with its top left corner at (x, y)."""
        if self.image is not None:
            self.image.paste(picture, (x, y))


def _table(
    pen: _Pen,
    x: int,
    y: int,
    columns: Sequence[tuple[int, str]],
    rows: Sequence[Sequence[str]],
    bold: frozenset[int] = frozenset({0}),
    heavy: frozenset[int] = frozenset({0}),
) -> int:
    """Rows of cells (column widths and alignments given); ``bold`` rows are bold, ``heavy`` ones ruled thick below."""
    pad, gap = pen.mm(0.7, scaled=True), pen.mm(1.2, scaled=True)
    width = sum(w for w, _ in columns)
    pen.rule(x, y, width, pen.thick)
    y += pen.thick
    for r, row in enumerate(rows):
        bottom, left = y + pad, x
        for (w, align), cell in zip(columns, row, strict=True):
            bottom = max(bottom, pen.text(left + gap, y + pad, w - 2 * gap, cell, "body", align, r in bold))
            left += w
        weight = pen.thick if r in heavy or r == len(rows) - 1 else pen.thin
        pen.rule(x, bottom + pad, width, weight)
        y = bottom + pad + weight
    return y


def _column_width(pen: _Pen, texts: Sequence[str]) -> int:
    """Room for the widest of some one-line texts (numbers are never wrapped: a split number misleads)."""
    font = _font(pen.sizes["body"])
    widest = max(font.getlength(_printable(text)) for text in (*texts, "0000"))
    return round(widest) + 2 * pen.mm(1.2, scaled=True) + 2 * (pen.sizes["body"] // 36 + 1)  # bold strokes


def _fields(pen: _Pen, sheet: _Sheet, x: int, y: int, width: int, across: int) -> int:
    """The identifying fields as a grid of label over value."""
    acta = sheet.acta
    fields = [
        (LABELS["contest"], sheet.contest.name),
        (LABELS["mesa"], acta.mesa),
        (LABELS["registered"], str(acta.registered)),
        *((level[:1].upper() + level[1:], name) for level, name in sheet.areas),
    ]
    cell, gap = width // across, pen.mm(3)
    for start in range(0, len(fields), across):
        bottom = y
        for i, (label, value) in enumerate(fields[start : start + across]):
            left = x + i * cell
            below = pen.text(left, y, cell - gap, label, "small")
            bottom = max(bottom, pen.text(left, below, cell - gap, value, "body", bold=True))
        y = bottom + pen.mm(1.5, scaled=True)
    return pen.text(x, y, width, f"{LABELS['device']}: {acta.device}", "small")


def _header(pen: _Pen, sheet: _Sheet, x: int, y: int, width: int, across: int) -> int:
    """Heading, title and origin, then the fields, between rules; returns the y below."""
    y = pen.text(x, y, width, LABELS["heading"], "heading", bold=True)
    y = pen.text(x, y, width, sheet.title, "title", bold=True)
    y = pen.text(x, y, width, sheet.origin, "small")
    y += pen.mm(1.5, scaled=True)
    pen.rule(x, y, width, pen.thick)
    y = _fields(pen, sheet, x, y + pen.thick + pen.mm(2, scaled=True), width, across)
    return y + pen.mm(2, scaled=True)


def _tickets(pen: _Pen, sheet: _Sheet, x: int, y: int, width: int, blocks: int) -> int:
    """The ticket table, split into side-by-side blocks when asked."""
    acta, tickets = sheet.acta, sheet.contest.tickets
    head = (LABELS["position"], LABELS["ticket"], LABELS["votes"])
    rows = [(str(i + 1), t.name, str(count)) for i, (t, count) in enumerate(zip(tickets, acta.tickets, strict=True))]
    gutter = pen.mm(4)
    block = (width - gutter * (blocks - 1)) // blocks
    narrow = _column_width(pen, [head[0], str(len(rows))])
    number = _column_width(pen, [head[2], *(row[2] for row in rows)])
    columns = ((narrow, "right"), (block - narrow - number, "left"), (number, "right"))
    per_block = -(-len(rows) // blocks)
    bottom = y
    for b in range(blocks):
        part = rows[b * per_block : (b + 1) * per_block]
        if part:
            bottom = max(bottom, _table(pen, x + b * (block + gutter), y, columns, [head, *part]))
    return bottom


def _totals(pen: _Pen, sheet: _Sheet, x: int, y: int, width: int) -> int:
    """Option totals, then valid, null, blank and cast, all as signed."""
    acta = sheet.acta
    rows = [(LABELS["option"], LABELS["total"])]
    rows += [(o.name, str(n)) for o, n in zip(sheet.contest.options, acta.options, strict=True)]
    rows += [
        (LABELS["valid"], str(acta.valid_votes)),
        (LABELS["null"], str(acta.null)),
        (LABELS["blank"], str(acta.blank)),
        (LABELS["cast"], str(acta.cast)),
    ]
    number = _column_width(pen, [row[1] for row in rows])
    bold, heavy = frozenset({0, len(rows) - 1}), frozenset({0, len(sheet.contest.options)})
    return _table(pen, x, y, ((width - number, "left"), (number, "right")), rows, bold, heavy)


def _signatures(pen: _Pen, x: int, y: int, width: int, across: int) -> int:
    """Signature lines with the poll workers' roles under them."""
    cell, gap = width // across, pen.mm(6)
    for start in range(0, len(SIGNATURE_ROLES), across):
        y += pen.mm(14)
        bottom = y
        for i, role in enumerate(SIGNATURE_ROLES[start : start + across]):
            left = x + i * cell + (gap // 2 if across > 1 else 0)
            inner = cell - (gap if across > 1 else 0)
            pen.rule(left, y, inner, pen.thin)
            bottom = max(bottom, pen.text(left, y + pen.thin + pen.mm(1), inner, LABELS[role], "body", "center"))
        y = bottom
    return y


def _module_px(dpi: int, room: int, modules: int) -> int:
    """Pixels per QR module: as large as fits in ``room``, within 0.5 to 1 mm."""
    least = math.ceil(MIN_MODULE_MM * dpi / 25.4)
    most = max(least, int(MAX_MODULE_MM * dpi / 25.4))
    return max(least, min(most, room // modules))


def _qr(pen: _Pen, sheet: _Sheet, x: int, y: int, width: int, module: int) -> int:
    """The QR code centred in a column with the fingerprint under it; returns the y below."""
    size = int(sheet.qr.symbol_size(border=QUIET_ZONE)[0])
    if pen.image is not None:
        pixels = bytes(0 if dark else 255 for row in sheet.qr.matrix_iter(border=QUIET_ZONE) for dark in row)
        symbol = Image.frombytes("L", (size, size), pixels)
        pen.paste(
            symbol.resize((size * module, size * module), Image.Resampling.NEAREST), x + (width - size * module) // 2, y
        )
    y += size * module
    return pen.text(x, y, width, f"{LABELS['fingerprint']} {sheet.fingerprint}", "title", "center", bold=True)


def _a4(pen: _Pen, sheet: _Sheet, size: tuple[int, int], blocks: int) -> bool:
    """Lay out (or draw) the A4 sheet; whether it fits the page."""
    width, height = size
    margin = pen.mm(12)
    inner = width - 2 * margin
    y = _header(pen, sheet, margin, margin, inner, 4)
    modules = int(sheet.qr.symbol_size(border=QUIET_ZONE)[0])
    least = _module_px(pen.dpi, 0, modules)
    panel = max(round(inner * 0.38), least * modules)
    gutter = pen.mm(6)
    left_width = inner - panel - gutter
    if left_width < inner // 3:
        return False
    module = _module_px(pen.dpi, panel, modules)
    left_end = _tickets(pen, sheet, margin, y, left_width, blocks)
    panel_x = margin + left_width + gutter
    right_end = _qr(pen, sheet, panel_x, y, panel, module)
    right_end = _totals(pen, sheet, panel_x, right_end + pen.mm(3, scaled=True), panel)
    footer = height - margin - (_signatures(pen.dry(), 0, 0, inner, 4))
    _signatures(pen, margin, footer, inner, 4)
    return max(left_end, right_end) + pen.mm(2) <= footer


def _strip(pen: _Pen, sheet: _Sheet, width: int) -> int:
    """Lay out (or draw) the thermal strip; returns its height."""
    margin = pen.mm(1.5)
    inner = width - 2 * margin
    modules = int(sheet.qr.symbol_size(border=QUIET_ZONE)[0])
    module = _module_px(pen.dpi, width, modules)
    if module * modules > width:
        raise TooLargeError(f"QR code of {modules} modules does not fit a {STRIP_MM:g} mm strip at {pen.dpi} dpi")
    y = _header(pen, sheet, margin, pen.mm(3), inner, 2)
    y = _tickets(pen, sheet, margin, y, inner, 1) + pen.mm(3)
    y = _totals(pen, sheet, margin, y, inner)
    y = _signatures(pen, margin, y, inner, 2) + pen.mm(4)
    return _qr(pen, sheet, 0, y, width, module) + pen.mm(8)  # room to tear the paper off below the code


def _check_args(layout: str, dpi: int) -> None:
    if layout not in LAYOUTS:
        raise MalformedError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if type(dpi) is not int or not MIN_DPI <= dpi <= MAX_DPI:
        raise MalformedError(f"dpi: {dpi!r} is not an integer from {MIN_DPI} to {MAX_DPI}")


def render_acta(entry: bytes, election: Election, layout: Layout = "a4", dpi: int = 300) -> Image.Image:
    """Render a signed acta entry as a grayscale printable sheet (A4 page or 72 mm thermal strip)."""
    _check_args(layout, dpi)
    sheet = _sheet(entry, election)
    if layout == "strip":
        width = round(STRIP_MM * dpi / 25.4)
        height = _strip(_Pen(None, dpi, 1.0), sheet, width)
        image = Image.new("L", (width, height), 255)
        _strip(_Pen(image, dpi, 1.0), sheet, width)
        return image
    size = (round(A4_MM[0] * dpi / 25.4), round(A4_MM[1] * dpi / 25.4))
    for blocks in (1, 2, 3):
        for scale in _A4_SCALES:
            if _a4(_Pen(None, dpi, scale), sheet, size, blocks):
                image = Image.new("L", size, 255)
                _a4(_Pen(image, dpi, scale), sheet, size, blocks)
                return image
    raise TooLargeError(
        f"acta of mesa {sheet.acta.mesa!r}: {len(sheet.acta.tickets)} tickets do not fit one A4 page; print a strip"
    )


def render_png(entry: bytes, election: Election, layout: Layout = "a4", dpi: int = 300) -> bytes:
    """The rendered sheet as PNG bytes with its resolution recorded."""
    out = io.BytesIO()
    render_acta(entry, election, layout, dpi).save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def render_pdf(entries: Sequence[bytes], election: Election, layout: Layout = "a4") -> bytes:
    """A PDF with one page per signed acta entry, at 300 dpi; the same input always gives the same bytes."""
    if not entries:
        raise MalformedError("entries: a PDF needs at least one acta")
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 3 * i} 0 R" for i in range(len(entries)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(entries)} >>".encode())
    for i, entry in enumerate(entries):
        image = render_acta(entry, election, layout, PDF_DPI)
        first = 3 + 3 * i
        w, h = (f"{side * 72 / PDF_DPI:.2f}" for side in image.size)
        resources = f"/Resources << /XObject << /Im0 {first + 2} 0 R >> >>"
        page = f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] {resources} /Contents {first + 1} 0 R >>"
        objects.append(page.encode())
        objects.append(_stream("", f"q {w} 0 0 {h} 0 0 cm /Im0 Do Q".encode()))
        info = f"/Type /XObject /Subtype /Image /Width {image.width} /Height {image.height} "
        info += "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
        objects.append(_stream(info, zlib.compress(image.tobytes(), 6)))
    return _pdf_file(objects)


def _stream(info: str, data: bytes) -> bytes:
    """A stream object: its dictionary entries (each followed by a space), the length, the data."""
    return f"<< {info}/Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


def _pdf_file(objects: Sequence[bytes]) -> bytes:
    """Number the objects from 1, the first being the catalog, and add the cross-reference table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


__all__ = ["LABELS", "LAYOUTS", "SIGNATURE_ROLES", "Layout", "qr_code", "render_acta", "render_pdf", "render_png"]
