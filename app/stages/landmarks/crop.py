"""Square crops around a detector box for the landmark CNN, and the way back to frame pixels.

Geometry of a crop rule ``{"scale": s, "dx": dx, "dy": dy}`` applied to a box (x1, y1, x2, y2):

    w, h   = x2 - x1, y2 - y1
    centre = ((x1 + x2) / 2 + dx * w,  (y1 + y2) / 2 + dy * h)
    side   = s * max(w, h)
    square = left, top = centre - side / 2, rounded to whole pixels; side rounded likewise

The square is cut from the frame with zero (black) padding wherever it leaves the
frame -- never clipped and stretched -- and resized to the network input. A network
output u in [0, 1] of the crop maps back as ``x = left + u * side - 0.5`` (the crop's
left edge is the left edge of pixel ``left``; -0.5 converts to the pixel-index
convention where the centre of pixel i is x = i). The same holds for y with ``top``.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..images import check_box

RULE_KEYS = ("scale", "dx", "dy")


def check_rule(rule: dict) -> dict:
    """Return ``rule`` as {scale, dx, dy} floats, or raise ValueError."""
    try:
        out = {key: float(rule[key]) for key in RULE_KEYS}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"expected a crop rule with keys {RULE_KEYS}, got {rule!r}") from None
    if not out["scale"] > 0:
        raise ValueError(f"crop rule scale must be > 0, got {out['scale']}")
    return out


def square_for_box(box, rule: dict) -> np.ndarray:
    """(3,) int64 left, top, side of the square crop for ``box`` under ``rule``."""
    x1, y1, x2, y2 = check_box(box).astype(np.float64)
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + rule["dx"] * w
    cy = (y1 + y2) / 2 + rule["dy"] * h
    side = max(1, int(round(rule["scale"] * max(w, h))))
    return np.array([round(cx - side / 2), round(cy - side / 2), side], dtype=np.int64)


def cut_square(image: np.ndarray, square: np.ndarray, size: int) -> np.ndarray:
    """(size, size, C) crop of ``image`` at ``square`` (left, top, side), zero-padded outside
    the frame, resized with area averaging when shrinking and bilinear when enlarging."""
    left, top, side = (int(v) for v in square)
    h, w = image.shape[:2]
    if left >= 0 and top >= 0 and left + side <= w and top + side <= h:
        canvas = image[top:top + side, left:left + side]   # inside: a view, no copy
    else:
        canvas = _padded(image, left, top, side)
    if side == size:
        return np.ascontiguousarray(canvas)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


def _padded(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The square at left, top with zeros wherever it leaves the frame."""
    h, w = image.shape[:2]
    canvas = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    fx0, fy0 = max(left, 0), max(top, 0)
    fx1, fy1 = min(left + side, w), min(top + side, h)
    if fx1 > fx0 and fy1 > fy0:
        canvas[fy0 - top:fy1 - top, fx0 - left:fx1 - left] = image[fy0:fy1, fx0:fx1]
    return canvas


def to_frame(points01: np.ndarray, square: np.ndarray) -> np.ndarray:
    """Map (..., 68, 2) crop fractions back to frame pixels (pixel-index convention)."""
    left, top, side = (float(v) for v in square)
    return (np.asarray(points01, dtype=np.float32) * side
            + np.array([left, top], dtype=np.float32) - 0.5).astype(np.float32)


def to_frame_many(points01: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """(N, 68, 2) crop fractions of N squares (N, 3) -> frame pixels, as ``to_frame``."""
    squares = np.asarray(squares, np.float32)
    return (np.asarray(points01, np.float32) * squares[:, None, 2:3]
            + squares[:, None, :2] - np.float32(0.5)).astype(np.float32)
