"""Witness files to pages: every type read by its magic bytes, every failure its own error, batches never stop."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pkgutil
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import actas.scan
from actas.errors import MalformedError
from actas.scan import images
from actas.scan.images import Source, SourceProblem, iter_sources, load_pages, sniff_type


def marked_image(width: int = 64, height: int = 32) -> np.ndarray:
    """White image with a black block in the top-left corner, so that any turn or flip shows."""
    pixels = np.full((height, width), 255, dtype=np.uint8)
    pixels[: height // 4, : width // 4] = 0
    return pixels


def encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    """An image file of the given Pillow format."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A small, valid 1-bit PNG declaring width × height pixels; its IDAT inflates to height rows of zeros."""
    compressor = zlib.compressobj(9)
    row_block = bytes((width + 7) // 8 + 1) * 1000
    idat = b"".join(compressor.compress(row_block) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def pdf_without_pages() -> bytes:
    """A well-formed PDF (with a correct xref table) whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def load_error(data: bytes, name: str = "witness.jpg") -> str:
    """The message of the MalformedError that loading the bytes raises."""
    with pytest.raises(MalformedError) as caught:
        load_pages(Source(name, data))
    assert caught.value.message.startswith(f"{name}: ")
    return caught.value.message


def outcomes(paths: list[str | Path]) -> list[tuple[str, str]]:
    """Each source's name with "ok", or the reason it could not be read or loaded, as a batch would see them."""
    result = []
    for item in iter_sources(paths):
        if isinstance(item, SourceProblem):
            result.append((item.name, item.reason))
            continue
        try:
            load_pages(item)
        except MalformedError as exc:
            result.append((item.name, exc.message))
        else:
            result.append((item.name, "ok"))
    return result


# --- loading each type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_pillow_formats_load_as_grayscale(fmt: str) -> None:
    """JPEG, PNG and TIFF come back as one grayscale uint8 page of the same size and content."""
    pixels = marked_image()
    (page,) = load_pages(Source("page", encode(np.stack([pixels] * 3, axis=-1), fmt)))
    assert page.dtype == np.uint8
    assert page.shape == pixels.shape
    assert np.abs(page.astype(int) - pixels).max() < 40


def test_type_comes_from_magic_bytes_not_the_name() -> None:
    """A PNG named .pdf is read as the PNG it is."""
    (page,) = load_pages(Source("scan.pdf", encode(marked_image(), "PNG")))
    assert page.shape == (32, 64)


@pytest.mark.parametrize(("orientation", "turns"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_honoured(orientation: int, turns: int) -> None:
    """A phone JPEG stored sideways or upside down comes back upright (3: 180°, 6: 90° clockwise, 8: 90° ccw)."""
    stored = marked_image(96, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(np.stack([stored] * 3, axis=-1), "JPEG", exif=exif.tobytes(), quality=95)  # colour, as phones
    (page,) = load_pages(Source("phone.jpg", data))
    expected = np.rot90(stored, k=turns)
    assert page.shape == expected.shape
    assert np.abs(page.astype(int) - expected).mean() < 8


def test_every_page_of_a_multipage_tiff() -> None:
    """A two-page TIFF gives two pages, in order."""
    first, second = np.full((20, 30), 10, dtype=np.uint8), np.full((40, 50), 240, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(first).save(buffer, format="TIFF", save_all=True, append_images=[Image.fromarray(second)])
    pages = load_pages(Source("two.tiff", buffer.getvalue()))
    assert [page.shape for page in pages] == [(20, 30), (40, 50)]
    assert pages[0].max() == 10
    assert pages[1].min() == 240


def test_animated_png_is_one_page() -> None:
    """Only TIFF pages are pages: the extra frames of an animated PNG are not read as more witness pages."""
    buffer = io.BytesIO()
    frames = [Image.fromarray(marked_image()), Image.fromarray(255 - marked_image())]
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    (page,) = load_pages(Source("animated.png", buffer.getvalue()))
    assert np.array_equal(page, marked_image())


def test_heic_loads() -> None:
    """An HEIC photo (as iPhones save them) is decoded."""
    pixels = marked_image(64, 48)
    heif = pillow_heif.from_pillow(Image.fromarray(np.stack([pixels] * 3, axis=-1)))
    buffer = io.BytesIO()
    heif.save(buffer, quality=95)
    (page,) = load_pages(Source("photo.HEIC", buffer.getvalue()))
    assert page.shape == (48, 64)
    assert np.abs(page.astype(int) - pixels).mean() < 10


def test_pdf_pages_render_at_300_dpi() -> None:
    """Each page of a PDF is rendered at 300 dpi: a 3 × 1.5 inch page becomes about 900 × 450 pixels."""
    first = Image.fromarray(marked_image(300, 150))
    second = Image.fromarray(np.full((150, 300), 0, dtype=np.uint8))
    buffer = io.BytesIO()
    first.save(buffer, format="PDF", resolution=100, save_all=True, append_images=[second])
    pages = load_pages(Source("scans.pdf", buffer.getvalue()))
    assert len(pages) == 2
    for page in pages:
        assert abs(page.shape[0] - 450) <= 1  # PDFium rounds the page box up to whole pixels
        assert abs(page.shape[1] - 900) <= 1
    assert pages[0][:100, :200].mean() < 30
    assert pages[0][300:, 400:].mean() > 225
    assert pages[1].mean() < 30


def test_transparent_pixels_become_white_paper() -> None:
    """Fully transparent black pixels are flattened onto white, not kept black."""
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[:5, :, 3] = 255  # the top half is opaque black, the bottom half transparent black
    (page,) = load_pages(Source("alpha.png", encode(rgba, "PNG")))
    assert page[:5].max() == 0
    assert page[5:].min() == 255


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    """16-bit gray values are scaled to 8 bits (mid-gray stays mid-gray instead of clipping to white)."""
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    (page,) = load_pages(Source("deep.png", encode(values, "PNG")))
    assert page.tolist() == [[0, 128, 255]]


# --- each malformed input, its own error -------------------------------------------------------------------------


def test_truncated_jpeg_is_refused() -> None:
    """A JPEG cut short is an error, not a half-grey page."""
    data = encode(np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8), "JPEG")
    assert "damaged JPEG" in load_error(data[: len(data) // 2])


def test_truncated_png_is_refused() -> None:
    """A PNG cut short is an error."""
    data = encode(np.random.default_rng(2).integers(0, 255, (200, 200), dtype=np.uint8), "PNG")
    assert "damaged PNG" in load_error(data[: len(data) // 2], "witness.png")


def test_text_named_jpg_is_not_an_image() -> None:
    """A text file with an image extension says what it is."""
    assert load_error(b"acta de escrutinio, mesa 01\n") == "witness.jpg: not an image (the file holds text)"


def test_unknown_binary_is_not_an_image() -> None:
    """Bytes of no supported type are refused, naming the types that are read."""
    assert "not an image (unknown format" in load_error(bytes(range(256)))


@pytest.mark.parametrize(("side", "pillow_behaviour"), [(9_000, "silent"), (10_000, "warns"), (20_000, "raises")])
def test_decompression_bomb_is_refused_before_decoding(side: int, pillow_behaviour: str) -> None:
    """A tiny PNG declaring side × side pixels is refused from its header alone, whatever Pillow itself does."""
    data = png_bomb(side, side)
    assert len(data) < 100_000
    started = time.perf_counter()
    message = load_error(data, "bomb.png")
    assert time.perf_counter() - started < 1.0  # nothing was inflated or allocated
    assert "too many pixels" in message or f"{side} × {side} pixels is above the 60 megapixel limit" in message


def test_too_many_pages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with more pages than the cap is refused as a whole."""
    monkeypatch.setattr(images, "MAX_PAGES", 1)
    buffer = io.BytesIO()
    frames = [Image.fromarray(marked_image()) for _ in range(2)]
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    assert "more than the 1 pages read from one file" in load_error(buffer.getvalue(), "many.tif")


def test_no_scan_module_lets_pillow_accept_truncated_files() -> None:
    """Importing the scanning package never turns on Pillow's process-wide LOAD_TRUNCATED_IMAGES."""
    for module in pkgutil.iter_modules(actas.scan.__path__, "actas.scan."):
        importlib.import_module(module.name)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_file_is_refused() -> None:
    """A 0-byte file (here a .pdf) is an error of its own."""
    assert load_error(b"", "empty.pdf") == "empty.pdf: empty file"


def test_pdf_with_zero_pages_is_refused() -> None:
    """A PDF whose page tree is empty is an error."""
    assert load_error(pdf_without_pages(), "none.pdf") == "none.pdf: PDF has no pages"


def test_corrupt_pdf_is_refused() -> None:
    """A PDF header followed by garbage is an error naming PDF."""
    assert "not a readable PDF" in load_error(b"%PDF-1.7\n" + bytes(range(256)) * 4, "broken.pdf")


@settings(max_examples=150)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_load_or_raise_malformed(data: bytes) -> None:
    """Arbitrary bytes either load or raise MalformedError, never anything else."""
    with contextlib.suppress(MalformedError):
        load_pages(Source("fuzz", data))


_SEEDS = {
    fmt: encode(np.random.default_rng(3).integers(0, 255, (24, 24), dtype=np.uint8), fmt)
    for fmt in ("JPEG", "PNG", "TIFF")
}


@settings(max_examples=200)
@given(
    st.sampled_from(sorted(_SEEDS)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 10_000),
)
def test_damaged_images_load_or_raise_malformed(fmt: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Valid images with bytes overwritten and their end cut load or raise MalformedError, nothing else."""
    data = bytearray(_SEEDS[fmt])
    for position, value in edits:
        data[position % len(data)] = value
    with contextlib.suppress(MalformedError):
        load_pages(Source("fuzz", bytes(data[: max(cut, 8)])))


def test_sniff_type() -> None:
    """The magic bytes of each supported type are recognised."""
    assert sniff_type(encode(marked_image(), "JPEG")) == "JPEG"
    assert sniff_type(encode(marked_image(), "PNG")) == "PNG"
    assert sniff_type(encode(marked_image(), "TIFF")) == "TIFF"
    assert sniff_type(b"%PDF-1.7\n") == "PDF"
    assert sniff_type(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert sniff_type(b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00") is None


# --- sources: files, folders, zips ---------------------------------------------------------------------------


def test_folder_batch_reports_each_failure_and_keeps_going(tmp_path: Path) -> None:
    """Every bad file of a folder gets its own reason, and every good file around them still loads, in order."""
    good = encode(marked_image(), "PNG")
    jpeg = encode(np.random.default_rng(4).integers(0, 255, (100, 100), dtype=np.uint8), "JPEG")
    (tmp_path / "b").mkdir()
    (tmp_path / "a-good.png").write_bytes(good)
    (tmp_path / "b" / "c-truncated.JPG").write_bytes(jpeg[:300])
    (tmp_path / "b" / "d-text.jpg").write_text("not a photo\n")
    (tmp_path / "e-bomb.png").write_bytes(png_bomb(20_000, 20_000))
    (tmp_path / "f-empty.pdf").write_bytes(b"")
    (tmp_path / "g-good.jpeg").write_bytes(jpeg)
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    (tmp_path / ".hidden.png").write_bytes(good)
    result = outcomes([tmp_path])
    names = [Path(name).name for name, _ in result]
    assert names == ["a-good.png", "c-truncated.JPG", "d-text.jpg", "e-bomb.png", "f-empty.pdf", "g-good.jpeg"]
    reasons = [reason for _, reason in result]
    assert reasons[0] == "ok"
    assert "damaged JPEG" in reasons[1]
    assert reasons[2].endswith("not an image (the file holds text)")
    assert "too many pixels" in reasons[3]
    assert reasons[4].endswith("empty file")
    assert reasons[5] == "ok"


def test_folder_skips_symlinks_leading_outside_and_survives_loops(tmp_path: Path) -> None:
    """A symlink out of the folder is ignored, one inside it is followed, and a symlink loop ends."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(encode(marked_image(), "PNG"))
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner.png").write_bytes(encode(marked_image(), "PNG"))
    os.symlink(outside, root / "out.png")
    os.symlink(root / "sub" / "inner.png", root / "link.png")
    os.symlink(root, root / "sub" / "loop")
    names = [Path(name).name for name, _ in outcomes([root])]
    assert names == ["link.png", "inner.png"]


def test_explicit_files_in_given_order_and_missing_path(tmp_path: Path) -> None:
    """Paths are yielded in the order given; a missing one is a problem naming the reason."""
    second = tmp_path / "2.png"
    second.write_bytes(encode(marked_image(), "PNG"))
    first = tmp_path / "1.dat"  # an explicit file is read whatever its extension
    first.write_bytes(encode(marked_image(), "PNG"))
    missing = tmp_path / "missing.jpg"
    assert outcomes([second, str(missing), first]) == [
        (str(second), "ok"),
        (str(missing), "unreadable: no such file or directory"),
        (str(first), "ok"),
    ]


def test_unreadable_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be opened is reported with the operating system's reason."""
    path = tmp_path / "locked.jpg"
    path.write_bytes(b"x")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert list(iter_sources([path])) == [SourceProblem(str(path), "unreadable: permission denied")]


def test_oversized_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file above the size cap is refused without being read whole."""
    monkeypatch.setattr(images, "MAX_SOURCE_BYTES", 100)
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(101))
    (problem,) = iter_sources([path])
    assert isinstance(problem, SourceProblem)
    assert "larger than the 100 bytes" in problem.reason


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    """A zip archive holding the members as given (names are written verbatim, even unsafe ones)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_zip_member_escaping_the_archive_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    """``../x.jpg`` and ``/abs.jpg`` are reported, never read as paths; the good members still load."""
    good = encode(marked_image(), "JPEG")
    archive = tmp_path / "witness.zip"
    make_zip(
        archive,
        {
            "../x.jpg": good,
            "/abs.jpg": good,
            "mesa/01.jpg": good,
            "mesa/../../up.png": good,
            "readme.txt": b"skipped",
            "__MACOSX/mesa/._01.jpg": b"resource fork",
            "mesa/02.PNG": encode(marked_image(), "PNG"),
        },
    )
    result = outcomes([archive])
    assert result == [
        (f"{archive}!../x.jpg", "zip member '../x.jpg' escapes the archive"),
        (f"{archive}!/abs.jpg", "zip member '/abs.jpg' escapes the archive"),
        (f"{archive}!mesa/../../up.png", "zip member 'mesa/../../up.png' escapes the archive"),
        (f"{archive}!mesa/01.jpg", "ok"),
        (f"{archive}!mesa/02.PNG", "ok"),
    ]
    assert not (tmp_path.parent / "x.jpg").exists()


def test_corrupt_zip_is_one_problem_and_the_batch_goes_on(tmp_path: Path) -> None:
    """A damaged archive is a single problem; files after it are still read."""
    broken = tmp_path / "a.zip"
    broken.write_bytes(b"PK\x03\x04" + bytes(range(200)))
    after = tmp_path / "b.png"
    after.write_bytes(encode(marked_image(), "PNG"))
    result = outcomes([tmp_path])
    assert len(result) == 2
    assert result[0][0] == str(broken)
    assert result[0][1].startswith("not a readable zip archive")
    assert result[1] == (str(after), "ok")


def test_zip_member_size_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member declaring more than the cap is refused unread; one lying about its size fails its check."""
    monkeypatch.setattr(images, "MAX_SOURCE_BYTES", 1_000)
    archive = tmp_path / "bomb.zip"
    make_zip(archive, {"big.png": bytes(5_000), "liar.png": bytes(5_000), "small.png": encode(marked_image(), "PNG")})
    data = bytearray(archive.read_bytes())
    # Make "liar.png" declare 500 bytes in both its local header and the central directory.
    local = data.find(b"PK\x03\x04", data.find(b"liar.png") - 40)
    data[local + 22 : local + 26] = struct.pack("<I", 500)
    central = data.rfind(b"liar.png") - 46
    data[central + 24 : central + 28] = struct.pack("<I", 500)
    archive.write_bytes(bytes(data))
    result = outcomes([archive])
    assert result[0] == (f"{archive}!big.png", "zip member declares 5000 bytes, above the 1000 cap")
    assert result[1][0] == f"{archive}!liar.png"
    assert result[1][1].startswith("zip member cannot be extracted")
    assert result[2] == (f"{archive}!small.png", "ok")


def test_zip_inside_a_folder_is_expanded(tmp_path: Path) -> None:
    """A folder of zips (as collected from many witnesses) yields each archive's members."""
    make_zip(tmp_path / "batch.zip", {"p.png": encode(marked_image(), "PNG")})
    assert outcomes([tmp_path]) == [(f"{tmp_path / 'batch.zip'}!p.png", "ok")]


def test_source_and_problem_are_valid_by_construction() -> None:
    """A source needs a name; a problem needs a name and a reason."""
    with pytest.raises(MalformedError, match="name"):
        Source("", b"")
    with pytest.raises(MalformedError, match="reason"):
        SourceProblem("x", "")


def test_wide_pages_scale_the_same_across_row_blocks() -> None:
    from actas.scan.images import _ROWS, _wide_to_gray

    rows = 2 * _ROWS + 7  # crosses two block boundaries
    ramp = np.arange(rows * 5, dtype=np.uint32).reshape(rows, 5)
    sixteen = (ramp * 37 % 65536).astype(np.uint16)
    want = np.round(sixteen.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    assert np.array_equal(_wide_to_gray(sixteen), want)
    floats = (ramp.astype(np.float32) - 100.0) / 7.0
    low, high = float(floats.min()), float(floats.max())
    want = np.round((floats.astype(np.float64) - low) * (255.0 / (high - low))).astype(np.uint8)
    assert np.abs(_wide_to_gray(floats).astype(int) - want.astype(int)).max() <= 1  # float32 blocks: ±1 at most
