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
    media_ms: float | None = None   # a file's frame: its presentation time (PTS) in the file


@dataclass
class Detection:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    score: float
    keypoints: np.ndarray | None = None  # (K, 2) float32 frame pixels (BlazeFace: 6)


@dataclass(frozen=True)
class Match:
    """One gallery lookup: the best enrolled person (None: below the threshold, or nobody
    enrolled for this model) and the cosine similarity to them (None: nobody enrolled)."""
    name: str | None
    similarity: float | None


@dataclass
class TrackState:
    """What the tracker says of a face this frame (``app.stages.track``)."""
    embed_reason: str | None = None   # "new", "jump", "reverify", ... or None: not due
    event: str | None = None          # "new" or "jump" in the frame where that happened
    checked: bool = False             # matched against the gallery at least once

    @property
    def needs_embedding(self) -> bool:
        return self.embed_reason is not None


@dataclass
class Face:
    box: np.ndarray  # (4,) float32
    score: float
    landmarks: np.ndarray | None = None  # (68, 2) float32, frame pixels; "left eye" = the subject's left
    landmark_model: str | None = None    # the model whose points ``landmarks`` holds
    # Every model's points when several ran this frame (side by side), by model name.
    landmark_sets: dict[str, np.ndarray] = field(default_factory=dict)
    aligned: np.ndarray | None = None    # (160, 160, 3) BGR crop the embedding was made from
    embedding: np.ndarray | None = None  # (D,) float32, unit length
    match: Match | None = None           # this frame's gallery match (before the track's vote)
    name: str | None = None              # the track's voted name (None: unknown / not yet)
    similarity: float | None = None
    track_id: int | None = None
    track: TrackState = field(default_factory=TrackState)


@dataclass
class FrameResult:
    """One processed frame: its faces and what each stage cost."""
    frame: Frame
    faces: list[Face]
    stage_ms: dict[str, float]
    landmark_ms_per_face: dict[str, float] = field(default_factory=dict)
    disagreement_nme: float | None = None  # mean NME between CNN and dlib ("both" mode)


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
