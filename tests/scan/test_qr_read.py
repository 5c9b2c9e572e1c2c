"""QR finding and decoding: generated A4 pages, distorted as photos distort paper, read back exactly."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import segno
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from PIL import Image

from actas.core.qr import ALPHABET, decode_payload, encode_payload
from actas.errors import MalformedError
from actas.scan import qr_read
from actas.scan.images import Source, load_pages
from actas.scan.photo import LEVELS, Level, capture
from actas.scan.qr_read import QrRead, read_qr
from actas.scan.render import render_png
from actas.simulate.geography import generate_election
from actas.simulate.run import signed_actas
from tests.factories import signed_acta, small_election

U8 = npt.NDArray[np.uint8]
PAGE_SHAPE = (3508, 2480)  # A4 at 300 dpi
MODULE = 7  # px per module, as a 300-dpi print with 0.6 mm modules
QR_AT = (1500, 2700)  # top-left corner (x, y) of the code, quiet zone included, on the page
LADDER_STEPS = [name for name, _ in qr_read._LADDER]


def payload(seed: int, length: int = 650) -> str:
    """An own-format-looking payload: ``ACTAS1:`` and Base45-alphabet characters, ``length`` in all."""
    rng = np.random.default_rng(seed)
    return "ACTAS1:" + "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), length - 7))


def qr_pixels(text: str, module: int = MODULE) -> U8:
    """The QR code of text (level M, alphanumeric, quiet zone of 4 modules) at module px per module."""
    code = segno.make_qr(text, error="m", mode="alphanumeric" if text.isupper() else None, boost_error=False)
    modules = np.array(code.matrix, dtype=bool)
    symbol = np.pad(np.where(modules, 0, 255).astype(np.uint8), 4, constant_values=255)
    return np.kron(symbol, np.ones((module, module), dtype=np.uint8))


@cache
def text_strokes() -> U8:
    """A white A4 page covered with lines of text-like strokes (deterministic)."""
    rng = np.random.default_rng(2024)
    page = np.full(PAGE_SHAPE, 255, dtype=np.uint8)
    for row in range(250, 3350, 60):
        x = 200
        while x < 2280:
            word = int(rng.integers(20, 140))
            for k in range(0, word, 14):
                height = int(rng.integers(14, 30))
                cv2.line(page, (x + k, row + 30 - height), (x + k + int(rng.integers(0, 8)), row + 30), 0, 3)
            x += word + 30
    return page


def make_page(texts: dict[tuple[int, int], str]) -> U8:
    """The text page with a QR code of each text pasted (quiet zone and all) at its (x, y)."""
    page = text_strokes().copy()
    for (x, y), text in texts.items():
        symbol = qr_pixels(text)
        page[y : y + symbol.shape[0], x : x + symbol.shape[1]] = symbol
    return page


@cache
def acta_page() -> U8:
    """The page with one 650-character code at QR_AT."""
    return make_page({QR_AT: payload(1)})


# --- distortions -------------------------------------------------------------------------------------------------


def rotate(image: U8, degrees: float, fill: int = 90) -> U8:
    """Turned about the centre onto a canvas that holds it all, on a desk of grey ``fill``."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(height * sin + width * cos), int(height * cos + width * sin))
    matrix[0, 2] += size[0] / 2 - width / 2
    matrix[1, 2] += size[1] / 2 - height / 2
    return np.asarray(cv2.warpAffine(image, matrix, size, borderValue=fill), dtype=np.uint8)


def perspective(image: U8, shifts: tuple[float, ...], scale: float = 1.0) -> U8:
    """Each corner moved by its share of the page size (x0, y0, … clockwise from top-left), then scaled."""
    height, width = image.shape
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    moved = (corners + np.array(shifts, dtype=np.float32).reshape(4, 2) * [width, height]) * scale
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    size = (int(width * scale), int(height * scale))
    return np.asarray(cv2.warpPerspective(image, matrix, size, flags=cv2.INTER_AREA, borderValue=90), dtype=np.uint8)


def resize(image: U8, factor: float) -> U8:
    """Scaled by factor with area averaging, as a camera's sensor samples."""
    return np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def gaussian_blur(image: U8, sigma: float) -> U8:
    """Out of focus."""
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8)


def motion_blur(image: U8, length: int, degrees: float) -> U8:
    """A shaken hand: a line kernel of length px at an angle."""
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1
    turn = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), degrees, 1.0)
    line = np.asarray(cv2.warpAffine(kernel, turn, (length, length)), dtype=np.float32)
    return np.asarray(cv2.filter2D(image, -1, line / line.sum()), dtype=np.uint8)


def noise(image: U8, sigma: float, seed: int) -> U8:
    """Sensor noise, Gaussian with sigma grey levels."""
    grain = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def lighting(image: U8, darkest: float, degrees: float) -> U8:
    """Light falling off linearly across the image, to darkest × at the far side."""
    height, width = image.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.deg2rad(degrees)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    return np.asarray(np.clip(image * (1 - (1 - darkest) * ramp), 0, 255), dtype=np.uint8)


