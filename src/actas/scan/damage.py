"""Physical damage to the printed page (the ``hard`` level): a fold and/or an ink stamp, aimed at the QR.

It acts on the paper before any photo is taken, so it is kept apart from the camera model; and its one promise,
that the damage stays recoverable, is checked on its own. The footprint (``_Damage.mask``, True = damaged pixel)
covers at most 9 % of the QR box (level M recovers ~15 % of codewords), a stamp at least 3 % of it, and nothing
within 9 modules of the three finder corners (pattern 7, separator 1, margin 1) nor one module outside the box
there.

* Fold: a crease band along a near-horizontal line (tilt ±4°, profile σ 1.2–2.5 px), dark on one side and bright
  on the other where the ink cracked; the paper beyond it is offset by up to min(2 px, 0.25 module) and lit by a
  facet factor 0.86–0.97. In three cases of four it crosses the QR between its finder rows (if the band fits the
  budget there); otherwise it runs clear of the QR near a third of the page height, or is left out when neither
  third is clear.
* Stamp: round (radius 110–190 px, rings, letters around and across) or rectangular (300–460 × 140–220 px, tilted
  ±12°, two lines of letters); a translucent body (12–35 %) with strokes at 60–95 %, unevenly inked. It is placed
  over one edge of the QR, away from the finders, with up to 120 tries to fit the budget. Its ink (blue, violet,
  red or black: a BGR transmission) is laid on the colour capture by ``_ink``, after the camera's blur.
* Without a known QR box the fold takes a third of the page and the stamp a random spot (untargeted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from actas.scan.camera import (
    _ASSUMED_MODULE,
    F64,
    U8,
    Box,
    Mask,
    Params,
    Rng,
    _Blur,
    _blur,
    _module_size,
    _Qr,
    _smooth_noise,
    _u8,
)

_FINDER_ZONE = 9  # modules from each finder corner kept free of damage: pattern 7, separator 1, margin 1
_DAMAGE_BUDGET = 0.09  # largest damaged fraction of the QR box; level M recovers ~15 % of codewords
_INKS: dict[str, tuple[float, float, float]] = {  # BGR transmission of stamp inks
    "blue": (0.78, 0.38, 0.22),
    "violet": (0.72, 0.30, 0.55),
    "red": (0.30, 0.28, 0.85),
    "black": (0.22, 0.22, 0.22),
}
_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


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


def _finder_zones(box: Box, module: float) -> list[tuple[int, int, int, int]]:
    """Rectangles (x0, y0, x1, y1) around the three finder patterns that damage must never touch."""
    x, y, w, h = box
    zone, pad = math.ceil(_FINDER_ZONE * module), math.ceil(module)
    return [
        (x - pad, y - pad, x + zone, y + zone),
        (x + w - zone, y - pad, x + w + pad, y + zone),
        (x - pad, y + h - zone, x + zone, y + h + pad),
    ]


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


def _between(rng: Rng, one: float, other: float) -> float:
    """Uniform between two bounds in either order (a tiny page or QR can invert a computed range)."""
    return float(rng.uniform(min(one, other), max(one, other)))


# --- stamp ink on the capture -------------------------------------------------------------------------------------


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
