"""Photo simulator: seeded, reproducible captures of a printed acta at named difficulty levels.

``capture(page, level, seed)`` turns a rendered page (a 2-D ``uint8`` grey array or a PIL image, converted to
mode "L"; typically A4 at 300 dpi, 2480 × 3508 px, with a QR code of ≥ 6 px per module) into the image file a
flatbed scanner or a phone camera would write. Every parameter is drawn from ``np.random.default_rng(seed)`` (no
global random state) in a fixed order, so the same inputs give the same bytes; ``Capture.params`` records them.

Levels:

* ``scan``: flatbed. Skew ±2°, scale 0.67–1.0 (200–300 dpi), Gaussian blur σ 0.3–0.7 px, noise σ 0.8–2.5 grey
  levels, the page on a white or grey lid; a grey PNG (40 %) or a colour JPEG of quality 85–95.
* ``phone-good``: each page corner moved up to 6 % of the page size (perspective), rotation k·90° ± 10°, Gaussian
  blur σ 0.3–0.9 px, noise σ 1.5–3.5, mild uneven light, vignetting and glare (≤ 25 %), a desk around the page
  (wood, dark, grey or cloth); a 4:3 frame with long side 3000–4000 px, the page filling 70–92 % of it (more if
  the QR would get under 3 px per module); JPEG quality 70–90.
* ``phone-poor``: corners moved up to 12 %, rotation 0–360°, a Gaussian, motion or defocus blur kept under a QR
  module (σ ≤ 0.35, length ≤ 0.85, radius ≤ 0.45 module), noise σ 3–8, strong uneven light with a shadow whose
  edge may be sharp or soft (darkest part 25 % of the brightest), glare blending up to 75 % towards white (a flash
  reflection near the frame centre when the light is dim); long side 1600–2400 px; JPEG quality 40–70. The page is
  scaled so the QR gets 2.8–3.6 px per module in its worst direction (≈ 3 px): the frame may show margins or crop
  the page, never the QR.
* ``hard``: phone-poor conditions on damaged paper: a fold (a crease band, dark on one side and bright where the
  ink cracked, with the paper beyond it offset by ≤ 0.25 module and lit differently) and/or an ink stamp (a
  translucent disc or rectangle with a border and letter strokes, in blue, violet, red or black ink) over an edge
  of the QR. The damage footprint covers at most 9 % of the QR box (a stamp at least 3 %) and never touches the
  three finder patterns (9 modules from each of those corners, plus one module outside the box).

Troubles come together, as in real photos: one latent "badness" per capture (recorded) draws the blur extent,
noise, JPEG quality, glare and (``phone-poor``, ``hard``) module size near the same end of their ranges, so the
worst captures are bad in several ways at once while most are merely mediocre.

Geometry is honest: the page→image homography is known, and the module size at the QR follows from its local
Jacobian (smallest singular value). The QR box (x, y, w, h on the page) is given, or found on the clean page with
OpenCV's detector at half resolution (``phone-poor`` and ``hard`` only); the module size is measured along the
diagonal of the top-left finder pattern (runs 1:1:3:1:1). Without a box, ``phone-poor`` assumes 6 px per module at
the page centre and ``hard`` places its damage without targeting the QR.

Phone pipeline, in luminance until the colour step: damage → tone curve (paper white, ink black, gamma) → halvings
(``pyrDown``) while the scale is below 0.55 → perspective warp onto the desk texture → light field (vignette,
gradient, shadow, exposure) → blur → sensor noise (2 px grain) → colour: blue and red gains of the white balance on
the page and of the desk colour around it (fields at 1/4–1/8 resolution, bilinearly enlarged) → stamp ink
(multiplicative, per channel) → JPEG with 4:2:0 chroma, as phones write it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from actas.errors import ActasError, MalformedError

Level = Literal["scan", "phone-good", "phone-poor", "hard"]
LEVELS: tuple[Level, ...] = ("scan", "phone-good", "phone-poor", "hard")

Box = tuple[int, int, int, int]
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Params = dict[str, float | int | str]
Rng = np.random.Generator

_ASSUMED_MODULE = 6.0  # px per module on the page when the QR cannot be measured: the input contract's minimum
_FINDER_ZONE = 9  # modules from each finder corner kept free of damage: pattern 7, separator 1, margin 1
_DAMAGE_BUDGET = 0.09  # largest damaged fraction of the QR box; level M recovers ~15 % of codewords
_MAX_SIDE = 16384
_GAUSS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])  # byte → standard normal quantile
_INKS: dict[str, tuple[float, float, float]] = {  # BGR transmission of stamp inks
    "blue": (0.78, 0.38, 0.22),
    "violet": (0.72, 0.30, 0.55),
    "red": (0.30, 0.28, 0.85),
    "black": (0.22, 0.22, 0.22),
}
_DESKS: dict[str, tuple[float, float, float]] = {  # green level, blue/green and red/green of the surface
    "wood": (92.0, 0.60, 1.50),
    "dark": (36.0, 1.05, 0.92),
    "grey": (160.0, 1.05, 0.95),
    "cloth": (78.0, 1.60, 0.67),
}
_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True, slots=True)
class Capture:
    """One simulated capture: the encoded image file and what produced it."""

    data: bytes
    format: Literal["jpeg", "png"]
    level: Level
    seed: int
    params: dict[str, float | int | str]

    def __post_init__(self) -> None:
        if not self.data:
            raise MalformedError("capture.data: empty image file")
        if self.format not in ("jpeg", "png"):
            raise MalformedError(f"capture.format: expected 'jpeg' or 'png', got {self.format!r}")
        if self.level not in LEVELS:
            raise MalformedError(f"capture.level: expected one of {LEVELS}, got {self.level!r}")


@dataclass(frozen=True, slots=True)
class _Qr:
    """Where the QR sits on the page: its box, measured module size (px) and how the box was obtained."""

    box: Box | None
    module: float | None
    source: str


@dataclass(frozen=True, slots=True)
class _Frame:
    """The camera's view: page→image homography, image size, page scale and the QR module size in the image."""

    homography: F64
    width: int
    height: int
    scale: float
    module_px: float


