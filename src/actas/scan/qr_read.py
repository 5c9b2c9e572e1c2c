"""Find and decode the QR codes of a page image, climbing a fallback ladder when the first attempt fails.

``read_qr(gray, accept)`` hands the page to zxing-cpp (QR codes only; it finds symbols at any angle, tries 90°
turns and its own downscaled pyramid), then, step by step, views of the page made to undo what photos do to paper,
until some decoded text passes ``accept`` (by default: any non-empty text). The step that yields the first
accepted text ends the ladder after all its attempts, so several codes of one image found together are all
returned, in reading order (top to bottom, then left to right, by the centre of each symbol on the page). A text
``accept`` rejects is left out and does not stop the ladder; ``accept`` is called once per distinct text, and
what it raises propagates. An image under 21 px on a side (a version-1 symbol at one pixel per module) is not
tried at all; anything that is not a non-empty 2-D uint8 array raises ``MalformedError``.

The ladder, ordered by the failures each step recovered per millisecond it cost, on photo-simulator captures at
every level and on synthetic blur, noise, shadow and low-resolution pages (steps that recovered nothing the
earlier ones missed come last, cheapest first):

``first``      the page, halved (area averaging) while its long side exceeds 4000 px: a 300-dpi A4 page is read
               at full size (about 25 ms; halving it would save some 10 ms but take 6–7 px modules to ~3 px,
               where reads start to fail); a 600-dpi scan or a 48-MP photo is reduced. Inverted (light-on-dark)
               codes are tried too.
``full``       the page at full size, when ``first`` reduced it
``denoised``   3 × 3 median: sensor noise and JPEG artefacts
``upscaled``   1.5 × bicubic (pages up to 4000 px): modules under ~3 px, from low resolution or perspective
``sharpened``  unsharp mask (σ 2 px, amount 1.5): blur and defocus
``flattened``  divided by the paper's brightness (a closing at 1/4 scale): shadows and uneven light
``regions``    each symbol an earlier attempt located but could not decode (at most 6), then the box around them
               all (zxing often locates only the finder patterns of a damaged symbol, each as a small symbol of its
               own), cropped with a margin, enlarged to 900 px, and tried plain, sharpened, thresholded, flattened,
               equalised and normalised (divided by a Gaussian local mean of σ 1/32 of the crop: glare, dim light)
``adaptive``   adaptive Gaussian threshold, blocks of 25 and 51 px
``otsu``       Otsu's global threshold
``equalised``  CLAHE (clip 2, 8 × 8 tiles) against local contrast loss
``rotated``    turned by ±45° on a white canvas

The enhancement steps (``denoised`` to ``rotated``, but ``upscaled`` and ``regions``) start from a work view of
the page with its long side at most 2600 px, so that an A4 page with no code at all runs the whole ladder in about
a second. Views are made once and shared. Positions of located symbols are mapped back to page coordinates, so
``regions`` gathers those of every earlier step. A wrong read is not a risk this module handles alone: QR
Reed–Solomon rejects damaged codewords, and the payload's strict parser and signature check follow downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from actas.errors import MalformedError

U8 = npt.NDArray[np.uint8]
Accept = Callable[[str], bool]

MIN_SIDE = 21  # a version-1 QR symbol is 21 modules wide
FIRST_MAX_SIDE = 4000
WORK_MAX_SIDE = 2600
UPSCALE = 1.5
MAX_UPSCALED_SIDE = 6000
REGION_SIDE = 900
MAX_REGIONS = 6
NORMALISE_FRACTION = 32.0
_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True, slots=True)
class QrRead:
    """What ``read_qr`` found: distinct accepted texts in a stable order, the step that found them, attempts made."""

    texts: tuple[str, ...]
    step: str
    attempts: int

    def __post_init__(self) -> None:
        if len(set(self.texts)) != len(self.texts) or not all(self.texts):
            raise MalformedError("qr read: texts must be distinct and non-empty")
        if not self.step or (self.step == "none") != (not self.texts):
            raise MalformedError("qr read: a step names what found the texts, and 'none' only when there are none")
        if self.attempts < 0:
            raise MalformedError("qr read: attempts cannot be negative")


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One image handed to zxing, and the affine map (2 × 3) from its pixel coordinates to the page's."""

    image: U8
    to_page: npt.NDArray[np.float64]
    invert: bool = False


def _scaled(image: U8, scale: float, origin: tuple[float, float] = (0.0, 0.0), invert: bool = False) -> _Attempt:
    """An attempt on an image that is the page (or the part of it at ``origin``) resized by ``scale``."""
    to_page = np.array([[1 / scale, 0.0, origin[0]], [0.0, 1 / scale, origin[1]]])
    return _Attempt(np.ascontiguousarray(image), to_page, invert)


