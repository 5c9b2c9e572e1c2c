"""Witness images in, grayscale pages out: every failure is reported per file and never stops a batch.

Sources (``iter_sources``), in a deterministic order:

* a path given explicitly is read as one source whatever its extension, except ``*.zip``, which is expanded;
* a folder is walked recursively in sorted order; it yields regular files whose extension is one of
  ``.jpg .jpeg .png .tif .tiff .pdf .heic .heif`` (any case) and expands the ``.zip`` archives it holds. Hidden
  names (starting with ``.``), symlinks that resolve outside the folder, and anything that is not a regular file
  are skipped; a folder reached twice through symlinks is walked once;
* a zip archive yields its members with those extensions, named ``archive.zip!inner/path.jpg``, sorted by name.
  Members are only ever read into memory. A member whose normalised path is absolute or climbs out with ``..``,
  an encrypted member, one declaring or inflating to more than ``MAX_SOURCE_BYTES`` (zip bombs) and one that fails
  its CRC each become a ``SourceProblem``; so does a corrupt archive as a whole.

Files read from disk are capped at ``MAX_SOURCE_BYTES`` as well. Unreadable paths (missing, permission denied)
become a ``SourceProblem`` naming the reason.

Pages (``load_pages``): the type is detected from the magic bytes, never from the name. JPEG, PNG and TIFF are
decoded with Pillow, the EXIF orientation applied: every page of a multi-page TIFF, of other files the main image
only (not a phone's MPO preview nor an APNG frame). HEIC/HEIF (its primary image) is decoded by ``pillow_heif``,
registered as a Pillow opener on first use. PDF pages are rendered by PDFium at 300 dpi. Transparent pixels are
flattened onto white; 16-bit and float pages are scaled to 8 bits. Before any pixel is decoded the declared
dimensions are checked: a page above ``MAX_PIXELS``, more than ``MAX_PAGES`` pages, or more than
``MAX_TOTAL_PIXELS`` in all is refused (Pillow's own bomb warning is silenced for this, its bomb error reported).
Truncated and corrupt files are refused. Every failure raises ``MalformedError`` naming the source and the reason.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pillow_heif
import pypdfium2  # type: ignore[import-untyped]
from PIL import Image, ImageOps

from actas.errors import MalformedError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf", ".heic", ".heif"})
MAX_SOURCE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 60_000_000
MAX_PAGES = 50
MAX_TOTAL_PIXELS = 500_000_000
PDF_DPI = 300

_PDF_POINTS_PER_INCH = 72
_PDFIUM_NO_ERROR, _PDFIUM_PASSWORD = 0, 4  # FPDF_ERR_SUCCESS, FPDF_ERR_PASSWORD
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
_PILLOW_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "HEIF": "HEIF"}


@dataclass(frozen=True, slots=True)
class Source:
    """The bytes of one witness file: a path as given, or ``archive.zip!inner/path`` for a zip member."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        if not self.name:
            raise MalformedError("source.name: empty")


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """A file or archive member that could not be read, and why."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        if not self.name or not self.reason:
            raise MalformedError("source problem: a name and a reason are both needed")


def iter_sources(paths: Sequence[str | Path]) -> Iterator[Source | SourceProblem]:
    """Every witness file under the given files, folders and zip archives, in a deterministic order."""
    for given in paths:
        path = Path(given)
        name = str(given)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            yield SourceProblem(name, f"unreadable: {_os_reason(exc)}")
            continue
        if stat.S_ISDIR(mode):
            yield from _walk_folder(path.resolve(), path, set())
        elif not stat.S_ISREG(mode):
            yield SourceProblem(name, "not a regular file")
        elif path.suffix.lower() == ".zip":
            yield from _zip_sources(path, name)
        else:
            yield _file_source(path, name)


def _walk_folder(root: Path, folder: Path, seen: set[Path]) -> Iterator[Source | SourceProblem]:
    real = folder.resolve()
    if real in seen:
        return  # a symlink loop or a second link to the same folder
    seen.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        yield SourceProblem(str(folder), f"unreadable: {_os_reason(exc)}")
        return
    for entry in entries:
        path = folder / entry.name
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_symlink() and not path.resolve().is_relative_to(root):
                continue
            mode = path.stat().st_mode
        except OSError:
            continue  # a broken symlink or a file that vanished: nothing to read
        if stat.S_ISDIR(mode):
            yield from _walk_folder(root, path, seen)
        elif not stat.S_ISREG(mode):
            continue
        elif path.suffix.lower() == ".zip":
            yield from _zip_sources(path, str(path))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            yield _file_source(path, str(path))


def _file_source(path: Path, name: str) -> Source | SourceProblem:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        return SourceProblem(name, f"unreadable: {_os_reason(exc)}")
    if len(data) > MAX_SOURCE_BYTES:
        return SourceProblem(name, f"larger than the {MAX_SOURCE_BYTES} bytes a witness file may have")
    return Source(name, data)


def _zip_sources(path: Path, name: str) -> Iterator[Source | SourceProblem]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(archive.infolist(), key=lambda info: info.filename)
            for info in members:
                problem_or_source = _zip_member(archive, info, name)
                if problem_or_source is not None:
                    yield problem_or_source
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        yield SourceProblem(name, f"not a readable zip archive: {exc}")
    except OSError as exc:
        yield SourceProblem(name, f"unreadable: {_os_reason(exc)}")


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, archive_name: str) -> Source | SourceProblem | None:
    raw = info.filename
    member = f"{archive_name}!{raw}"
    normalised = posixpath.normpath(raw.replace("\\", "/"))
    parts = normalised.split("/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":") or ".." in parts:
        return SourceProblem(member, f"zip member {raw!r} escapes the archive")
    if info.is_dir() or any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return None
    if posixpath.splitext(normalised)[1].lower() not in IMAGE_EXTENSIONS:
        return None
    if info.flag_bits & 0x1:
        return SourceProblem(member, "zip member is encrypted")
    if info.file_size > MAX_SOURCE_BYTES:
        return SourceProblem(member, f"zip member declares {info.file_size} bytes, above the {MAX_SOURCE_BYTES} cap")
    try:
        with archive.open(info) as handle:
            # The declared size can lie: the read itself is capped too.
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        return SourceProblem(member, f"zip member cannot be extracted: {exc}")
    except OSError as exc:
        return SourceProblem(member, f"zip member cannot be extracted: {_os_reason(exc)}")
    if len(data) > MAX_SOURCE_BYTES:
        return SourceProblem(member, f"zip member inflates beyond the {MAX_SOURCE_BYTES} cap")
    return Source(member, data)


def _os_reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def sniff_type(data: bytes) -> str | None:
    """The file type the magic bytes announce: "JPEG", "PNG", "TIFF", "PDF", "HEIF", or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if b"%PDF-" in data[:1024]:  # PDF readers accept a little junk before the header
        return "PDF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def load_pages(source: Source) -> list[np.ndarray]:
    """The pages of a witness file as grayscale uint8 arrays; MalformedError names the source and the reason."""
    data = source.data
    if not data:
        raise MalformedError(f"{source.name}: empty file")
    kind = sniff_type(data)
    if kind is None:
        raise MalformedError(f"{source.name}: not an image ({_describe_unknown(data)})")
    try:
        if kind == "PDF":
            return _pdf_pages(data)
        return _pillow_pages(data, kind)
    except MalformedError as exc:
        raise MalformedError(f"{source.name}: {exc.message}") from None
    except Exception as exc:  # decoders of untrusted files raise many exception types; none may escape
        raise MalformedError(f"{source.name}: damaged {kind} file ({type(exc).__name__}: {exc})") from None