@dataclass(frozen=True, slots=True)
class _Blur:
    """Optical blur: its kind, extent in image px (σ, length or radius) and normalised kernel."""

    kind: str
    extent: float
    kernel: F32


@dataclass(frozen=True, slots=True)
class _Stamp:
    """Stamp ink as an alpha crop placed at (x, y) on the page, with its BGR transmission."""

    alpha: U8
    x: int
    y: int
    ink: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class _Damage:
    """A damaged page, the damage footprint (True = damaged pixel) and the stamp, inked later in colour."""

    page: U8
    mask: Mask
    stamp: _Stamp | None
    params: Params


def capture(page: np.ndarray | Image.Image, level: Level, seed: int, qr_box: Box | None = None) -> Capture:
    """Simulate one capture of ``page``; ``qr_box`` (x, y, w, h on the page) lets framing and damage target the QR."""
    gray = _as_gray(page)
    if level not in LEVELS:
        raise MalformedError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    seed = _count("seed", seed)
    box = None if qr_box is None else _checked_box(qr_box, gray.shape)
    return _capture(gray, level, seed, _resolve_qr(gray, box, detect=level in ("phone-poor", "hard")))


def corpus(pages: Sequence[np.ndarray | Image.Image], per_level: int, seed: int) -> Iterator[tuple[int, Capture]]:
    """Yield (page index, capture): ``per_level`` captures per level in LEVELS order, round-robin over ``pages``."""
    grays = [_as_gray(page) for page in pages]
    per_level, seed = _count("per_level", per_level), _count("seed", seed)
    if per_level and not grays:
        raise MalformedError("pages: empty sequence")
    return _corpus(grays, per_level, seed)


def _corpus(grays: list[U8], per_level: int, seed: int) -> Iterator[tuple[int, Capture]]:
    located: dict[int, _Qr] = {}  # each page's QR is located once, on first need
    for level_index, level in enumerate(LEVELS):
        for i in range(per_level):
            index = i % len(grays)
            if level in ("phone-poor", "hard") and index not in located:
                located[index] = _resolve_qr(grays[index], None, detect=True)
            qr = located.get(index, _Qr(None, None, "unknown"))
            state = np.random.SeedSequence([seed, level_index, i]).generate_state(1, np.uint64)
            yield index, _capture(grays[index], level, int(state[0]) >> 1, qr)


def _capture(gray: U8, level: Level, seed: int, qr: _Qr) -> Capture:
    rng = np.random.default_rng(seed)
    params: Params = {"qr": qr.source}
    if level == "scan":
        data, fmt = _scan(gray, rng, params)
    else:
        data, fmt = _phone(gray, level, qr, rng, params), "jpeg"
    return Capture(data=data, format=fmt, level=level, seed=seed, params=params)


# --- input checks and QR geometry ---------------------------------------------------------------------------------


def _as_gray(page: object) -> U8:
    if isinstance(page, Image.Image):
        array = np.asarray(page.convert("L"), dtype=np.uint8)
    elif isinstance(page, np.ndarray):
        if page.dtype != np.uint8 or page.ndim != 2:
            raise MalformedError(f"page: expected a 2-D uint8 array, got a {page.ndim}-D {page.dtype} array")
        array = page
    else:
        raise MalformedError(f"page: expected a numpy array or a PIL image, got {type(page).__name__}")
    height, width = array.shape
    if not (32 <= height <= _MAX_SIDE and 32 <= width <= _MAX_SIDE):
        raise MalformedError(f"page: size {width}x{height} outside 32..{_MAX_SIDE} px per side")
    return np.ascontiguousarray(array)


def _count(name: str, value: object) -> int:
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_) and int(value) >= 0:
        return int(value)
    raise MalformedError(f"{name}: expected a non-negative integer, got {value!r}")


def _checked_box(box: object, shape: tuple[int, ...]) -> Box:
    parts = box if isinstance(box, tuple) else ()
    values = [int(v) for v in parts if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)]
    if len(parts) != 4 or len(values) != 4:
        raise MalformedError(f"qr_box: expected a tuple (x, y, w, h) of integers, got {box!r}")
    x, y, w, h = values
    if w < 21 or h < 21 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise MalformedError(f"qr_box: {box} is not a box of ≥ 21 px inside the {shape[1]}x{shape[0]} page")
    return (x, y, w, h)


def _resolve_qr(gray: U8, box: Box | None, detect: bool) -> _Qr:
    source = "given"
    if box is None and detect:
        box, source = _locate_qr(gray), "detected"
    if box is None:
        return _Qr(None, None, "unknown")
    return _Qr(box, _module_size(gray, box), source)


def _locate_qr(gray: U8) -> Box | None:
    """Find the QR on the clean page with OpenCV's detector at half resolution (4× faster, same corners)."""
    try:
        found, points = cv2.QRCodeDetector().detect(cv2.pyrDown(gray))
    except cv2.error:
        return None
    if not found or points is None:
        return None
    corners = np.asarray(points, dtype=np.float64).reshape(-1, 2) * 2.0
    x0, y0 = (max(0, int(v)) for v in np.floor(corners.min(axis=0)))
    x1, y1 = (
        int(min(gray.shape[1], np.ceil(corners[:, 0].max()))),
        int(min(gray.shape[0], np.ceil(corners[:, 1].max()))),
    )
    return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 21 and y1 - y0 >= 21 else None


