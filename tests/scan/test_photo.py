"""Photo simulator: reproducible captures, sizes per level, damage bounds, readability, corpus order, input checks."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from actas.errors import MalformedError
from actas.scan.camera import _module_size
from actas.scan.damage import _damage
from actas.scan.photo import LEVELS, Capture, Level, capture, corpus

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
MODULE = 7  # px per module on the test page
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True, slots=True)
class Page:
    """A generated acta-like page: text-like strokes and a QR code whose text and box are known."""

    image: npt.NDArray[np.uint8]
    text: str
    box: tuple[int, int, int, int]
    modules: int


def make_page(seed: int, width: int = 2480, height: int = 3508, module: int = MODULE) -> Page:
    """A white page with rows of boxed pseudo-words and a QR code (level M, alphanumeric) near the bottom right."""
    rnd = random.Random(seed)
    image = np.full((height, width), 255, np.uint8)
    text = "ACTAS1:" + "".join(rnd.choice(BASE45) for _ in range(600))
    symbol = segno.make(text, error="m", mode="alphanumeric")
    matrix = np.array([list(row) for row in symbol.matrix], dtype=np.uint8)
    qr = np.where(np.kron(matrix, np.ones((module, module), np.uint8)) > 0, 0, 255).astype(np.uint8)
    side = qr.shape[0]
    x, y = width - side - width // 12, height - side - height // 14
    for row in range(height // 12, y - height // 20, max(30, height // 58)):
        col = width // 12
        while col < width - width // 8:
            span = rnd.randint(width // 120, width // 14)
            cv2.rectangle(image, (col, row), (col + span, row + height // 130), 0, max(1, width // 900))
            word = "".join(rnd.choice("ABCDEFGHMNRS0123456789") for _ in range(max(1, span // 32)))
            cv2.putText(image, word, (col + 3, row + height // 150), cv2.FONT_HERSHEY_SIMPLEX, width / 3000, 0, 2)
            col += span + rnd.randint(20, 60)
    image[y : y + side, x : x + side] = qr
    return Page(image=image, text=text, box=(x, y, side, side), modules=matrix.shape[0])


@pytest.fixture(scope="module")
def page() -> Page:
    """The A4, 300 dpi test page."""
    return make_page(1)


@pytest.fixture(scope="module")
def shoot(page: Page) -> Callable[[Level, int], Capture]:
    """Captures of the test page, made once per (level, seed) for the whole module."""
    made: dict[tuple[Level, int], Capture] = {}

    def take(level: Level, seed: int) -> Capture:
        if (level, seed) not in made:
            made[(level, seed)] = capture(page.image, level, seed, page.box)
        return made[(level, seed)]

    return take


def decode(shot: Capture) -> npt.NDArray[np.uint8]:
    """The capture's image as OpenCV reads the file."""
    image = cv2.imdecode(np.frombuffer(shot.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a decodable image file"
    return np.asarray(image, dtype=np.uint8)


def read_qr(image: npt.NDArray[np.uint8], text: str) -> zxingcpp.Barcode | None:
    """Plain zxing-cpp as a scanner's first rung would use it: as is, then turned by 90, 180 and 270 degrees."""
    for turns in range(4):
        view = np.ascontiguousarray(np.rot90(image, turns))
        for found in zxingcpp.read_barcodes(view, formats=QR_ONLY):
            if found.text == text:
                return found
    return None


def module_in_image(found: zxingcpp.Barcode, modules: int) -> float:
    """Mean side of the decoded symbol in the image, in px per module."""
    p = found.position
    corners = np.array([[c.x, c.y] for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)], float)
    sides = np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)
    return float(sides.mean()) / modules


# --- reproducibility, format, sizes ---------------------------------------------------------------------------------


def test_levels_are_named_in_order() -> None:
    assert LEVELS == ("scan", "phone-good", "phone-poor", "hard")


@pytest.mark.parametrize("level", LEVELS)
def test_same_seed_gives_same_bytes(page: Page, shoot: Callable[[Level, int], Capture], level: Level) -> None:
    again = capture(page.image, level, 0, page.box)
    assert again.data == shoot(level, 0).data
    assert again.params == shoot(level, 0).params


@pytest.mark.parametrize("level", LEVELS)
def test_different_seed_gives_different_bytes(shoot: Callable[[Level, int], Capture], level: Level) -> None:
    assert shoot(level, 0).data != shoot(level, 1).data


@pytest.mark.parametrize("level", LEVELS)
def test_capture_records_level_seed_and_true_format(shoot: Callable[[Level, int], Capture], level: Level) -> None:
    shot = shoot(level, 1)
    assert (shot.level, shot.seed) == (level, 1)
    magic = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}[shot.format]
    assert shot.data.startswith(magic)
    image = decode(shot)
    assert (shot.params["width"], shot.params["height"]) == (image.shape[1], image.shape[0])


