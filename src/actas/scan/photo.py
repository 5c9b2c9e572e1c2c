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

Code: ``photo`` checks the inputs, draws each level's parameters in order and composes the steps; the physical
damage lives in ``actas.scan.damage``, the camera model (QR measurement, framing, light, optics, sensor, encoding)
in ``actas.scan.camera``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from actas.errors import MalformedError
from actas.scan.camera import (
    _DESKS,
    U8,
    Box,
    Params,
    Rng,
    _add_noise,
    _apply,
    _blur,
    _blur_kernel,
    _colour_field,
    _corners,
    _desk_texture,
    _encode,
    _enlarge,
    _frame,
    _gain_lut,
    _gaussian,
    _light_field,
    _Qr,
    _resolve_qr,
    _tone,
    _u8,
    _white_balance,
    _worse,
)
from actas.scan.damage import _damage, _ink

Level = Literal["scan", "phone-good", "phone-poor", "hard"]
LEVELS: tuple[Level, ...] = ("scan", "phone-good", "phone-poor", "hard")

_MAX_SIDE = 16384


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


# --- input checks -------------------------------------------------------------------------------------------------


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
