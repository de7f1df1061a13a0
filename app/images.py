"""Checks shared by every model wrapper: a frame is (H, W, 3) uint8 BGR."""
from __future__ import annotations

import numpy as np


def check_bgr_frame(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an image of shape (H, W, 3) BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8 (BGR 0..255), got {image.dtype}")


def check_box(box) -> np.ndarray:
    """Return ``box`` as a (4,) float32 x1, y1, x2, y2 array, or raise ValueError."""
    arr = np.asarray(box, dtype=np.float32).reshape(-1)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected a box [x1, y1, x2, y2], got {box!r}")
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {arr.tolist()}")
    return arr
