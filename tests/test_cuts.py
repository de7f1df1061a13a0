"""Scene cuts on the real clip: its three cuts are found, nothing else; after a cut the
tracker gives new ids."""
from __future__ import annotations

import cv2

from app.stages.cuts import CutDetector
from tests.conftest import shared


def test_the_hamilton_clip_has_three_cuts():
    capture = cv2.VideoCapture(str(shared("video", "short_hamilton_clip.mp4")))
    detector, cuts, index = CutDetector(), [], 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if detector.is_cut(image):
                cuts.append(index)
            index += 1
    finally:
        capture.release()
    assert index > 250 and cuts == [20, 82, 211]
