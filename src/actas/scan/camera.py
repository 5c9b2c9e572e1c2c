"""Camera model of the photo simulator: where the camera points and what it does to the light on its way to a file.

``photo`` composes these steps into the captures of each level; they live apart so that the orchestration reads as
a list of steps and each effect can be read and tuned on its own. Every function draws from the ``rng`` it is
given, in the order it is called, so a capture stays a pure function of its seed.

* QR on the page: the box (x, y, w, h) is given, or found on the clean page with OpenCV's detector at half
  resolution; the module size is measured along the diagonal of the top-left finder pattern (runs 1:1:3:1:1).
  When it cannot be measured, 6 px per module is assumed (the input contract's minimum).
* Framing: each page corner moved by up to a fraction of the page size, a rotation, a 4:3 frame. The page→image
  homography is known, and the module size at the QR follows from its local Jacobian (smallest singular value):
  a poor photo is scaled for its module size (cropping the page if need be, never the QR), a good one to fit the
  page in the frame.
* Light and colour, computed at 1/4–1/8 of the frame and enlarged bilinearly: the desk texture around the page,
  vignette × gradient × shadow with the exposure on the brightest part, glare blending towards white, and the
  blue and red gains of the white balance on the page and of the desk colour around it. Tone curves map paper
  white, ink black and gamma.
* Optics and sensor: Gaussian, motion or defocus blur (kernels drawn 8× finer and area-averaged), Gaussian noise
  from a byte → normal quantile table at 1 or 2 px grain; then PNG or JPEG encoding.
* ``_worse`` draws a value near the capture's latent badness, so that troubles come together.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from actas.errors import ActasError

Box = tuple[int, int, int, int]
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Params = dict[str, float | int | str]
Rng = np.random.Generator

_ASSUMED_MODULE = 6.0  # px per module on the page when the QR cannot be measured: the input contract's minimum
_GAUSS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])  # byte → standard normal quantile
_DESKS: dict[str, tuple[float, float, float]] = {  # green level, blue/green and red/green of the surface
    "wood": (92.0, 0.60, 1.50),
    "dark": (36.0, 1.05, 0.92),
    "grey": (160.0, 1.05, 0.95),
    "cloth": (78.0, 1.60, 0.67),
}


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


# --- QR on the page -----------------------------------------------------------------------------------------------


def _resolve_qr(gray: U8, box: Box | None, detect: bool) -> _Qr:
    source = "given"
    if box is None and detect:
        box, source = _locate_qr(gray), "detected"
    if box is None:
        return _Qr(None, None, "unknown")
    return _Qr(box, _module_size(gray, box), source)


def _locate_qr(gray: U8) -> Box | None:
    """Find the QR on the clean page: OpenCV's detector at half resolution (4× faster), else zxing-cpp.

    OpenCV misses the symbol on some clean pages; without its box the capture would be framed around the page
    centre and could cut the QR off, which no witness aiming a phone at it would do.
    """
    try:
        found, points = cv2.QRCodeDetector().detect(cv2.pyrDown(gray))
    except cv2.error:
        found, points = False, None
    if found and points is not None:
        corners = np.asarray(points, dtype=np.float64).reshape(-1, 2) * 2.0
    else:
        symbols = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
        if not symbols:
            return None
        where = symbols[0].position
        corners = np.array(
            [(p.x, p.y) for p in (where.top_left, where.top_right, where.bottom_right, where.bottom_left)],
            dtype=np.float64,
        )
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


# --- framing ------------------------------------------------------------------------------------------------------


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


# --- light, colour and surroundings -------------------------------------------------------------------------------


def _enlarge(field: U8, size: tuple[int, int]) -> U8:
    """A low-resolution field enlarged bilinearly to the frame size (width, height)."""
    return _u8(cv2.resize(np.ascontiguousarray(field), size, interpolation=cv2.INTER_LINEAR))


def _tone(white: float, black: float, gamma: float) -> U8:
    return np.round(black + (white - black) * np.linspace(0.0, 1.0, 256) ** gamma).astype(np.uint8)


def _gain_lut(gain: float) -> U8:
    return np.clip(np.round(np.arange(256) * gain), 0, 255).astype(np.uint8)


def _white_balance(warmth: float) -> tuple[float, float]:
    """Blue and red gains (green = 1) of a light from cool daylight (warmth -1) to warm indoor light (+1)."""
    return 1 - 0.10 * warmth, 1 + 0.07 * warmth


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


# --- optics and sensor --------------------------------------------------------------------------------------------


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


# --- draws, arrays and files --------------------------------------------------------------------------------------


def _worse(rng: Rng, bad: float, best: float, worst: float) -> float:
    """A value between ``best`` and ``worst``, drawn near the capture's badness so that troubles come together."""
    return best + (worst - best) * float(np.clip(bad + rng.normal(0, 0.2), 0, 1))


def _u8(image: object) -> U8:
    """An OpenCV result (typed loosely by its stubs) as the uint8 array it is."""
    return np.asarray(image, dtype=np.uint8)


def _encode(image: U8, extension: str, options: list[int]) -> bytes:
    ok, buffer = cv2.imencode(extension, image, options)
    if not ok:
        raise ActasError(f"image encoder failed for {extension}")
    return bytes(buffer)
