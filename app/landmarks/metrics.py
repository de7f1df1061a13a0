"""Landmark ground truth and error: iBUG ``.pts`` files and the NME used across the project."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.types import OUTER_EYE_CORNERS


def read_pts(path: str | Path) -> np.ndarray:
    """(68, 2) float32 points of an iBUG ``.pts`` file, coordinates as written in the file."""
    path = Path(path)
    lines = path.read_text().splitlines()
    try:
        start, end = lines.index("{") + 1, lines.index("}")
        points = np.array([line.split() for line in lines[start:end]], dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{path}: not an iBUG .pts file ({err})") from None
    if points.shape != (68, 2):
        raise ValueError(f"{path}: expected 68 points of (x, y), got shape {points.shape}")
    return points


def nme(pred: np.ndarray, gt: np.ndarray) -> float | np.ndarray:
    """Mean point-to-point error over the 68 points divided by the outer-eye-corner
    distance (0-based points 36 and 45) of ``gt``. Accepts (68, 2) or (N, 68, 2);
    returns a float or an (N,) array."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-2:] != (68, 2):
        raise ValueError(f"expected two arrays of shape (..., 68, 2), "
                         f"got {pred.shape} and {gt.shape}")
    right, left = OUTER_EYE_CORNERS
    norm = np.linalg.norm(gt[..., right, :] - gt[..., left, :], axis=-1)
    err = np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) / norm
    return float(err) if err.ndim == 0 else err


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(4,) float32 x1, y1, x2, y2 bounding box of a set of points."""
    points = np.asarray(points, dtype=np.float32)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (N, 4) boxes."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)
