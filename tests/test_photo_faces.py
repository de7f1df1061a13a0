"""The photo path: second chance for a face the first detector misses, the largest face,
and the head-box crop."""
import cv2
import numpy as np
import pytest

from app.people.photo_faces import detect_photo, main_face
from app.stages.align import HEAD_BOX, crop_face, head_box, head_box_transform
from app.stages.geometry import largest
from app.types import Detection
from tests.conftest import shared

MISSED_BY_FULL_RANGE = ("identities", "lfw-view1", "Alex_Barros", "Alex_Barros_0002.jpg")
# Full range finds only the man at the top left; the photo is of Rumsfeld, in the middle.
CENTRE_MISSED_BY_FULL_RANGE = ("identities", "lfw-view1", "Donald_Rumsfeld",
                               "Donald_Rumsfeld_0041.jpg")


class _Fixed:
    def __init__(self, detections):
        self.detections, self.calls = detections, 0

    def detect(self, image):
        self.calls += 1
        return self.detections


def _det(x1, y1, x2, y2, score):
    return Detection(np.array([x1, y1, x2, y2], np.float32), score)


def test_the_second_range_adds_only_confident_large_faces_the_first_did_not_find():
    image = np.zeros((100, 100, 3), np.uint8)
    first = _Fixed([_det(0, 0, 50, 50, 0.6)])
    same, new = _det(2, 2, 48, 48, 0.8), _det(60, 60, 90, 90, 0.75)
    unsure, small = _det(60, 0, 95, 35, 0.6), _det(70, 70, 90, 90, 0.9)
    assert detect_photo(image, first, _Fixed([same, new, unsure, small])) == \
        [new] + first.detections                                  # best score first
    assert detect_photo(image, _Fixed([]), _Fixed([unsure, small])) == [small, unsure]
    assert detect_photo(image, first, None) == first.detections


def test_the_main_face_is_big_and_central_not_the_best_scored():
    small, big = _det(0, 0, 10, 10, 0.99), _det(20, 20, 80, 80, 0.6)
    assert largest([small, big]) is big and largest([]) is None
    assert main_face([small, big], (100, 100, 3)) is big and main_face([], (9, 9, 3)) is None
    # a bigger face at the edge loses to a slightly smaller one in the middle
    edge, middle = _det(100, 0, 200, 100, 0.9), _det(60, 60, 140, 140, 0.9)
    assert largest([edge, middle]) is edge and main_face([edge, middle], (200, 200, 3)) is middle


def test_head_box_crop_maps_the_box_plus_margin_onto_the_square():
    points = np.random.default_rng(0).uniform(50, 150, (68, 2)).astype(np.float32)
    x1, y1, x2, y2 = head_box(points)
    extent = points[:, 0].max() - points[:, 0].min()
    assert x2 - x1 == pytest.approx(0.965 * extent, rel=1e-4)       # MTCNN-like, fixed aspect
    assert y2 - y1 == pytest.approx(1.337 * (x2 - x1), rel=1e-4)
    points_open_mouth = points.copy()
    points_open_mouth[8, 1] += 30                                    # the chin drops
    np.testing.assert_allclose(head_box(points_open_mouth), head_box(points))
    matrix = head_box_transform(points, margin=0.2, level_eyes=False)
    corners = np.array([[x1 - 0.1 * (x2 - x1), y1 - 0.1 * (y2 - y1), 1],
                        [x2 + 0.1 * (x2 - x1), y2 + 0.1 * (y2 - y1), 1]])
    np.testing.assert_allclose(corners @ matrix.T, [[0, 0], [160, 160]], atol=1e-3)
    with pytest.raises(ValueError, match="unknown crop"):
        crop_face(np.zeros((200, 200, 3), np.uint8), points, "square")


def test_level_crop_puts_the_eyes_level_and_keeps_an_upright_face_as_it_is():
    rng = np.random.default_rng(1)
    points = rng.uniform(60, 140, (68, 2))
    points[36:42] = [80, 90] + rng.normal(0, 1, (6, 2))
    points[42:48] = [120, 90] + rng.normal(0, 1, (6, 2))
    turn = np.deg2rad(25)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    tilted = (points - 100) @ rotation.T + 100
    matrix = head_box_transform(tilted)
    eyes = np.array([tilted[36:42].mean(0), tilted[42:48].mean(0)])
    mapped = np.c_[eyes, np.ones(2)] @ matrix.T
    assert mapped[0, 1] == pytest.approx(mapped[1, 1], abs=1e-3) and mapped[0, 0] < mapped[1, 0]
    level_points = points.copy()
    level_points[42:48] += [0, points[36:42, 1].mean() - points[42:48, 1].mean()]
    np.testing.assert_allclose(head_box_transform(level_points),
                               head_box_transform(level_points, level_eyes=False), atol=1e-4)


def test_a_close_face_full_range_misses_is_found_by_the_second_chance():
    from app.factory import build_detector, build_landmark_model, second_chance
    from app.people.enroll import photo_face

    image = cv2.imread(str(shared(*MISSED_BY_FULL_RANGE)))
    detector, landmarks = build_detector("blazeface"), build_landmark_model("cnn")
    try:
        assert detector.detect(image) == []       # the video path's detector misses it
        face = photo_face(image, detector, landmarks, pick="main", crop=HEAD_BOX,
                          second=second_chance(detector))
        assert face is not None and face.aligned.shape == (160, 160, 3)
        x1, y1, x2, y2 = head_box(face.landmarks)  # the face LFW centres on
        assert abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 30
    finally:
        landmarks.close()


def test_the_central_face_full_range_misses_is_the_main_face():
    from app.factory import build_detector, build_landmark_model, second_chance
    from app.people.enroll import photo_face

    image = cv2.imread(str(shared(*CENTRE_MISSED_BY_FULL_RANGE)))
    detector, landmarks = build_detector("blazeface"), build_landmark_model("cnn")
    try:
        boxes = [d.box for d in detector.detect(image)]
        assert boxes and all((b[0] + b[2]) / 2 < 90 for b in boxes)  # only the neighbour
        face = photo_face(image, detector, landmarks, pick="main",
                          second=second_chance(detector))
        nose = face.landmarks[30]                  # LFW centres the photo on its person
        assert np.abs(nose - 125).max() < 25, nose
    finally:
        landmarks.close()


def test_a_one_face_photo_stays_one_face_though_the_short_range_fires_on_a_hand():
    from app.factory import build_detector, second_chance
    from app.lab.datasets import celebrity_photos

    photos = celebrity_photos()   # the short-range model finds a "face" at 0.52 on a hand
    image = cv2.imread(str(photos / "val" / "jerry_seinfeld" /
                           "httpaurorasblogcomwpcontentuploadsjerryseinfeldpublicityshotjpg.jpg"))
    detector = build_detector("blazeface")
    assert len(second_chance(detector).detect(image)) == 2
    assert len(detect_photo(image, detector, second_chance(detector))) == 1