@pytest.mark.parametrize("level", LEVELS)
def test_capture_decodes_at_the_level_size(page: Page, shoot: Callable[[Level, int], Capture], level: Level) -> None:
    for seed in (0, 1):
        height, width = decode(shoot(level, seed)).shape[:2]
        if level == "scan":  # the page at 200-300 dpi plus a strip of the scanner lid
            assert 0.67 * 2480 <= width <= 2480 + 120
            assert 0.67 * 3508 <= height <= 3508 + 120
        else:  # a 4:3 phone frame
            low, high = (3000, 4000) if level == "phone-good" else (1600, 2400)
            assert low <= max(width, height) <= high
            assert min(width, height) == max(width, height) * 3 // 4


def test_phone_captures_are_colour_jpeg(shoot: Callable[[Level, int], Capture]) -> None:
    for level in ("phone-good", "phone-poor", "hard"):
        shot = shoot(level, 0)
        assert shot.format == "jpeg"
        assert decode(shot).ndim == 3


def test_scan_writes_grey_png_or_colour_jpeg(page: Page) -> None:
    seen: dict[str, npt.NDArray[np.uint8]] = {}
    for seed in range(12):
        shot = capture(page.image, "scan", seed)
        seen.setdefault(shot.format, decode(shot))
        if len(seen) == 2:
            break
    assert set(seen) == {"png", "jpeg"}
    assert seen["png"].ndim == 2
    assert seen["jpeg"].ndim == 3


def test_pil_page_gives_the_same_capture_as_the_array(page: Page, shoot: Callable[[Level, int], Capture]) -> None:
    assert capture(Image.fromarray(page.image), "phone-poor", 0, page.box).data == shoot("phone-poor", 0).data


def test_numpy_integers_are_accepted_as_seed_and_box(page: Page, shoot: Callable[[Level, int], Capture]) -> None:
    box = tuple(np.int64(v) for v in page.box)
    shot = capture(page.image, "phone-poor", np.int64(0), box)  # type: ignore[arg-type]
    assert shot.data == shoot("phone-poor", 0).data
    assert type(shot.seed) is int


def test_qr_is_located_on_the_clean_page_when_no_box_is_given(page: Page) -> None:
    shot = capture(page.image, "hard", 3)
    assert shot.params["qr"] == "detected"
    assert shot.params["damage_targeted"] == 1


def test_module_size_is_measured_from_the_finder_pattern(page: Page) -> None:
    x, y, w, h = page.box
    assert _module_size(page.image, page.box) == pytest.approx(MODULE, abs=0.3)
    assert _module_size(page.image, (x - 3, y - 3, w + 6, h + 6)) == pytest.approx(MODULE, abs=0.5)
    assert _module_size(page.image, (40, 40, 200, 200)) is None  # blank paper: no finder pattern


# --- physical damage -------------------------------------------------------------------------------------------------


def finder_areas(page: Page) -> list[tuple[slice, slice]]:
    """The three finder patterns with their separators (8 × 8 modules), from the QR's known geometry."""
    x, y, w, h = page.box
    size = 8 * MODULE
    return [
        (slice(y, y + size), slice(x, x + size)),
        (slice(y, y + size), slice(x + w - size, x + w)),
        (slice(y + h - size, y + h), slice(x, x + size)),
    ]


def test_hard_damage_stays_within_budget_and_off_the_finder_patterns(page: Page) -> None:
    x, y, w, h = page.box
    crossing, stamped = 0, 0
    for seed in range(40):
        damage = _damage(page.image, page.box, np.random.default_rng(seed))
        fraction = float(damage.mask[y : y + h, x : x + w].mean())
        assert fraction <= 0.10, f"seed {seed}: {fraction:.3f} of the QR damaged"
        for rows, cols in finder_areas(page):
            assert not damage.mask[rows, cols].any(), f"seed {seed}: damage on a finder pattern"
        assert damage.mask.any(), f"seed {seed}: no damage at all"
        crossing += damage.params.get("fold") == "crossing"
        if damage.stamp is not None:
            stamped += 1
            assert fraction >= 0.03, f"seed {seed}: the stamp misses the QR"
    assert crossing >= 3  # both kinds of damage reach the QR in practice
    assert stamped >= 10


def test_fold_marks_the_page_where_the_mask_says(page: Page) -> None:
    for seed in range(12):
        damage = _damage(page.image, page.box, np.random.default_rng(seed))
        if damage.params.get("fold") == "crossing":
            changed = damage.page != page.image
            assert changed[damage.mask].mean() > 0.3  # the crease band darkens or brightens the paper
            return
    pytest.fail("no crossing fold in 12 seeds")


def test_damage_without_a_known_qr_is_untargeted(page: Page) -> None:
    damage = _damage(page.image, None, np.random.default_rng(5))
    assert damage.params["damage_targeted"] == 0
    assert "damage_fraction" not in damage.params


@pytest.mark.parametrize("seed", range(4))
def test_hard_captures_record_their_damage(shoot: Callable[[Level, int], Capture], seed: int) -> None:
    params = shoot("hard", seed).params
    assert params["damage"] in ("fold", "stamp", "both")
    assert 0 < float(params["damage_fraction"]) <= 0.09