def _module_size(gray: U8, box: Box) -> float | None:
    """Module size from the runs 1:1:3:1:1 met along the diagonal of the top-left finder pattern, or None."""
    x, y, w, h = box
    steps = np.arange(min(w, h) // 2)
    dark = gray[y + steps, x + steps] < 128
    bounds = np.concatenate(([0], np.flatnonzero(dark[1:] != dark[:-1]) + 1, [len(dark)]))
    runs = [(bool(dark[a]), int(b - a)) for a, b in itertools.pairwise(bounds)]
    if runs and not runs[0][0]:
        runs = runs[1:]  # a box drawn a little outside the symbol starts on the quiet zone
    if len(runs) < 6:
        return None
    lengths = np.array([length for _, length in runs[:5]], dtype=np.float64)
    module = float(lengths.sum()) / 7.0
    if module < 1.0 or not np.allclose(lengths / module, (1, 1, 3, 1, 1), atol=0.6):
        return None
    return module


def _finder_zones(box: Box, module: float) -> list[tuple[int, int, int, int]]:
    """Rectangles (x0, y0, x1, y1) around the three finder patterns that damage must never touch."""
    x, y, w, h = box
    zone, pad = math.ceil(_FINDER_ZONE * module), math.ceil(module)
    return [
        (x - pad, y - pad, x + zone, y + zone),
        (x + w - zone, y - pad, x + w + pad, y + zone),
        (x - pad, y + h - zone, x + zone, y + h + pad),
    ]


# --- flatbed scanner ----------------------------------------------------------------------------------------------


def _scan(gray: U8, rng: Rng, params: Params) -> tuple[bytes, Literal["jpeg", "png"]]:
    height, width = gray.shape
    scale, skew = rng.uniform(0.67, 1.0), rng.uniform(-2.0, 2.0)
    extra_x, extra_y = rng.uniform(16, 120), rng.uniform(16, 120)  # lid visible beside the page, page px
    lid = rng.uniform(236, 252) if rng.random() < 0.7 else rng.uniform(150, 205)
    out_w, out_h = round((width + extra_x) * scale), round((height + extra_y) * scale)
    affine = np.asarray(cv2.getRotationMatrix2D((width / 2, height / 2), skew, 1.0), dtype=np.float64)
    affine[:, 2] += np.array([rng.uniform(0, extra_x), rng.uniform(0, extra_y)])
    tone = _tone(rng.uniform(232, 250), rng.uniform(8, 35), rng.uniform(0.9, 1.1))
    lid_plate = np.full((out_h, out_w), round(lid), np.uint8)
    image = _u8(
        cv2.warpAffine(
            cv2.LUT(gray, tone), affine * scale, (out_w, out_h), dst=lid_plate, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
    )  # fmt: skip
    sigma, noise = rng.uniform(0.3, 0.7), rng.uniform(0.8, 2.5)
    image = _add_noise(_blur(image, _gaussian(sigma)), noise, 1, rng)
    params.update(
        width=out_w, height=out_h, scale=round(scale, 4), dpi=round(300 * scale), rotation_deg=round(skew, 3),
        lid=round(lid), blur="gaussian", blur_px=round(sigma, 3), noise_sigma=round(noise, 3),
    )  # fmt: skip
    if rng.random() < 0.4:
        params.update(color="grey")
        # zlib dominates the time of a noisy page: no row filter, Huffman coding only
        fast = [
            cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_NONE,
            cv2.IMWRITE_PNG_STRATEGY,
            cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
        ]
        return _encode(image, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, *fast]), "png"
    quality, warmth = int(rng.integers(85, 96)), rng.uniform(-0.2, 0.2)
    blue, red = _white_balance(warmth)
    colour = _u8(cv2.merge([cv2.LUT(image, _gain_lut(blue)), image, cv2.LUT(image, _gain_lut(red))]))
    params.update(color="bgr", jpeg_quality=quality, warmth=round(warmth, 3))
    return _encode(colour, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]), "jpeg"


# --- phone camera -------------------------------------------------------------------------------------------------


