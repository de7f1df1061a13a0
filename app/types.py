"""Data types every stage speaks.

One box convention everywhere: ``x1, y1, x2, y2`` in frame pixels (float32).
Frames stay BGR uint8 until a model's own preprocessing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frame:
    index: int
    image: np.ndarray  # (H, W, 3) BGR uint8
    timestamp_ms: float


@dataclass
class Detection:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    score: float
    keypoints: np.ndarray | None = None  # (K, 2) float32 frame pixels (BlazeFace: 6)


@dataclass
class Face:
    box: np.ndarray  # (4,) float32
    score: float
    landmarks: np.ndarray | None = None  # (68, 2) float32, frame pixels; "left eye" = the subject's left
    embedding: np.ndarray | None = None  # (D,) float32, unit length
    name: str | None = None
    similarity: float | None = None
    track_id: int | None = None
    extras: dict = field(default_factory=dict)


# 68-point index groups (iBUG 300-W convention, 0-based).
JAW = range(0, 17)
RIGHT_BROW = range(17, 22)   # subject's right = image left for a frontal face
LEFT_BROW = range(22, 27)
NOSE_BRIDGE = range(27, 31)
NOSE_TIP = range(31, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
MOUTH_OUTER = range(48, 60)
MOUTH_INNER = range(60, 68)
OUTER_EYE_CORNERS = (36, 45)  # NME normaliser
