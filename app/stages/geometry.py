"""Boxes and point sets: the one implementation of each small geometric idea.

Boxes are ``x1, y1, x2, y2`` in frame pixels (x2, y2 exclusive), as everywhere.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import OUTER_EYE_CORNERS


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of each of (..., 4) boxes (0 for inverted ones)."""
    boxes = np.asarray(boxes, np.float64)
    return (np.clip(boxes[..., 2] - boxes[..., 0], 0, None)
            * np.clip(boxes[..., 3] - boxes[..., 1], 0, None))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (M, 4) and ``b`` (N, 4) -> (M, N); 0 for empty unions."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (N, 4) boxes -> (N,)."""
    return iou_matrix(box, boxes)[0]


def largest(items: Sequence, box=lambda item: item.box):
    """The item with the largest box (faces, detections), or None for none."""
    if not items:
        return None
    return max(items, key=lambda item: float(box_area(box(item))))


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(4,) float32 x1, y1, x2, y2 bounding box of a set of points."""
    points = np.asarray(points, dtype=np.float32)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


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