# --- readability -----------------------------------------------------------------------------------------------------


def test_captures_are_readable_with_honest_module_sizes(page: Page, shoot: Callable[[Level, int], Capture]) -> None:
    misses = {level: 0 for level in LEVELS}
    for level in LEVELS:
        for seed in range(3):
            shot = shoot(level, seed)
            found = read_qr(decode(shot), page.text)
            if found is None:
                misses[level] += 1
                continue
            if level != "scan":  # the recorded module size is the smallest local one: the symbol is not smaller
                assert module_in_image(found, page.modules) >= 0.9 * float(shot.params["module_px"])
    assert misses["scan"] == 0
    assert misses["phone-good"] == 0
    assert misses["phone-poor"] <= 1
    assert misses["hard"] <= 1


@pytest.mark.slow
def test_read_rates_per_level_are_realistic(page: Page) -> None:
    """Plain zxing-cpp reads the large majority, and not everything on the poor levels (else they are too easy)."""
    rates = {}
    for level in LEVELS:
        reads = [read_qr(decode(capture(page.image, level, 1000 + seed, page.box)), page.text) for seed in range(40)]
        rates[level] = sum(found is not None for found in reads) / len(reads)
    assert rates["scan"] >= 0.97, rates
    assert rates["phone-good"] >= 0.97, rates
    assert rates["phone-poor"] >= 0.8, rates
    assert rates["hard"] >= 0.7, rates
    assert (rates["phone-poor"] + rates["hard"]) / 2 < 1.0, rates


# --- corpus ----------------------------------------------------------------------------------------------------------


def test_corpus_goes_round_robin_per_level_and_matches_capture() -> None:
    pages = [make_page(2, 1240, 1754, 6).image, make_page(3, 1240, 1754, 6).image]
    shots = list(corpus(pages, 2, seed=9))
    assert [index for index, _ in shots] == [0, 1] * len(LEVELS)
    assert [shot.level for _, shot in shots] == [level for level in LEVELS for _ in range(2)]
    assert len({shot.seed for _, shot in shots}) == len(shots)
    for index, shot in (shots[1], shots[-1]):  # the recorded seed reproduces the capture on its own
        assert capture(pages[index], shot.level, shot.seed).data == shot.data
    again = itertools.islice(corpus(pages, 2, seed=9), 2)
    assert [shot.data for _, shot in again] == [shot.data for _, shot in shots[:2]]


def test_corpus_of_nothing_and_bad_arguments(page: Page) -> None:
    assert list(corpus([page.image], 0, seed=1)) == []
    with pytest.raises(MalformedError, match="pages"):
        corpus([], 1, seed=1)
    with pytest.raises(MalformedError, match="per_level"):
        corpus([page.image], -1, seed=1)


# --- input checks ----------------------------------------------------------------------------------------------------


SMALL = np.full((64, 64), 255, np.uint8)


@pytest.mark.parametrize(
    ("page_in", "level", "seed", "box", "field"),
    [
        (SMALL, "blurry", 0, None, "level"),
        (SMALL, "scan", -1, None, "seed"),
        (SMALL, "scan", True, None, "seed"),
        (SMALL.astype(np.float32), "scan", 0, None, "page"),
        (np.zeros((64, 64, 3), np.uint8), "scan", 0, None, "page"),
        (np.zeros((8, 64), np.uint8), "scan", 0, None, "page"),
        ([[0, 1], [2, 3]], "scan", 0, None, "page"),
        (SMALL, "hard", 0, (0, 0, 80, 80), "qr_box"),
        (SMALL, "hard", 0, (-1, 0, 30, 30), "qr_box"),
        (SMALL, "hard", 0, (0, 0, 30), "qr_box"),
        (SMALL, "hard", 0, (0, 0, 30.0, 30), "qr_box"),
    ],
)
def test_bad_input_is_rejected_with_the_field_named(
    page_in: object, level: object, seed: object, box: object, field: str
) -> None:
    with pytest.raises(MalformedError, match=field):
        capture(page_in, level, seed, box)  # type: ignore[arg-type]


@settings(max_examples=10)
@given(
    data=st.data(),
    height=st.integers(32, 96),
    width=st.integers(32, 96),
    level=st.sampled_from(LEVELS),
    seed=st.integers(0, 2**63 - 1),
)
def test_arbitrary_pages_and_boxes_capture_or_raise_malformed(
    data: st.DataObject, height: int, width: int, level: Level, seed: int
) -> None:
    pixels = data.draw(st.binary(min_size=height * width, max_size=height * width))
    image = np.frombuffer(pixels, np.uint8).reshape(height, width)
    box = data.draw(st.none() | st.tuples(*[st.integers(-5, 100)] * 4))
    try:
        shot = capture(image, level, seed, box)
    except MalformedError:
        return
    assert decode(shot).size > 0
