"""Detection ahead on worker threads: frames come back in order, every one detected once,
errors reach the caller."""
from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from app.sources.detect_ahead import DetectAhead
from app.types import Frame


class _Frames:
    """A finite source speaking the capture protocol (app.protocols.Source)."""

    is_live, fps, frame_count, path, dropped, error = False, None, None, None, 0, None

    def __init__(self, count: int):
        self._left = list(range(count))
        self.ended = False

    def start(self) -> "_Frames":
        return self

    def stop(self) -> None:
        self.ended = True

    def read(self, timeout: float = 0.1):
        if not self._left:
            self.ended = True
            return None
        i = self._left.pop(0)
        return Frame(i, np.full((4, 4, 3), i % 256, np.uint8), float(i))


def _slow_detect(seen: list, lock: threading.Lock):
    def detect(image):
        time.sleep(random.uniform(0, 0.004))   # workers finish out of order
        with lock:
            seen.append(int(image[0, 0, 0]))
        return [int(image[0, 0, 0])], 1.0
    return detect


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_frame_order_each_frame_once(workers):
    random.seed(workers)
    seen, lock = [], threading.Lock()
    ahead = DetectAhead(_Frames(60), [_slow_detect(seen, lock) for _ in range(workers)], depth=3)
    got = []
    while (item := ahead.get()) is not None:
        frame, detections, _ = item
        assert detections == [frame.index % 256]
        got.append(frame.index)
    ahead.stop()
    assert got == list(range(60)) and sorted(seen) == list(range(60))


def test_a_worker_error_is_raised_to_the_caller():
    def broken(image):
        raise RuntimeError("detector failed")

    ahead = DetectAhead(_Frames(5), [broken, broken], depth=3)
    with pytest.raises(RuntimeError, match="detector failed"):
        while ahead.get() is not None:
            pass
    ahead.stop()