def jpeg(image: U8, quality: int) -> U8:
    """Saved as a JPEG of the given quality and read back."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), dtype=np.uint8)


# --- reading -----------------------------------------------------------------------------------------------------


def test_clean_page_reads_at_the_first_step() -> None:
    """A clean 300-dpi page is read by the first attempt alone."""
    read = read_qr(acta_page())
    assert read == QrRead((payload(1),), "first", 1)


def test_real_acta_payload_round_trips() -> None:
    """The payload of a signed acta, printed and read back, decodes to exactly the signed bytes."""
    entry = signed_acta(small_election(), 0)
    text = encode_payload(entry)
    page = text_strokes().copy()
    symbol = qr_pixels(text)
    page[QR_AT[1] : QR_AT[1] + symbol.shape[0], QR_AT[0] : QR_AT[0] + symbol.shape[1]] = symbol
    (read,) = read_qr(jpeg(rotate(page, 180), 60)).texts
    assert decode_payload(read) == entry


Distortion = Callable[[U8], U8]

DISTORTIONS: dict[str, Distortion] = {
    "rotated 17°": lambda page: rotate(page, 17),
    "rotated 90°": lambda page: rotate(page, 90),
    "upside down": lambda page: rotate(page, 180),
    "rotated 233°": lambda page: rotate(page, 233),
    "perspective": lambda page: perspective(page, (0.08, 0.05, -0.03, 0.1, -0.1, -0.02, 0.04, -0.07), 0.8),
    "gaussian blur": lambda page: gaussian_blur(page, 2.0),
    "motion blur": lambda page: motion_blur(page, 7, 30),
    "noise": lambda page: noise(page, 25, seed=1),
    "lighting gradient": lambda page: lighting(page, 0.25, 60),
    "jpeg q40": lambda page: jpeg(resize(page, 0.6), 40),
    "low resolution": lambda page: resize(page, 0.45),
    "inverted": lambda page: 255 - page,
}


@pytest.mark.parametrize("name", list(DISTORTIONS))
def test_distorted_page_reads_exactly(name: str) -> None:
    """Each distortion alone still gives back exactly the printed text."""
    read = read_qr(DISTORTIONS[name](acta_page()))
    assert read.texts == (payload(1),)
    assert read.step in LADDER_STEPS


def poor_photo(seed: int) -> U8:
    """A poor phone photo: any rotation, perspective, low resolution, blur, noise, uneven light, JPEG q 40–70."""
    rng = np.random.default_rng(seed)
    image = rotate(acta_page(), float(rng.uniform(0, 360)))
    image = perspective(image, tuple(float(v) for v in rng.uniform(-0.06, 0.06, 8)), float(rng.uniform(0.55, 0.7)))
    image = lighting(image, float(rng.uniform(0.4, 0.7)), float(rng.uniform(0, 360)))
    image = gaussian_blur(image, float(rng.uniform(0.6, 1.2)))
    image = noise(image, float(rng.uniform(3, 8)), seed)
    return jpeg(image, int(rng.integers(40, 71)))


@pytest.mark.parametrize("seed", range(4))
def test_poor_phone_photo_reads_exactly(seed: int) -> None:
    """Every distortion at once, at several seeds."""
    assert read_qr(poor_photo(seed)).texts == (payload(1),)


LADDER_CASES: dict[str, Distortion] = {
    # Found empirically: the first attempt fails on these at every seed and σ tried around them.
    "heavy noise": lambda page: noise(resize(page, 0.5), 70, seed=0),
    "small and blurred": lambda page: jpeg(gaussian_blur(resize(page, 0.36), 1.3), 50),
}


@pytest.mark.parametrize("name", list(LADDER_CASES))
def test_ladder_recovers_what_the_first_step_misses(name: str) -> None:
    """Photos the first attempt cannot read are read by a later step of the ladder."""
    read = read_qr(LADDER_CASES[name](acta_page()))
    assert read.step != "first"
    assert read.attempts > 1
    assert read.texts == (payload(1),)


# The scanner's targets: share of captures read per photo level.
TARGETS: dict[Level, float] = {"scan": 0.995, "phone-good": 0.995, "phone-poor": 0.97, "hard": 0.90}


def captured(level: Level, seed: int) -> U8:
    """The test page photographed by the project's photo simulator, as the loader hands it to the reader."""
    symbol_side = qr_pixels(payload(1)).shape[0] - 8 * MODULE
    box = (QR_AT[0] + 4 * MODULE, QR_AT[1] + 4 * MODULE, symbol_side, symbol_side)
    (gray,) = load_pages(Source(f"{level}-{seed}.jpg", capture(acta_page(), level, seed, box).data))
    return gray


@pytest.mark.parametrize("level", LEVELS)
def test_simulated_capture_reads_exactly(level: Level) -> None:
    """One capture at each photo level gives back exactly the printed text."""
    assert read_qr(captured(level, 7)).texts == (payload(1),)


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
def test_simulated_captures_meet_the_read_targets(level: Level) -> None:
    """50 captures per level: never a wrong text, and the share read meets the level's target."""
    reads = [read_qr(captured(level, seed)).texts for seed in range(100, 150)]
    assert all(texts in ((), (payload(1),)) for texts in reads)
    assert sum(texts == (payload(1),) for texts in reads) / len(reads) >= TARGETS[level]