def _describe_unknown(data: bytes) -> str:
    head = data[:512]
    if all(byte in b"\t\n\r" or 0x20 <= byte < 0x7F or byte >= 0x80 for byte in head):
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not merely a character cut at the 512-byte boundary
                return "unknown format"
        return "the file holds text"
    return "unknown format; JPEG, PNG, TIFF, HEIC and PDF are read"


def _pillow_pages(data: bytes, kind: str) -> list[np.ndarray]:
    if kind == "HEIF":
        _register_heif()
    with warnings.catch_warnings():
        # Pillow's own bomb check warns (an error under -W error) before ours could refuse with a clear reason.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]])
        except Image.DecompressionBombError as exc:
            raise MalformedError(f"image declares too many pixels ({exc})") from None
        with image:
            pages: list[np.ndarray] = []
            total = 0
            while True:
                total += _check_pixels(image.size, len(pages), total)
                pages.append(_to_gray(image))
                if kind != "TIFF":
                    return pages  # a phone's MPO preview, an APNG frame or a HEIF burst shot is not another page
                # Frames are counted by stepping through them: n_frames would walk every frame of a hostile file.
                try:
                    image.seek(len(pages))
                except EOFError:
                    return pages
                if len(pages) == MAX_PAGES:
                    raise MalformedError(f"more than the {MAX_PAGES} pages read from one file")


