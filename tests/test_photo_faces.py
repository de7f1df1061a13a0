"""The photo path: second chance for a face the first detector misses, the largest face,
and the head-box crop."""
import cv2
import numpy as np
import pytest

from app.align import HEAD_BOX, crop_face, head_box, head_box_transform
from app.photo_faces import PhotoFaces, detect_photo, largest
from app.types import Detection
from tests.conftest import shared

MISSED_BY_FULL_RANGE = ("identities", "lfw-view1", "Alex_Barros", "Alex_Barros_0002.jpg")


class _Fixed:
    def __init__(self, detections):
        self.detections, self.calls = detections, 0

    def detect(self, image):
        self.calls += 1
        return self.detections


def _det(x1, y1, x2, y2, score):
    return Detection(np.array([x1, y1, x2, y2], np.float32), score)


def test_second_chance_only_when_the_first_finds_nothing():
    image = np.zeros((10, 10, 3), np.uint8)
    found, second = _Fixed([_det(0, 0, 5, 5, 0.9)]), _Fixed([_det(1, 1, 4, 4, 0.8)])
    assert detect_photo(image, found, second) == found.detections and second.calls == 0
    assert detect_photo(image, _Fixed([]), second) == second.detections


def test_the_largest_face_is_the_photos_face_not_the_best_scored():
    small, big = _det(0, 0, 10, 10, 0.99), _det(20, 20, 80, 80, 0.6)
    assert largest([small, big]) is big and largest([]) is None


def test_head_box_crop_maps_the_box_plus_margin_onto_the_square():
    points = np.random.default_rng(0).uniform(50, 150, (68, 2)).astype(np.float32)
    x1, y1, x2, y2 = head_box(points)
    assert y1 < points[:, 1].min() and x2 < points[:, 0].max()   # above the brows, MTCNN-like
    matrix = head_box_transform(points, margin=0.2)
    corners = np.array([[x1 - 0.1 * (x2 - x1), y1 - 0.1 * (y2 - y1), 1],
                        [x2 + 0.1 * (x2 - x1), y2 + 0.1 * (y2 - y1), 1]])
    np.testing.assert_allclose(corners @ matrix.T, [[0, 0], [160, 160]], atol=1e-3)
    with pytest.raises(ValueError, match="unknown crop"):
        crop_face(np.zeros((200, 200, 3), np.uint8), points, "square")


def test_a_close_face_full_range_misses_is_found_by_the_second_chance():
    path = shared(*MISSED_BY_FULL_RANGE)
    image = cv2.imread(str(path))
    finder = PhotoFaces(crop=HEAD_BOX)
    try:
        assert finder._detector.detect(image) == []       # the video path's detector misses it
        points = finder.landmarks(image)
        assert points is not None and finder.crop(path).shape == (160, 160, 3)
        x1, y1, x2, y2 = head_box(points)                   # the face LFW centres on
        assert abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 30
    finally:
        finder.close()