@dataclass
class _Page:
    """The page, its derived views (made once) and the symbols located on it so far."""

    gray: U8
    views: dict[str, U8] = field(default_factory=dict)
    regions: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def view(self, name: str, make: Callable[[], U8]) -> U8:
        """The named view of the page, made on first use."""
        if name not in self.views:
            self.views[name] = np.ascontiguousarray(make())
        return self.views[name]

    @property
    def reduced(self) -> U8:
        """The page halved until its long side is at most FIRST_MAX_SIDE."""

        def halve() -> U8:
            image = self.gray
            while max(image.shape) > FIRST_MAX_SIDE:
                image = _resize(image, 0.5)
            return image

        return self.view("reduced", halve)

    @property
    def reduction(self) -> float:
        """Pixels of the reduced view per page pixel."""
        return float(self.reduced.shape[1] / self.gray.shape[1])

    @property
    def work(self) -> U8:
        """The view the enhancement steps start from: the page with its long side at most WORK_MAX_SIDE."""

        def shrink() -> U8:
            factor = WORK_MAX_SIDE / max(self.reduced.shape)
            return _resize(self.reduced, factor) if factor < 1 else self.reduced

        return self.view("work", shrink)

    @property
    def work_scale(self) -> float:
        """Pixels of the work view per page pixel."""
        return float(self.work.shape[1] / self.gray.shape[1])

    def note_region(self, quad: npt.NDArray[np.float64]) -> None:
        """Remember where a symbol was located, unless an overlapping one is already known."""
        centre = quad.mean(axis=0)
        size = float(np.ptp(quad, axis=0).max())
        for known in self.regions:
            if np.linalg.norm(known.mean(axis=0) - centre) < 0.5 * max(size, float(np.ptp(known, axis=0).max())):
                return
        self.regions.append(quad)


def read_qr(gray: np.ndarray, accept: Accept | None = None) -> QrRead:
    """The QR texts of a grayscale page, climbing the fallback ladder until one passes ``accept``."""
    page = _Page(_checked(gray))
    if min(page.gray.shape) < MIN_SIDE:
        return QrRead((), "none", 0)  # smaller than the smallest QR symbol at one pixel per module
    verdicts: dict[str, bool] = {}
    found: dict[str, tuple[float, float]] = {}  # accepted text → centre of the symbol on the page
    attempts = 0
    for name, step in _LADDER:
        for attempt in step(page):
            attempts += 1
            for text, centre in _decode(attempt, page):
                if text not in verdicts:
                    verdicts[text] = bool(text) and (accept is None or bool(accept(text)))
                if verdicts[text] and text not in found:
                    found[text] = centre
        if found:
            # Reading order (top to bottom, then left to right), so parts of a multi-code sheet keep their order.
            ordered = sorted(found, key=lambda text: (found[text][1], found[text][0], text))
            return QrRead(tuple(ordered), name, attempts)
    return QrRead((), "none", attempts)


def _checked(gray: Any) -> U8:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
        kind = f"{gray.dtype} array of shape {gray.shape}" if isinstance(gray, np.ndarray) else type(gray).__name__
        raise MalformedError(f"image: expected a 2-D uint8 grayscale array, got {kind}")
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise MalformedError(f"image: empty ({gray.shape[1]} × {gray.shape[0]} pixels)")
    return np.ascontiguousarray(gray)


def _decode(attempt: _Attempt, page: _Page) -> list[tuple[str, tuple[float, float]]]:
    """Texts an attempt decodes, each with its symbol's centre on the page; undecoded symbols are noted."""
    decoded: list[tuple[str, tuple[float, float]]] = []
    results = zxingcpp.read_barcodes(
        attempt.image, formats=_QR, try_rotate=True, try_downscale=True, try_invert=attempt.invert, return_errors=True
    )
    for result in results:
        position = result.position
        corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
        quad = np.array([[point.x, point.y] for point in corners], dtype=np.float64)
        on_page = quad @ attempt.to_page[:, :2].T + attempt.to_page[:, 2]
        if result.valid:
            centre = on_page.mean(axis=0)
            decoded.append((result.text, (float(centre[0]), float(centre[1]))))
        else:
            page.note_region(on_page)
    return decoded


# --- image operations ------------------------------------------------------------------------------------------


def _resize(image: U8, factor: float) -> U8:
    height, width = image.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)


def _sharpen(image: U8, sigma: float = 2.0, amount: float = 1.5) -> U8:
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(image, 1 + amount, blurred, -amount, 0), dtype=np.uint8)


def _flatten(image: U8) -> U8:
    """The image divided by its background: paper white everywhere, whatever the light (a closing removes ink)."""
    height, width = image.shape
    small = _resize(image, 0.25) if min(height, width) >= 64 else image
    size = max(3, (min(small.shape) // 40) | 1)
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(cv2.divide(image, np.maximum(background, 1), scale=255), dtype=np.uint8)


def _normalise(image: U8) -> U8:
    """The image divided by its local mean (a Gaussian of σ 1/32 of its long side, some 4 modules on a region crop):
    glare and dim light leave the code's dark and light modules far apart around a level mid-grey."""
    sigma = max(2.0, max(image.shape) / NORMALISE_FRACTION)
    mean = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return np.asarray(np.clip(image.astype(np.float32) / np.maximum(mean, 1.0) * 200.0, 0, 255), dtype=np.uint8)


def _adaptive(image: U8, block: int) -> U8:
    thresholded = cv2.adaptiveThreshold(image, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 5)
    return np.asarray(thresholded, dtype=np.uint8)


def _equalise(image: U8) -> U8:
    return np.asarray(cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image), dtype=np.uint8)


def _otsu(image: U8) -> U8:
    return np.asarray(cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1], dtype=np.uint8)