def _check_pixels(size: tuple[int, int], index: int, total: int) -> int:
    width, height = size
    pixels = width * height
    if width <= 0 or height <= 0:
        raise MalformedError(f"page {index + 1}: empty image ({width} × {height})")
    if pixels > MAX_PIXELS:
        raise MalformedError(
            f"page {index + 1}: {width} × {height} pixels is above the {MAX_PIXELS // 1_000_000} megapixel limit"
        )
    if total + pixels > MAX_TOTAL_PIXELS:
        raise MalformedError(f"page {index + 1}: the pages hold more than {MAX_TOTAL_PIXELS} pixels in all")
    return pixels


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.format == "JPEG":
        image.draft("L", image.size)  # let libjpeg produce gray directly: no colour conversion to undo
    upright = ImageOps.exif_transpose(image)
    mode = upright.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _wide_to_gray(np.asarray(upright))
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in upright.info:
        # Transparent pixels often carry black colour values; a QR code sits on white paper.
        rgba = upright.convert("RGBA")
        upright = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.array(upright.convert("L"), dtype=np.uint8)


def _wide_to_gray(values: np.ndarray) -> np.ndarray:
    """16-bit and float pages scaled to 0..255 (Pillow's own conversion clips them instead).

    Worked through in blocks of rows in float32: a whole-page float64 copy of a 60-megapixel page is 480 MB, and
    a small compressed file can declare such a page.
    """
    rows = values.shape[0]
    if values.dtype.kind == "f":
        for start in range(0, rows, _ROWS):
            if not np.isfinite(values[start : start + _ROWS]).all():
                raise MalformedError("image holds values that are not numbers")
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        low, high = 0.0, 65535.0
    else:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.full(values.shape, 255 if high > 0 else 0, dtype=np.uint8)
    scale = 255.0 / (high - low)
    out = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, rows, _ROWS):
        wide = np.float64 if values.dtype.itemsize > 4 else np.float32
        block: npt.NDArray[np.floating[Any]] = values[start : start + _ROWS].astype(wide)
        out[start : start + _ROWS] = np.round((block - low) * scale)
    return out


_ROWS = 512  # rows per block when scaling wide pages


@cache
def _register_heif() -> None:
    """Teach Pillow to open HEIF, once per process."""
    pillow_heif.register_heif_opener()


def _pdf_pages(data: bytes) -> list[np.ndarray]:
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == _PDFIUM_NO_ERROR:  # PDFium refuses a document with an empty page tree without naming an error
            raise MalformedError("PDF has no pages") from None
        if code == _PDFIUM_PASSWORD:
            raise MalformedError("PDF is password-protected") from None
        raise MalformedError(f"not a readable PDF ({exc})") from None
    try:
        count = len(document)
        if count == 0:
            raise MalformedError("PDF has no pages")
        if count > MAX_PAGES:
            raise MalformedError(f"PDF has {count} pages, more than the {MAX_PAGES} read from one file")
        scale = PDF_DPI / _PDF_POINTS_PER_INCH
        pages: list[np.ndarray] = []
        total = 0
        for index in range(count):
            page = document[index]
            try:
                width, height = page.get_size()
                total += _check_pixels((round(width * scale), round(height * scale)), index, total)
                bitmap = page.render(scale=scale, grayscale=True)
                try:
                    pixels = bitmap.to_numpy()
                    pages.append(np.array(pixels if pixels.ndim == 2 else pixels[:, :, 0], dtype=np.uint8))
                finally:
                    bitmap.close()
            finally:
                page.close()
        return pages
    finally:
        document.close()