def _phone(gray: U8, level: Level, qr: _Qr, rng: Rng, params: Params) -> bytes:
    poor = level != "phone-good"
    damage = _damage(gray, qr, rng) if level == "hard" else None
    if damage is not None:
        params.update(damage.params)
    bad = rng.uniform()  # one latent badness: dim light brings noise and blur, cheap phones low resolution
    frame = _frame(gray.shape, qr, poor, bad, rng, params)
    size = (frame.width, frame.height)
    tone = _tone(rng.uniform(222, 245), rng.uniform(25, 55) if poor else rng.uniform(18, 45), rng.uniform(0.85, 1.15))
    desk = tuple(_DESKS)[int(rng.integers(len(_DESKS)))]
    source, halvings = (gray if damage is None else damage.page), 0
    while frame.scale * 2**halvings < 0.55:  # a Gaussian pyramid stands in for the sensor's pixel area
        source, halvings = _u8(cv2.pyrDown(source)), halvings + 1
    step = 8 if max(size) > 2800 else 4  # light and colour fields: ~500 px, smooth enough to enlarge
    small = (math.ceil(frame.height / step), math.ceil(frame.width / step))
    to_frame = frame.homography @ np.diag([2.0**halvings, 2.0**halvings, 1.0])
    desk_plate = _enlarge(_desk_texture(small, desk, rng), size)
    image = _u8(
        cv2.warpPerspective(
            cv2.LUT(source, tone), to_frame, size, dst=desk_plate, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
    )  # fmt: skip
    light, unglared = _light_field(small, poor, bad, rng, params)
    image = _u8(cv2.multiply(image, _enlarge(light, size), scale=1 / 128))
    image = _u8(cv2.bitwise_not(cv2.multiply(cv2.bitwise_not(image), _enlarge(unglared, size), scale=1 / 255)))
    blur = _blur_kernel(poor, frame.module_px, bad, rng, params)
    noise = _worse(rng, bad, 3.0, 8.0) if poor else _worse(rng, bad, 1.5, 3.5)
    image = _add_noise(_blur(image, blur), noise, 2, rng)
    gains = _colour_field(small, _apply(frame.homography, _corners(gray.shape)) / step, desk, rng, params)
    channels = [_u8(cv2.multiply(image, _enlarge(gains[:, :, c], size), scale=1 / 128)) for c in range(2)]
    channels.insert(1, image)  # green is the luminance plane itself; blue and red carry the colour gains
    if damage is not None and damage.stamp is not None:
        channels = _ink(channels, damage.stamp, frame.homography, blur)
    quality = round(_worse(rng, bad, 70, 40) if poor else _worse(rng, bad, 90, 70))
    params.update(desk=desk, badness=round(bad, 3), noise_sigma=round(noise, 3), jpeg_quality=quality)
    params.update(halvings=halvings)
    return _encode(_u8(cv2.merge(channels)), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


def _enlarge(field: U8, size: tuple[int, int]) -> U8:
    """A low-resolution field enlarged bilinearly to the frame size (width, height)."""
    return _u8(cv2.resize(np.ascontiguousarray(field), size, interpolation=cv2.INTER_LINEAR))


def _corners(shape: tuple[int, ...]) -> F64:
    return np.array([[0, 0], [shape[1], 0], [shape[1], shape[0]], [0, shape[0]]], np.float64)


def _frame(shape: tuple[int, ...], qr: _Qr, poor: bool, bad: float, rng: Rng, params: Params) -> _Frame:
    """Perspective, rotation, frame size and framing; a poor photo is scaled for its QR module size (cropping the
    page if need be, never the QR), a good one to fit the page in the frame."""
    height, width = shape
    spread = 0.12 if poor else 0.06
    rotation = rng.uniform(0, 360) if poor else 90 * int(rng.integers(4)) + rng.uniform(-10, 10)
    corners = _corners(shape)
    moved = corners + rng.uniform(-spread, spread, (4, 2)) * (width, height) - (width / 2, height / 2)
    turn = math.radians(rotation)
    quad = moved @ np.array([[math.cos(turn), math.sin(turn)], [-math.sin(turn), math.cos(turn)]])
    unit = np.asarray(cv2.getPerspectiveTransform(corners.astype(np.float32), quad.astype(np.float32)), np.float64)
    long_side = int(rng.integers(1600, 2401) if poor else rng.integers(3000, 4001))
    span = quad.max(axis=0) - quad.min(axis=0)
    frame_w, frame_h = (long_side, long_side * 3 // 4) if span[0] > span[1] else (long_side * 3 // 4, long_side)
    x, y, w, h = qr.box if qr.box is not None else (width // 2, height // 2, 1, 1)
    local = _local_scale(unit, (x + w / 2, y + h / 2))
    module_page = qr.module or _ASSUMED_MODULE
    if poor:
        scale = _worse(rng, bad, 3.6, 2.8) / (module_page * local)
    else:  # fit the page, unless that would leave the QR under 3 px per module
        scale = max(rng.uniform(0.70, 0.92) * min(frame_w / span[0], frame_h / span[1]), 3 / (module_page * local))
    module_px = module_page * local * scale
    fill = float(scale * max(span[0] / frame_w, span[1] / frame_h))
    page_out = _apply(unit, corners) * scale
    qr_out = _apply(unit, np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)) * scale
    margin = 5 * module_px + 8  # quiet zone and a little more
    shift_x = _offset(page_out[:, 0], qr_out[:, 0], frame_w, margin, rng)
    shift_y = _offset(page_out[:, 1], qr_out[:, 1], frame_h, margin, rng)
    homography = np.array([[scale, 0, shift_x], [0, scale, shift_y], [0, 0, 1]]) @ unit
    params.update(
        width=frame_w, height=frame_h, rotation_deg=round(rotation % 360, 3), perspective=spread,
        scale=round(float(scale), 4), fill=round(fill, 3), module_px=round(float(module_px), 3),
    )  # fmt: skip
    return _Frame(homography, frame_w, frame_h, float(scale), float(module_px))


def _apply(homography: F64, points: F64) -> F64:
    mapped = np.column_stack([points, np.ones(len(points))]) @ homography.T
    return np.asarray(mapped[:, :2] / mapped[:, 2:], dtype=np.float64)


def _local_scale(homography: F64, point: tuple[float, float]) -> float:
    """Smallest stretch of the homography at ``point``: how small a page pixel gets in its worst direction."""
    (a, b, c), (d, e, f), (g, h, i) = homography
    x, y = point
    w = g * x + h * y + i
    u, v = (a * x + b * y + c) / w, (d * x + e * y + f) / w
    jacobian = np.array([[a - u * g, b - u * h], [d - v * g, e - v * h]]) / w
    return float(np.linalg.svd(jacobian, compute_uv=False).min())


def _offset(page: F64, qr: F64, size: int, margin: float, rng: Rng) -> float:
    """Shift along one axis: the whole page inside the frame if it fits, else a crop that keeps the QR inside."""
    low, high = -page.min(), size - page.max()
    if low <= high:
        return float(rng.uniform(low, high))
    low, high = max(high, margin - qr.min()), min(low, size - margin - qr.max())
    if low > high:
        return float(size / 2 - (qr.min() + qr.max()) / 2)
    return float(rng.uniform(low, high))


def _tone(white: float, black: float, gamma: float) -> U8:
    return np.round(black + (white - black) * np.linspace(0.0, 1.0, 256) ** gamma).astype(np.uint8)


def _gain_lut(gain: float) -> U8:
    return np.clip(np.round(np.arange(256) * gain), 0, 255).astype(np.uint8)


def _white_balance(warmth: float) -> tuple[float, float]:
    """Blue and red gains (green = 1) of a light from cool daylight (warmth -1) to warm indoor light (+1)."""
    return 1 - 0.10 * warmth, 1 + 0.07 * warmth


def _between(rng: Rng, one: float, other: float) -> float:
    """Uniform between two bounds in either order (a tiny page or QR can invert a computed range)."""
    return float(rng.uniform(min(one, other), max(one, other)))


def _worse(rng: Rng, bad: float, best: float, worst: float) -> float:
    """A value between ``best`` and ``worst``, drawn near the capture's badness so that troubles come together."""
    return best + (worst - best) * float(np.clip(bad + rng.normal(0, 0.2), 0, 1))


def _smooth_noise(shape: tuple[int, int], cells: int, rng: Rng) -> F32:
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), dtype=np.float32)


def _grid(shape: tuple[int, int]) -> tuple[F32, F32]:
    """Coordinates centred on the frame, from -0.5 to 0.5 on each axis."""
    u = ((np.arange(shape[1]) + 0.5) / shape[1] - 0.5)[None, :].astype(np.float32)
    v = ((np.arange(shape[0]) + 0.5) / shape[0] - 0.5)[:, None].astype(np.float32)
    return u, v


def _desk_texture(shape: tuple[int, int], desk: str, rng: Rng) -> U8:
    """Green level of the surface around the page at field resolution: wood grain or a mottled plain surface."""
    level = _DESKS[desk][0] * rng.uniform(0.8, 1.2)
    texture = level * (1 + 0.07 * _smooth_noise(shape, 6, rng))
    if desk == "wood":
        u, v = _grid(shape)
        angle = rng.uniform(0, math.pi)
        along = (u * math.cos(angle) + v * math.sin(angle)) * shape[1] * rng.uniform(0.05, 0.12)
        texture *= 1 + 0.18 * np.sin(along + 2.5 * _smooth_noise(shape, 5, rng))
    return _u8(np.clip(texture, 0, 255))


def _light_field(shape: tuple[int, int], poor: bool, bad: float, rng: Rng, params: Params) -> tuple[U8, U8]:
    """Light ×128 (vignette × gradient × soft shadow, exposed on the brightest part) and glare ×255, low-res."""
    u, v = _grid(shape)
    vignette = rng.uniform(0.15, 0.35) if poor else rng.uniform(0.05, 0.15)
    light = 1 - vignette * 2 * (u * u + v * v)
    slope, tilt = (rng.uniform(0.2, 0.45) if poor else rng.uniform(0.0, 0.15)), rng.uniform(0, 2 * math.pi)
    light *= 1 - slope * ((u * math.cos(tilt) + v * math.sin(tilt)) / 1.42 + 0.5)
    depth = rng.uniform(0.3, 0.55) if poor else rng.uniform(0.0, 0.12)
    edge, soft = rng.uniform(0, 2 * math.pi), (rng.uniform(0.002, 0.05) if poor else rng.uniform(0.05, 0.2))
    across = (u * math.cos(edge) + v * math.sin(edge) - rng.uniform(-0.3, 0.3)) / soft
    light *= 1 - depth / (1 + np.exp(-np.clip(across, -30, 30)))
    floor, low = (0.25 if poor else 0.7), float(light.min())  # exposure keeps the darkest part above the floor
    if low < floor:
        light = floor + (light - low) * (1 - floor) / (1 - low)
    light *= rng.uniform(0.95, 1.06) / float(light.max())
    # Glare, blending towards white (screen) without saturating: in dim light the flash fires and its reflection
    # sits near the frame centre; otherwise a lamp or window is reflected anywhere.
    peak = _worse(rng, bad, 0.1, 0.75) if poor else _worse(rng, bad, 0.0, 0.25)
    flash = rng.uniform() < bad
    spot_u, spot_v = rng.normal(0, 0.12, 2) if flash else rng.uniform(-0.4, 0.4, 2)
    spread = rng.uniform(0.06, 0.2)
    glare = peak * np.exp(-((u - spot_u) ** 2 + (v - spot_v) ** 2) / (2 * spread**2))
    params.update(vignette=round(vignette, 3), gradient=round(slope, 3), shadow=round(depth, 3))
    params.update(light_min=round(float(light.min()), 3), glare=round(peak, 3), flash=int(flash))
    return (
        np.clip(np.round(light * 128), 0, 255).astype(np.uint8),
        np.clip(np.round(255 * (1 - glare)), 0, 255).astype(np.uint8),
    )


def _colour_field(shape: tuple[int, int], page_quad: F64, desk: str, rng: Rng, params: Params) -> U8:
    """Blue and red gains ×128 (green = 1): the white balance on the page, the desk's own colour around it."""
    page = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(page, np.round(page_quad * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4)
    on_page = (page.astype(np.float32) / 255)[:, :, None]
    warmth = rng.uniform(-1.0, 1.0)
    paper = np.array(_white_balance(warmth), np.float32)
    surface = paper * np.array(_DESKS[desk][1:], np.float32)
    params.update(warmth=round(warmth, 3))
    return np.clip(np.round((on_page * paper + (1 - on_page) * surface) * 128), 0, 255).astype(np.uint8)


def _blur_kernel(poor: bool, module: float, bad: float, rng: Rng, params: Params) -> _Blur:
    """A blur whose extent stays a fraction of a QR module at the capture's scale."""
    kind = ("gaussian", "motion", "defocus")[int(rng.integers(3))] if poor else "gaussian"
    if not poor:
        extent = rng.uniform(0.3, 0.9)
    else:  # the worst case of each kind still leaves a module's centre distinguishable
        extent = module * {"gaussian": 0.35, "motion": 0.85, "defocus": 0.45}[kind] * _worse(rng, bad, 0.3, 1.0)
    params.update(blur=kind, blur_px=round(extent, 3))
    if kind == "gaussian":
        return _gaussian(extent)
    kernel = _supersampled(kind, extent, rng.uniform(0, math.pi))
    return _Blur(kind, extent, np.asarray(kernel / kernel.sum(), dtype=np.float32))


def _supersampled(kind: str, extent: float, angle: float) -> F64:
    """A segment of length ``extent`` or a disc of radius ``extent``, drawn 8× finer and area-averaged."""
    half, fine = math.ceil(extent) + 1, 8
    canvas = np.zeros(((2 * half + 1) * fine,) * 2, np.float32)
    centre = canvas.shape[0] * 8  # in 1/16 px units (shift=4)
    if kind == "defocus":
        cv2.circle(canvas, (centre, centre), round(extent * fine * 16), 1.0, -1, cv2.LINE_AA, 4)
    else:
        dx, dy = round(math.cos(angle) * extent * fine * 8), round(math.sin(angle) * extent * fine * 8)
        cv2.line(canvas, (centre - dx, centre - dy), (centre + dx, centre + dy), 1.0, fine, cv2.LINE_AA, 4)
    return np.asarray(cv2.resize(canvas, (2 * half + 1,) * 2, interpolation=cv2.INTER_AREA), dtype=np.float64)


def _blur(image: U8, blur: _Blur) -> U8:
    if blur.kind == "gaussian":  # OpenCV's fixed-point separable path is 3× faster than the same 2-D filter
        size = blur.kernel.shape[0]
        return _u8(cv2.GaussianBlur(image, (size, size), blur.extent, borderType=cv2.BORDER_REFLECT))
    return _u8(cv2.filter2D(image, -1, blur.kernel, borderType=cv2.BORDER_REFLECT))


def _gaussian(sigma: float) -> _Blur:
    """A Gaussian blur cut at ~2σ: small kernels keep a 12 MP blur near 10 ms."""
    taps = np.exp(-0.5 * (np.arange(-math.ceil(2 * sigma), math.ceil(2 * sigma) + 1) / sigma) ** 2)
    return _Blur("gaussian", sigma, np.asarray(np.outer(taps, taps) / np.outer(taps, taps).sum(), dtype=np.float32))


def _ink(channels: list[U8], stamp: _Stamp, homography: F64, blur: _Blur) -> list[U8]:
    """Lay the stamp's ink over the capture: per channel, a transmission 1 - alpha·(1 - ink)."""
    place = homography @ np.array([[1, 0, stamp.x], [0, 1, stamp.y], [0, 0, 1]], np.float64)
    height, width = channels[0].shape
    alpha = _blur(_u8(cv2.warpPerspective(stamp.alpha, place, (width, height), flags=cv2.INTER_LINEAR)), blur)
    out = []
    for channel, transmission in zip(channels, stamp.ink, strict=True):
        through = cv2.convertScaleAbs(alpha, alpha=-(1 - transmission), beta=255)
        out.append(np.asarray(cv2.multiply(channel, through, scale=1 / 255), dtype=np.uint8))
    return out


def _add_noise(image: U8, sigma: float, grain: int, rng: Rng) -> U8:
    """Add Gaussian noise of ``sigma`` grey levels, drawn at 1/grain resolution (the grain of a phone's ISP)."""
    height, width = image.shape
    small = (math.ceil(height / grain), math.ceil(width / grain))
    draws = np.frombuffer(rng.bytes(small[0] * small[1]), np.uint8).reshape(small)
    boost = 1.0 if grain == 1 else 1.35  # bilinear enlargement averages part of the variance away
    centred = cv2.LUT(draws, np.clip(np.round(128 + _GAUSS * sigma * boost), 0, 255).astype(np.uint8))
    if grain > 1:
        centred = cv2.resize(centred, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(cv2.addWeighted(image, 1.0, centred, 1.0, -128.0), dtype=np.uint8)


def _u8(image: object) -> U8:
    """An OpenCV result (typed loosely by its stubs) as the uint8 array it is."""
    return np.asarray(image, dtype=np.uint8)


def _encode(image: U8, extension: str, options: list[int]) -> bytes:
    ok, buffer = cv2.imencode(extension, image, options)
    if not ok:
        raise ActasError(f"image encoder failed for {extension}")
    return bytes(buffer)


# --- physical damage (hard level) ---------------------------------------------------------------------------------


def _damage(page: U8, qr: _Qr | Box | None, rng: Rng) -> _Damage:
    """Fold and/or stamp the page; the footprint stays within the QR budget and off the finder patterns."""
    if not isinstance(qr, _Qr):
        qr = _Qr(None, None, "unknown") if qr is None else _Qr(qr, _module_size(page, qr), "given")
    target = (qr.box, qr.module) if qr.box is not None and qr.module is not None else None
    kind = ("fold", "stamp", "both")[int(rng.integers(3))]
    out, mask = page, np.zeros(page.shape, bool)
    params: Params = {"damage": kind, "damage_targeted": int(target is not None)}
    if kind != "stamp":
        out = _fold(page, mask, target, rng, params)
    stamp = _place_stamp(page.shape, mask, target, rng, params) if kind != "fold" else None
    if target is not None:
        params.update(damage_fraction=round(_fraction(mask, target[0]), 4))
    return _Damage(page=out, mask=mask, stamp=stamp, params=params)


def _fraction(mask: Mask, box: Box) -> float:
    x, y, w, h = box
    return float(mask[y : y + h, x : x + w].mean())


def _fold(page: U8, mask: Mask, target: tuple[Box, float] | None, rng: Rng, params: Params) -> U8:
    """A crease: dark/bright band along a near-horizontal line; the paper beyond it offset and lit differently."""
    height, width = page.shape
    tilt = math.radians(rng.uniform(-4, 4))
    slope = math.tan(tilt)
    width_px = rng.uniform(1.2, 2.5)  # crease profile σ, page px
    module = target[1] if target is not None else _ASSUMED_MODULE
    heading = rng.uniform(0, 2 * math.pi)
    shift = _between(rng, 0.5, min(2.0, 0.25 * module)) * np.array([math.cos(heading), math.sin(heading)])
    reach = 3.5 * width_px + float(np.abs(shift).max())
    anchor_x, anchor_y = width / 2, _fold_row(page.shape, slope, reach, target, rng)
    if anchor_y is None:
        params.update(fold="none")
        return page
    ends = anchor_y + slope * (np.array([0, width]) - anchor_x)
    top = max(0, int(ends.min() - reach) - 2)
    bottom = min(height, int(ends.max() + reach) + 3)
    if top >= bottom:  # a page too small for the fold's row
        params.update(fold="none")
        return page
    cols = np.arange(width, dtype=np.float32)
    rows = np.arange(top, bottom, dtype=np.float32)[:, None]
    across = (rows - anchor_y - slope * (cols - anchor_x)) * math.cos(tilt)  # signed distance, + below the line
    moved = cv2.warpAffine(
        page[top:],
        np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float64),
        (width, height - top),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    facet = rng.uniform(0.86, 0.97)
    moved = cv2.convertScaleAbs(moved, alpha=facet)
    out = page.copy()
    out[bottom:] = moved[bottom - top :]
    band = np.where(across > 0, moved[: bottom - top], page[top:bottom]).astype(np.float32)
    dark, bright = rng.uniform(0.25, 0.55), rng.uniform(0.15, 0.6)  # the bright side: ink cracked along the fold
    band *= 1 - dark * np.exp(-0.5 * ((across - width_px) / width_px) ** 2)
    band += (255 - band) * bright * np.exp(-0.5 * ((across + width_px) / width_px) ** 2)
    out[top:bottom] = np.clip(np.round(band), 0, 255).astype(np.uint8)
    mask[top:bottom] |= np.abs(across) <= reach
    params.update(
        fold="crossing" if target is not None and _crosses(target[0], ends) else "clear",
        fold_row=round(anchor_y, 1),
        fold_deg=round(math.degrees(tilt), 3),
        fold_offset_px=round(float(np.hypot(*shift)), 3),
        fold_facet=round(facet, 3),
    )
    return out


def _crosses(box: Box, ends: npt.NDArray[np.float64]) -> bool:
    return bool(ends.max() >= box[1] and ends.min() <= box[1] + box[3])


def _fold_row(
    shape: tuple[int, ...], slope: float, reach: float, target: tuple[Box, float] | None, rng: Rng
) -> float | None:
    """Row of the fold at the page's middle column: across the QR between its finder rows, or clear of the QR."""
    height, width = shape
    thirds = [height / 3 + rng.uniform(-40, 40), 2 * height / 3 + rng.uniform(-40, 40)]
    if target is None:
        return thirds[int(rng.integers(2))]
    (x, y, w, h), module = target
    middle = x + w / 2 - width / 2  # the QR's centre column, relative to the page's middle column
    if rng.random() < 0.75 and 2 * reach / h <= 0.045:  # cross only where the band fits the damage budget
        zone = (_FINDER_ZONE + 1) * module
        sway = abs(slope) * (w / 2 + module)
        low, high = y + zone + reach + sway, y + h - zone - reach - sway
        if low < high:
            return rng.uniform(low, high) - slope * middle
    sway = abs(slope) * (w / 2 + module)
    clear = [row for row in thirds if abs(row + slope * middle - (y + h / 2)) > h / 2 + reach + sway + module]
    return clear[int(rng.integers(len(clear)))] if clear else None


def _place_stamp(
    shape: tuple[int, ...], mask: Mask, target: tuple[Box, float] | None, rng: Rng, params: Params
) -> _Stamp | None:
    """Put a stamp over an edge of the QR (away from its finders) so the damaged fraction stays within budget."""
    art, footprint = _draw_stamp(rng, params)
    ink = tuple(_INKS)[int(rng.integers(len(_INKS)))]
    params.update(stamp_ink=ink)
    tall, wide = art.shape
    height, width = shape
    if target is None:
        spot = (int(rng.integers(0, max(1, width - wide))), int(rng.integers(0, max(1, height - tall))))
        return _stamped(art, footprint, spot, mask, _INKS[ink], params)
    (x, y, w, h), module = target
    zone = _FINDER_ZONE * module
    base = _fraction(mask, (x, y, w, h))
    for _ in range(120):
        side, depth = int(rng.integers(4)), rng.uniform(0.05, 0.45)
        if side == 0:  # right edge, below the top-right finder
            centre = (x + w + wide * (0.5 - depth), _between(rng, y + zone, y + h))
        elif side == 1:  # bottom edge, right of the bottom-left finder
            centre = (_between(rng, x + zone, x + w), y + h + tall * (0.5 - depth))
        elif side == 2:  # left edge, between the two left finders
            centre = (x - wide * (0.5 - depth), _between(rng, y + zone, y + h - zone))
        else:  # top edge, between the two top finders
            centre = (_between(rng, x + zone, x + w - zone), y - tall * (0.5 - depth))
        spot = (round(centre[0] - wide / 2), round(centre[1] - tall / 2))
        if any(_overlap(footprint, spot, zone_box).any() for zone_box in _finder_zones((x, y, w, h), module)):
            continue
        inside = mask[y : y + h, x : x + w].copy()
        inside |= _overlap(footprint, spot, (x, y, x + w, y + h))
        if base + 0.03 <= float(inside.mean()) <= _DAMAGE_BUDGET:
            params.update(stamp_side=("right", "bottom", "left", "top")[side])
            return _stamped(art, footprint, spot, mask, _INKS[ink], params)
    params.update(stamp_side="none")
    return None


def _overlap(footprint: Mask, spot: tuple[int, int], rect: tuple[int, int, int, int]) -> Mask:
    """The footprint placed at ``spot``, seen through ``rect`` (x0, y0, x1, y1): a mask of the rect's shape."""
    x0, y0, x1, y1 = rect
    view = np.zeros((y1 - y0, x1 - x0), bool)
    left, top = max(x0, spot[0]), max(y0, spot[1])
    right, bottom = min(x1, spot[0] + footprint.shape[1]), min(y1, spot[1] + footprint.shape[0])
    if left < right and top < bottom:
        view[top - y0 : bottom - y0, left - x0 : right - x0] = footprint[
            top - spot[1] : bottom - spot[1], left - spot[0] : right - spot[0]
        ]
    return view


def _stamped(
    art: U8, footprint: Mask, spot: tuple[int, int], mask: Mask, ink: tuple[float, float, float], params: Params
) -> _Stamp:
    height, width = mask.shape
    mask |= _overlap(footprint, spot, (0, 0, width, height))
    params.update(stamp_x=spot[0], stamp_y=spot[1])
    return _Stamp(alpha=art, x=spot[0], y=spot[1], ink=ink)


def _draw_stamp(rng: Rng, params: Params) -> tuple[U8, Mask]:
    """A rubber stamp as ink alpha: translucent body, border rings or frames, letters; and its footprint."""
    pad, thick = 10, int(rng.integers(5, 10))
    body, stroke = round(rng.uniform(0.12, 0.35) * 255), round(rng.uniform(0.6, 0.95) * 255)
    weight = max(3, 2 * thick // 3)  # letter strokes
    if rng.random() < 0.6:
        radius = int(rng.integers(110, 190))
        size = 2 * (radius + pad)
        art = np.zeros((size, size), np.uint8)
        centre = (size // 2, size // 2)
        inner = round(radius * rng.uniform(0.62, 0.72))
        cv2.circle(art, centre, radius, body, -1, cv2.LINE_AA)
        cv2.circle(art, centre, radius - thick // 2, stroke, thick, cv2.LINE_AA)
        cv2.circle(art, centre, inner, stroke, max(2, thick // 2), cv2.LINE_AA)
        count, start = int(rng.integers(12, 22)), rng.uniform(0, 2 * math.pi)
        ring = (radius + inner) / 2
        for k in range(count):
            turn = start + 2 * math.pi * k / count
            spot = (centre[0] + ring * math.cos(turn), centre[1] + ring * math.sin(turn))
            _text(art, _word(1, rng), spot, (radius - inner) * 0.5, 2 * inner, stroke, weight)
        _text(art, _word(int(rng.integers(3, 7)), rng), centre, inner * 0.35, 1.4 * inner, stroke, weight)
        shape_name = "round"
    else:
        wide, tall = int(rng.integers(300, 461)), int(rng.integers(140, 221))
        size = math.ceil(math.hypot(wide, tall)) + 2 * pad
        art = np.zeros((size, size), np.uint8)
        x0, y0 = (size - wide) // 2, (size - tall) // 2
        cv2.rectangle(art, (x0, y0), (x0 + wide, y0 + tall), body, -1, cv2.LINE_AA)
        cv2.rectangle(art, (x0, y0), (x0 + wide, y0 + tall), stroke, thick, cv2.LINE_AA)
        for line in range(2):
            spot = (size / 2, y0 + tall * (0.32 + 0.4 * line))
            word = _word(int(rng.integers(5, 11)), rng)
            _text(art, word, spot, tall * 0.22, wide * 0.85, stroke, weight)
        tilt = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-12, 12), 1.0)
        art = _u8(cv2.warpAffine(art, tilt, (size, size), flags=cv2.INTER_LINEAR))
        shape_name = "rect"
    footprint = art > 0
    worn = np.clip(0.78 + 0.22 * _smooth_noise(art.shape, 5, rng), 0.45, 1.0)  # uneven inking of the rubber
    params.update(stamp=shape_name, stamp_alpha=round(stroke / 255, 3))
    return np.round(art * worn).astype(np.uint8), footprint


def _word(length: int, rng: Rng) -> str:
    return "".join(_GLYPHS[int(i)] for i in rng.integers(len(_GLYPHS), size=length))


def _text(
    art: U8, text: str, centre: tuple[float, float], height: float, width: float, value: int, weight: int
) -> None:
    """Draw ``text`` centred on ``centre``, scaled to ``height`` px and at most ``width`` px wide."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (size_w, size_h), _ = cv2.getTextSize(text, font, 1.0, weight)
    scale = min(height / max(size_h, 1), width / max(size_w, 1))
    (size_w, size_h), _ = cv2.getTextSize(text, font, scale, weight)
    origin = (round(centre[0] - size_w / 2), round(centre[1] + size_h / 2))
    cv2.putText(art, text, origin, font, scale, value, weight, cv2.LINE_AA)
