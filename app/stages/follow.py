"""Boxes between detections: the detector runs every few frames, and in between each
face's box comes from the landmarks just placed on it (MediaPipe FaceMesh runs its
detector the same way, only when tracking needs it).

At a detection frame each face's detector box is stored relative to the extent of its
68 points (centre offset and size, in units of that extent). On the next frame the box
is that same relation applied to the points placed in this frame, so the landmark CNN
gets the kind of box its crop rule was fitted to (``models/landmarks/cnn68/io.json`` is
per detector) and the box moves with the face.

The detector runs again (:meth:`BoxFollower.wants_detection`) every ``every`` frames on
the clock (frame numbers, so detection can run ahead on other threads), and at once when a followed face looks lost: its points' extent changed size
by more than ``FIT_SCALE`` or moved by more than ``FIT_SHIFT`` of its size in one frame
(the CNN placing points on something that is no longer a face), or its box left the
picture. A scene cut asks for it too (the pipeline's cut detector).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Face

DETECT_EVERY = 4     # frames: see README "How it runs" for the measurement behind it
FIT_SCALE = 1.25     # landmark extent size change in one frame that means the fit broke
FIT_SHIFT = 0.35     # landmark extent centre shift (x its size) in one frame, same
MIN_INSIDE = 0.5     # a followed box must keep this share of its area in the picture


@dataclass(frozen=True)
class Followed:
    """A face to look for in the next frame: its box, the detector's score for it and
    its box-to-points relation (dx, dy, sw, sh)."""
    track_id: int
    box: np.ndarray
    score: float
    relation: np.ndarray


class BoxFollower:
    """Which frames run the detector, and the boxes of the frames that do not."""

    def __init__(self, every: int = DETECT_EVERY):
        if every < 1:
            raise ValueError(f"detect every must be >= 1 frame, got {every}")
        self.every = every
        self._relations: dict[int, np.ndarray] = {}   # track -> (dx, dy, sw, sh)
        self._extents: dict[int, np.ndarray] = {}     # track -> last (cx, cy, w, h)
        self._next: list[Followed] = []
        self._lost = True         # a face was lost (or nothing ran yet): detect now

    def wants_detection(self, frame_index: int) -> bool:
        """Whether frame ``frame_index`` should run the detector: on the clock, or at once
        after a face was lost (or before anything was seen)."""
        return self._lost or self.scheduled(frame_index)

    def scheduled(self, frame_index: int) -> bool:
        """The clock alone, by frame number (detection run ahead on other threads reads
        it too)."""
        return frame_index % self.every == 0

    def faces(self) -> list[Face]:
        """The faces to landmark in a frame without detections, at their followed boxes
        (where they were in the frame before), in :meth:`refine`'s order."""
        return [Face(box=f.box.copy(), score=f.score) for f in self._next]

    def refine(self, faces: list[Face]) -> None:
        """Once :meth:`faces` have their points: each box moves to where the points say
        the face is in this frame (what the detector's box would have been)."""
        for face, followed in zip(faces, self._next):
            if face.landmarks is not None:
                face.box = _apply(followed.relation, _extent(face.landmarks))

    def observe(self, faces: list[Face], detected: bool, shape: tuple[int, ...]) -> None:
        """After a frame's landmarks and tracking: learn each face's box-to-points relation
        (a detection frame) or check the fit (a followed frame), and set the next boxes."""
        self._lost = False
        height, width = shape[:2]
        follow, extents = [], {}
        for face in faces:
            if face.track_id is None or face.landmarks is None:
                continue
            extent = _extent(face.landmarks)
            if detected:
                self._relations[face.track_id] = _relation(face.box, extent)
            elif self._broke(face.track_id, extent):
                self._lost = True
                continue
            relation = self._relations.get(face.track_id)
            if relation is None:
                continue
            box = _apply(relation, extent)
            if _inside_share(box, width, height) < MIN_INSIDE:
                self._lost = True
                continue
            extents[face.track_id] = extent
            follow.append(Followed(face.track_id, box, face.score, relation))
        self._next, self._extents = follow, extents
        self._relations = {t: r for t, r in self._relations.items() if t in extents}

    def reset(self) -> None:
        """A cut: nothing carries over; the next frame runs the detector."""
        self._relations.clear()
        self._extents.clear()
        self._next = []
        self._lost = True

    def _broke(self, track_id: int, extent: np.ndarray) -> bool:
        before = self._extents.get(track_id)
        if before is None:
            return True
        size, size_before = float(np.mean(extent[2:])), float(np.mean(before[2:]))
        ratio = size / max(size_before, 1e-6)
        shift = float(np.hypot(*(extent[:2] - before[:2]))) / max(size_before, 1e-6)
        return not (1 / FIT_SCALE <= ratio <= FIT_SCALE) or shift > FIT_SHIFT


def _extent(points: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) of the points' bounding box."""
    low, high = points.min(axis=0), points.max(axis=0)
    return np.array([*(low + high) / 2, *(high - low)], np.float64)


def _relation(box: np.ndarray, extent: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(extent[2], 1e-6), max(extent[3], 1e-6)
    return np.array([((x1 + x2) / 2 - extent[0]) / w, ((y1 + y2) / 2 - extent[1]) / h,
                     (x2 - x1) / w, (y2 - y1) / h])


def _apply(relation: np.ndarray, extent: np.ndarray) -> np.ndarray:
    dx, dy, sw, sh = relation
    cx, cy = extent[0] + dx * extent[2], extent[1] + dy * extent[3]
    half_w, half_h = sw * extent[2] / 2, sh * extent[3] / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)


def _inside_share(box: np.ndarray, width: int, height: int) -> float:
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(x2 - x1, 1e-6) * max(y2 - y1, 1e-6)
    inside = max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))
    return inside / area
