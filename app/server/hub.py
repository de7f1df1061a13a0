"""The latest processed frame, for any number of watchers.

The pipeline thread only hands over each result (:meth:`FrameHub.publish`, no copy, no
drawing, no encoding). A watcher asks for the JPEG of the newest frame
(:meth:`FrameHub.jpeg`): it is drawn and encoded once per frame, by whichever watcher asks
first, and every other watcher gets the same bytes; nothing is encoded while nobody asks.
A slow watcher just asks less often, so it gets the newest frame, never a queue.
"""
from __future__ import annotations

import threading
from typing import Callable

import cv2
import numpy as np

from ..types import FrameResult

JPEG_QUALITY = 80


class FrameHub:
    """``render(result)`` draws a result (boxes, names, landmarks) as a BGR picture."""

    def __init__(self, render: Callable[[FrameResult], np.ndarray],
                 quality: int = JPEG_QUALITY):
        self._render = render
        self._quality = quality
        self._lock = threading.Lock()          # guards the latest result and the counters
        self._encode_lock = threading.Lock()   # one encoding at a time
        self._latest: FrameResult | None = None
        self._cache: tuple[int, bytes, float] | None = None   # (index, JPEG, capture ms)
        self.watchers = 0                     # open MJPEG streams
        self.encoded = 0                      # frames encoded so far (tests: once per frame)

    def publish(self, result: FrameResult) -> None:
        with self._lock:
            self._latest = result

    @property
    def latest(self) -> FrameResult | None:
        with self._lock:
            return self._latest

    @property
    def index(self) -> int:
        """The latest frame's index (-1 before the first)."""
        latest = self.latest
        return -1 if latest is None else latest.frame.index

    def jpeg(self) -> tuple[int, bytes, float] | None:
        """(frame index, JPEG bytes, the frame's capture time on ``now_ms``'s clock) of
        the newest frame, encoded at most once; None before the first frame."""
        with self._encode_lock:
            result = self.latest
            if result is None:
                return None
            if self._cache is not None and self._cache[0] == result.frame.index:
                return self._cache
            picture = self._render(result)
            ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            if not ok:
                raise RuntimeError("could not encode the frame as JPEG")
            self.encoded += 1
            self._cache = (result.frame.index, data.tobytes(), result.frame.timestamp_ms)
            return self._cache

    def watching(self, delta: int) -> None:
        with self._lock:
            self.watchers += delta
