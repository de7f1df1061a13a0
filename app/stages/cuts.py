"""Scene cuts: a new shot starts new tracks, so a track id never passes from one person
to another across a cut (a face in the same place after the cut used to inherit it).

A cut is a frame whose 32x18 colour thumbnail (bilinear: a sample, not an average, so
it costs 0.004 ms instead of INTER_AREA's 0.09 ms on a 640x360 frame, the main thread's
time) differs from the previous frame's by more than ``threshold`` levels on average. On
the Hamilton clip its three cuts measure 27.8-30.8 against a median of 4.7 between
ordinary frames and at most 14.3 within shots (fast motion).
"""
from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = (32, 18)
CUT_THRESHOLD = 20.0


class CutDetector:
    def __init__(self, threshold: float = CUT_THRESHOLD):
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def is_cut(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot (False for the first frame)."""
        thumb = cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_LINEAR).astype(np.float32)
        previous, self._previous = self._previous, thumb
        return previous is not None and float(np.abs(thumb - previous).mean()) > self.threshold
