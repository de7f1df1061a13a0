"""Scene cuts: a new shot starts new tracks, so a track id never passes from one person
to another across a cut (a face in the same place after the cut used to inherit it).

A cut is a frame whose 32x18 grey thumbnail differs from the previous frame's by more
than ``threshold`` grey levels on average. On the Hamilton clip its three cuts measure
26-30 against a median of 2.4 between ordinary frames (and at most 12.6 within shots,
in fast motion); about 0.1 ms a frame.
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
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        thumb = cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32)
        previous, self._previous = self._previous, thumb
        return previous is not None and float(np.abs(thumb - previous).mean()) > self.threshold