def test_two_codes_in_one_image_are_both_returned_in_reading_order() -> None:
    """A sheet with two codes (e.g. a multi-part boletim) gives both texts, top one first."""
    upper, lower = payload(2, 300), payload(3, 300)
    page = make_page({(1700, 300): upper, (200, 2700): lower})
    read = read_qr(rotate(page, 180))  # upside down, the lower code comes first in the image
    assert read.texts == (lower, upper)
    assert read_qr(page).texts == (upper, lower)


def test_page_without_a_code_returns_nothing_quickly() -> None:
    """A page of text with no QR code runs the whole ladder and says so, in well under a few seconds."""
    started = time.perf_counter()
    read = read_qr(text_strokes())
    elapsed = time.perf_counter() - started
    assert read.texts == ()
    assert read.step == "none"
    assert read.attempts >= len(LADDER_STEPS) - 2  # every step ran ("full" and "regions" may have nothing to try)
    assert elapsed < 5.0


def test_rejected_text_is_kept_out_and_the_ladder_goes_on() -> None:
    """A text accept refuses is not returned; with two codes the other one still is."""
    upper, lower = payload(4, 300), payload(5, 300)
    page = make_page({(1700, 300): upper, (200, 2700): lower})
    calls: list[str] = []

    def only_lower(text: str) -> bool:
        calls.append(text)
        return text == lower

    read = read_qr(page, only_lower)
    assert read.texts == (lower,)
    assert sorted(calls) == sorted([upper, lower])  # each distinct text judged once


def test_all_texts_rejected_runs_the_whole_ladder() -> None:
    """When accept refuses everything, no text is returned, every step is tried and each text judged once."""
    calls: list[str] = []

    def refuse(text: str) -> bool:
        calls.append(text)
        return False

    read = read_qr(resize(acta_page(), 0.5), refuse)
    assert read.texts == ()
    assert read.step == "none"
    assert read.attempts == read_qr(resize(text_strokes(), 0.5)).attempts  # as many as a page with no code
    assert calls == [payload(1)]


def test_default_accept_takes_any_text() -> None:
    """Without accept, text that is not an actas payload (here a CNE-style string) is returned as well."""
    cne = "201301006.01.1.0001!140,7,10,8,1,7,1,0,2,3,0,1,8,1,0,1,0,3,1,1,0,1,0,0,0,0,0,0,1,2,0,0,0,5,7,155,1,1!0!0"
    assert read_qr(make_page({QR_AT: cne})).texts == (cne,)


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10, 3), dtype=np.uint8), np.zeros((10, 10), dtype=np.float32), np.zeros((0, 5), dtype=np.uint8)],
    ids=["colour", "float", "empty"],
)
def test_not_a_grayscale_image_is_malformed(image: np.ndarray) -> None:
    """Only 2-D uint8 arrays with pixels are read."""
    with pytest.raises(MalformedError, match="image: "):
        read_qr(image)


def test_image_too_small_for_any_code_makes_no_attempt() -> None:
    """Below 21 px on a side no QR symbol fits: nothing is tried."""
    assert read_qr(np.zeros((20, 500), dtype=np.uint8)) == QrRead((), "none", 0)


@settings(max_examples=40)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=80)))
def test_arbitrary_images_never_raise(image: U8) -> None:
    """Any grayscale array, however odd its shape or content, gives a QrRead (here: with nothing in it)."""
    read = read_qr(image)
    assert read.texts == ()
    assert read.step == "none"


def test_qr_read_is_valid_by_construction() -> None:
    """Texts are distinct and non-empty; "none" exactly when there are none; attempts are not negative."""
    with pytest.raises(MalformedError, match="distinct"):
        QrRead(("a", "a"), "first", 1)
    with pytest.raises(MalformedError, match="distinct"):
        QrRead(("",), "first", 1)
    with pytest.raises(MalformedError, match="none"):
        QrRead(("a",), "none", 1)
    with pytest.raises(MalformedError, match="none"):
        QrRead((), "first", 1)
    with pytest.raises(MalformedError, match="negative"):
        QrRead((), "none", -1)


def test_glared_hard_capture_reads_from_the_normalised_union_of_located_pieces() -> None:
    """A hard capture (glare, 2.8 px modules, fold and stamp) that every earlier step misses: zxing locates only the
    finder patterns, and the crop around them all, divided by its local mean, reads exactly."""
    election = generate_election(40, seed=4)
    entry = list(signed_actas(election, 4))[3]
    page = np.asarray(Image.open(io.BytesIO(render_png(entry, election))).convert("L"))
    (gray,) = load_pages(Source("hard.jpg", capture(page, "hard", seed=3007).data))
    read = read_qr(gray)
    assert read.texts == (encode_payload(entry),)
    assert read.step == "regions"
    assert read.step in LADDER_STEPS
