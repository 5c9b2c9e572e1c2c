"""The printable acta: its QR code carries the exact signed entry, its numbers come from that entry only."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2  # type: ignore[import-untyped]
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from actas.core.acta import Acta, option_totals
from actas.core.election import Election
from actas.core.entries import acta_entry
from actas.core.qr import decode_payload, encode_payload
from actas.errors import ActasError, MalformedError, SignatureError, TooLargeError
from actas.scan.render import Layout, qr_code, render_acta, render_pdf, render_png
from actas.simulate.geography import generate_election
from actas.simulate.run import signed_actas
from tests.factories import device, election_and_enrollments, election_value, signed_acta, small_election

A4_300 = (2480, 3508)


@pytest.fixture(scope="module")
def small() -> Election:
    """The 4-ticket test election."""
    return small_election()


@pytest.fixture(scope="module")
def simulated() -> tuple[Election, bytes]:
    """A Venezuela-like election (38 tickets for 10 options) and the first simulated acta."""
    election = generate_election(50, seed=1)
    actas: Iterator[bytes] = signed_actas(election, seed=1)
    return election, next(actas)


def _case(name: str, small: Election, simulated: tuple[Election, bytes]) -> tuple[Election, bytes]:
    return (small, signed_acta(small, 0)) if name == "4-ticket" else simulated


def _read_qr(image: Image.Image) -> list[zxingcpp.Barcode]:
    return [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]


def _custom_election(tickets: int, options: int, name: str = "Partido") -> Election:
    value: dict[str, Any] = election_value()
    value["contests"][0]["options"] = [{"id": f"o{i}", "name": f"Opción {i}"} for i in range(options)]
    value["contests"][0]["tickets"] = [
        {"id": f"t{i}", "name": f"{name} {i}"[-200:], "option": f"o{i % options}"} for i in range(tickets)
    ]
    return Election.from_value(value)


def _acta_for(election: Election, tickets: tuple[int, ...], mesa: int = 0) -> bytes:
    contest = election.contests[0]
    key = device(mesa)
    acta = Acta(
        election=election.origin,
        mesa=election.mesa_id(mesa),
        contest=contest.id,
        registered=election.mesa_registered(mesa),
        tickets=tickets,
        options=option_totals(tickets, contest),
        null=2,
        blank=1,
        device=str(key.verifier),
    )
    return acta_entry(acta, key)


@pytest.mark.parametrize(("layout", "dpi"), [("a4", 300), ("strip", 203), ("strip", 300)])
@pytest.mark.parametrize("name", ["4-ticket", "38-ticket"])
def test_qr_in_the_png_decodes_to_the_exact_entry(
    name: str, layout: Layout, dpi: int, small: Election, simulated: tuple[Election, bytes]
) -> None:
    """A reader finds one QR code in the PNG; its text is the payload and decodes to the signed entry bytes."""
    election, entry = _case(name, small, simulated)
    image = Image.open(io.BytesIO(render_png(entry, election, layout, dpi)))
    codes = _read_qr(image)
    assert [code.text for code in codes] == [encode_payload(entry)]
    assert decode_payload(codes[0].text) == entry


@pytest.mark.parametrize("name", ["4-ticket", "38-ticket"])
def test_qr_is_level_m_or_higher_alphanumeric_with_big_modules(
    name: str, small: Election, simulated: tuple[Election, bytes]
) -> None:
    """The code is a full QR code, level M+, alphanumeric; on A4 at 300 dpi a module is at least 6 px."""
    election, entry = _case(name, small, simulated)
    code = qr_code(entry)
    assert code.error in ("M", "Q", "H")
    assert code.mode == "alphanumeric"
    assert not code.is_micro
    modules = int(code.symbol_size(border=0)[0])
    (found,) = _read_qr(render_acta(entry, election, "a4"))
    corners = found.position
    assert (corners.top_right.x - corners.top_left.x + 1) / modules >= 6
    assert (corners.bottom_left.y - corners.top_left.y + 1) / modules >= 6
    assert found.ec_level in ("M", "Q", "H")


def test_quiet_zone_of_four_modules_is_white(simulated: tuple[Election, bytes]) -> None:
    """Nothing is drawn within 4 modules of the symbol, on either layout."""
    election, entry = simulated
    modules = int(qr_code(entry).symbol_size(border=0)[0])
    for layout in ("a4", "strip"):
        image = render_acta(entry, election, layout)
        (found,) = _read_qr(image)
        left, top, right = found.position.top_left.x, found.position.top_left.y, found.position.top_right.x
        module = (right - left + 1) // modules
        zone = 4 * module
        box = (left - zone, top - zone, right + 1 + zone, found.position.bottom_left.y + 1 + zone)
        ring = image.crop(box)
        ring.paste(255, (zone, zone, ring.width - zone, ring.height - zone))
        assert ring.getextrema() == (255, 255), layout


def test_sizes_and_recorded_dpi(small: Election) -> None:
    """A4 is 210 x 297 mm at the dpi; the strip 72 mm wide; the PNG records its dpi."""
    entry = signed_acta(small, 0)
    a4 = Image.open(io.BytesIO(render_png(entry, small)))
    assert a4.size == A4_300
    assert a4.mode in ("L", "1")
    assert a4.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    strip = Image.open(io.BytesIO(render_png(entry, small, "strip", 203)))
    assert strip.width == 575
    assert strip.height > strip.width
    assert strip.info["dpi"] == pytest.approx((203, 203), abs=0.01)
    assert render_acta(entry, small, "a4", 150).size == (1240, 1754)


def test_png_is_byte_identical_for_the_same_input(simulated: tuple[Election, bytes]) -> None:
    """Rendering twice gives the same bytes, on both layouts."""
    election, entry = simulated
    for layout in ("a4", "strip"):
        assert render_png(entry, election, layout) == render_png(entry, election, layout)


def test_pdf_is_deterministic_with_one_page_per_acta(small: Election) -> None:
    """The PDF starts with %PDF-, has one page per entry, and is byte-identical when rendered again."""
    entries = [signed_acta(small, i) for i in range(3)]
    pdf = render_pdf(entries, small)
    assert pdf == render_pdf(entries, small)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 3
    document = pypdfium2.PdfDocument(pdf)
    try:
        assert len(document) == 3
        width, height = document[0].get_size()
        assert (width, height) == pytest.approx((595.2, 841.92), abs=0.01)  # A4 in points
        page = document[1].render(scale=300 / 72).to_pil()
        (found,) = _read_qr(page)
        assert decode_payload(found.text) == entries[1]
    finally:
        document.close()


def test_pdf_strip_pages_are_72_mm_wide(small: Election) -> None:
    """A strip PDF page is 72 mm wide."""
    document = pypdfium2.PdfDocument(render_pdf([signed_acta(small, 1)], small, "strip"))
    try:
        assert document[0].get_size()[0] == pytest.approx(72 / 25.4 * 72, abs=0.2)
    finally:
        document.close()


def test_pdf_needs_entries_and_refuses_a_bad_one(small: Election) -> None:
    """An empty list and a list holding a non-acta are refused."""
    with pytest.raises(MalformedError, match="at least one"):
        render_pdf([], small)
    with pytest.raises(MalformedError, match="only an acta"):
        render_pdf([signed_acta(small, 0), election_and_enrollments(small)[1]], small)


@pytest.mark.parametrize("layout", ["a4", "strip"])
def test_printed_numbers_come_from_the_entry(layout: Layout, small: Election) -> None:
    """Two actas differing in one ticket count print differently, also away from the QR code."""
    one = render_acta(signed_acta(small, 0, tickets=(100, 20, 90, 30)), small, layout)
    other = render_acta(signed_acta(small, 0, tickets=(100, 21, 90, 30)), small, layout)
    assert one.tobytes() != other.tobytes()
    (found,) = _read_qr(one)
    # Left of the QR code on A4, above it on the strip: the tables, not the code or its fingerprint.
    corner = found.position.top_left
    box = (0, 0, corner.x - 1, one.height) if layout == "a4" else (0, 0, one.width, corner.y - 1)
    assert one.crop(box).tobytes() != other.crop(box).tobytes()


def test_registered_is_printed_as_stated_on_the_acta(small: Election) -> None:
    """The registered voters printed are the acta's, even where they differ from the definition's."""
    stated = render_acta(signed_acta(small, 0, registered=499), small)
    defined = render_acta(signed_acta(small, 0), small)
    (found,) = _read_qr(stated)
    box = (0, 0, stated.width, found.position.top_left.y - 1)  # the header, above the code
    assert stated.crop(box).tobytes() != defined.crop(box).tobytes()


def test_refuses_an_entry_that_is_not_an_acta(small: Election) -> None:
    """An enroll entry (and the election entry) cannot be printed."""
    election_entry, enroll = election_and_enrollments(small)[:2]
    with pytest.raises(MalformedError, match="only an acta can be printed, not an 'enroll' entry"):
        render_acta(enroll, small)
    with pytest.raises(MalformedError, match="'election' entry"):
        render_png(election_entry, small)


def test_refuses_an_acta_for_a_mesa_the_definition_lacks(small: Election) -> None:
    """An acta naming an unknown mesa is refused, as are unknown contests, other elections and shapes."""
    contest = small.contests[0]
    key = device(0)

    def entry(**changes: Any) -> bytes:
        fields: dict[str, Any] = {
            "election": small.origin,
            "mesa": small.mesa_id(0),
            "contest": contest.id,
            "registered": 500,
            "tickets": (1, 2, 3, 4),
            "options": (3, 3, 4),
            "null": 0,
            "blank": 0,
            "device": str(key.verifier),
        }
        return acta_entry(Acta(**{**fields, **changes}), key)

    with pytest.raises(MalformedError, match="mesa '999' is not in the definition"):
        render_acta(entry(mesa="999"), small)
    with pytest.raises(MalformedError, match="contest 'senado' is not in the definition"):
        render_acta(entry(contest="senado"), small, "strip")
    with pytest.raises(MalformedError, match="not the definition's origin"):
        render_acta(entry(election="results.example.org/other"), small)
    with pytest.raises(MalformedError, match="has 4 tickets and 3 options; the acta has 3 and 3"):
        render_acta(entry(tickets=(1, 2, 3)), small)


def test_refuses_an_acta_whose_signature_does_not_verify(small: Election) -> None:
    """A signature by another key than the one the acta names is refused: the QR code would not verify."""
    good = signed_acta(small, 0)
    forged = signed_acta(small, 1)
    sig_at = forged.rindex(b'"sig":"')
    other_sig = forged[sig_at : forged.index(b'"', sig_at + 7) + 1]
    start = good.rindex(b'"sig":"')
    tampered = good[:start] + other_sig + good[good.index(b'"', start + 7) + 1 :]
    with pytest.raises(SignatureError, match="does not verify"):
        render_acta(tampered, small)


@pytest.mark.parametrize(
    ("layout", "dpi", "field"), [("letter", 300, "layout"), ("a4", 50, "dpi"), ("a4", 601, "dpi"), ("a4", 300.0, "dpi")]
)
def test_refuses_unknown_layouts_and_resolutions(layout: Any, dpi: Any, field: str, small: Election) -> None:
    """Only the two layouts, and whole dpi from 100 to 600."""
    with pytest.raises(MalformedError, match=f"^{field}: "):
        render_acta(signed_acta(small, 0), small, layout, dpi)


def test_a_long_contest_fits_a4_in_columns_and_a_longer_one_only_the_strip() -> None:
    """120 tickets are set in two columns on A4; 250 do not fit A4 (TooLargeError) but print on the strip."""
    many = _custom_election(120, 12)
    entry = _acta_for(many, tuple(i % 50 for i in range(120)))
    (found,) = _read_qr(render_acta(entry, many))
    assert decode_payload(found.text) == entry
    too_many = _custom_election(250, 10)
    entry = _acta_for(too_many, tuple(i % 50 for i in range(250)))
    with pytest.raises(TooLargeError, match="250 tickets do not fit one A4 page"):
        render_acta(entry, too_many)
    (found,) = _read_qr(render_acta(entry, too_many, "strip"))
    assert decode_payload(found.text) == entry


def test_a_payload_beyond_qr_capacity_is_too_large() -> None:
    """An entry whose payload exceeds what a QR code holds at level M is refused, not truncated."""
    huge = _custom_election(2000, 2)
    entry = _acta_for(huge, tuple((i * 7919) % 100003 for i in range(2000)))
    with pytest.raises(TooLargeError, match="do not fit a QR code"):
        qr_code(entry)
    with pytest.raises(TooLargeError):
        render_acta(entry, huge, "strip")


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_render_or_raise_the_project_error(data: bytes) -> None:
    """Random bytes never escape as anything but an ActasError."""
    with contextlib.suppress(ActasError):
        render_acta(data, _SMALL)


@settings(max_examples=200)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_damaged_entries_render_or_raise_the_project_error(position: int, value: int) -> None:
    """A signed entry with one byte changed is refused with an ActasError (or, if the byte was unchanged, printed)."""
    data = bytearray(_SMALL_ENTRY)
    data[position % len(data)] = value
    try:
        render_acta(bytes(data), _SMALL, "strip", 100)
    except ActasError:
        pass
    else:
        assert bytes(data) == _SMALL_ENTRY


_NAMES = st.text(
    st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=200
).filter(str.isprintable)  # what a definition accepts as a name


@settings(max_examples=8)
@given(
    title=_NAMES,
    names=st.lists(_NAMES, min_size=8, max_size=8),
    # ±2**52: option totals add two tickets and must stay within the ±(2**53-1) an acta may hold.
    counts=st.lists(st.integers(min_value=-(2**52), max_value=2**52), min_size=6, max_size=6),
)
def test_any_names_and_counts_print_within_the_margins(title: str, names: list[str], counts: list[int]) -> None:
    """Long, foreign or odd names and extreme counts print without error, nothing drawn in the page margins."""
    value: dict[str, Any] = election_value()
    value["title"] = title
    value["areas"][0]["name"] = names[0]
    value["areas"][0]["children"][0]["children"][0]["children"][0]["name"] = names[1]
    contest = value["contests"][0]
    contest["name"] = names[2]
    for item, name in zip(contest["options"] + contest["tickets"], names[3:], strict=False):
        item["name"] = name
    election = Election.from_value(value)
    key = device(0)
    tickets = tuple(counts[:4])
    acta = Acta(
        election.origin,
        election.mesa_id(0),
        "presidente",
        counts[4],
        tickets,
        option_totals(tickets, election.contests[0]),
        counts[5],
        0,
        str(key.verifier),
    )
    entry = acta_entry(acta, key)
    page = render_acta(entry, election, "a4", 100)
    edge = 4  # pixels at 100 dpi, about 1 mm; the page margin is 12 mm
    for box in ((0, 0, page.width, edge), (0, page.height - edge, page.width, page.height)):
        assert page.crop(box).getextrema() == (255, 255)
    for box in ((0, 0, edge, page.height), (page.width - edge, 0, page.width, page.height)):
        assert page.crop(box).getextrema() == (255, 255)
    strip = render_acta(entry, election, "strip", 203)
    for box in ((0, 0, 2, strip.height), (strip.width - 2, 0, strip.width, strip.height)):
        assert strip.crop(box).getextrema() == (255, 255)
    (found,) = _read_qr(strip)
    assert decode_payload(found.text) == entry


def test_writes_png_files_of_both_layouts(tmp_path: Path, simulated: tuple[Election, bytes]) -> None:
    """PNG files of both layouts are written and read back as the images rendered."""
    election, entry = simulated
    cases: tuple[tuple[Layout, int], ...] = (("a4", 300), ("strip", 203))
    for layout, dpi in cases:
        path = tmp_path / f"acta-{layout}.png"
        path.write_bytes(render_png(entry, election, layout, dpi))
        with Image.open(path) as image:
            assert image.tobytes() == render_acta(entry, election, layout, dpi).tobytes()


_SMALL = small_election()
_SMALL_ENTRY = signed_acta(_SMALL, 0)


def test_latin_letters_print_with_their_accents_and_other_scripts_degrade() -> None:
    from actas.scan.render import _printable

    assert (
        _printable("República Bolivariana, Eleição, Łódź, São Tomé") == "República Bolivariana, Eleição, Łódź, São Tomé"
    )
    assert _printable("東京 Ǆ") == "?? DZ"  # outside the shipped Latin subset: base letters, else "?"