def _rotate(image: U8, degrees: float) -> tuple[U8, npt.NDArray[np.float64]]:
    """The image turned about its centre on a white canvas large enough to hold it, and the page→image map."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    turned = cv2.warpAffine(image, matrix, (new_width, new_height), flags=cv2.INTER_LINEAR, borderValue=255)
    return np.asarray(turned, dtype=np.uint8), np.asarray(matrix, dtype=np.float64)


# --- the ladder ------------------------------------------------------------------------------------------------


def _first(page: _Page) -> Iterator[_Attempt]:
    yield _scaled(page.reduced, page.reduction, invert=True)


def _full(page: _Page) -> Iterator[_Attempt]:
    if page.reduction < 1:
        yield _scaled(page.gray, 1.0, invert=True)


def _upscaled(page: _Page) -> Iterator[_Attempt]:
    if max(page.gray.shape) * UPSCALE <= MAX_UPSCALED_SIDE:
        yield _scaled(page.view("upscaled", lambda: _resize(page.gray, UPSCALE)), UPSCALE)


def _view_step(name: str, make: Callable[[U8], U8]) -> Callable[[_Page], Iterator[_Attempt]]:
    def step(page: _Page) -> Iterator[_Attempt]:
        yield _scaled(page.view(name, lambda: make(page.work)), page.work_scale)

    return step


def _adaptive_step(page: _Page) -> Iterator[_Attempt]:
    for block in (25, 51):
        yield _scaled(page.view(f"adaptive{block}", partial(_adaptive, page.work, block)), page.work_scale)


def _region_quads(page: _Page) -> list[npt.NDArray[np.float64]]:
    """The located symbols, then the box around them all: zxing often locates only the corner finder patterns of a
    symbol it cannot decode, as separate small symbols, and their union is the whole symbol."""
    quads = [quad for quad in page.regions[:MAX_REGIONS] if float(np.ptp(quad, axis=0).min()) >= MIN_SIDE / 3]
    if len(quads) >= 2:
        points = np.concatenate(quads)
        low, high = points.min(axis=0), points.max(axis=0)
        if float((high - low).max()) <= max(page.gray.shape) / 2:
            quads.append(np.array([low, (high[0], low[1]), high, (low[0], high[1])], dtype=np.float64))
    return quads


def _regions(page: _Page) -> Iterator[_Attempt]:
    for quad in _region_quads(page):
        low, high = quad.min(axis=0), quad.max(axis=0)
        margin = 0.25 * float((high - low).max()) + 8
        left, top = (max(0, int(v - margin)) for v in low)
        right, bottom = int(min(page.gray.shape[1], high[0] + margin)), int(min(page.gray.shape[0], high[1] + margin))
        crop = page.gray[top:bottom, left:right]
        if crop.size == 0:
            continue
        factor = REGION_SIDE / max(crop.shape)
        enlarged = _resize(crop, factor) if abs(factor - 1) > 0.05 else np.ascontiguousarray(crop)
        for variant in (enlarged, _sharpen(enlarged), _adaptive(enlarged, 51), _flatten(enlarged), _equalise(enlarged)):
            yield _scaled(variant, factor, (float(left), float(top)))
        # Glare and low contrast: the crop divided by its local mean before enlarging (see _normalise)
        yield _scaled(_resize(_normalise(crop), factor), factor, (float(left), float(top)))


def _rotated(page: _Page) -> Iterator[_Attempt]:
    for degrees in (45.0, -45.0):
        turned, to_work = _rotate(page.work, degrees)
        to_page = cv2.invertAffineTransform(to_work) / page.work_scale
        yield _Attempt(turned, np.asarray(to_page, dtype=np.float64))


_LADDER: tuple[tuple[str, Callable[[_Page], Iterator[_Attempt]]], ...] = (
    ("first", _first),
    ("full", _full),
    ("denoised", _view_step("denoised", lambda image: np.asarray(cv2.medianBlur(image, 3), dtype=np.uint8))),
    ("upscaled", _upscaled),
    ("sharpened", _view_step("sharpened", _sharpen)),
    ("flattened", _view_step("flattened", _flatten)),
    ("regions", _regions),
    ("adaptive", _adaptive_step),
    ("otsu", _view_step("otsu", _otsu)),
    ("equalised", _view_step("equalised", _equalise)),
    ("rotated", _rotated),
)
