import numpy as np
import pytest

from app.stages.align import (
    FACENET_SIZE,
    FACENET_TEMPLATE,
    align_face,
    five_points,
    similarity_transform,
)


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.array([[0, 0], [10, 0], [5, 7], [2, 12], [9, 12]], dtype=np.float64)
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-5)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)


def test_similarity_transform_never_reflects():
    src = np.array([[0, 0], [1, 0], [0, 1]], float)
    mirrored = src * [-1, 1]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_five_points_picks_eye_centres_nose_and_mouth_corners():
    pts = np.zeros((68, 2), np.float32)
    pts[36:42] = [10, 20]
    pts[42:48] = [30, 20]
    pts[30] = [20, 30]
    pts[48], pts[54] = [12, 40], [28, 40]
    np.testing.assert_array_equal(five_points(pts), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])


@pytest.mark.parametrize("crop", ["five-point", "five-point-tight"])
def test_align_face_puts_the_points_on_the_template(crop):
    import cv2

    from app.stages.align import TIGHT_SCALE, crop_face, five_point_template

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    target = FACENET_TEMPLATE * 2 + [30, 10]  # a face at twice template scale, shifted
    image = np.zeros((300, 400, 3), np.uint8)
    for point, colour in zip(target, colours):
        cv2.circle(image, tuple(int(v) for v in point.round()), 8, colour, -1)
    pts = np.zeros((68, 2), np.float32)
    pts[36:42], pts[42:48], pts[30], pts[48], pts[54] = target
    scale = TIGHT_SCALE if crop == "five-point-tight" else 1.0
    out = crop_face(image, pts, crop)
    assert out.shape == (FACENET_SIZE, FACENET_SIZE, 3) and out.dtype == np.uint8
    template = five_point_template(scale)
    for point, colour in zip(template, colours):
        x, y = point.round().astype(int)
        np.testing.assert_array_equal(out[y, x], colour)
    spread = np.linalg.norm(template[1] - template[0]) / np.linalg.norm(
        FACENET_TEMPLATE[1] - FACENET_TEMPLATE[0])
    assert spread == pytest.approx(scale)     # tight: the eyes further apart, a larger face
    if crop == "five-point":
        np.testing.assert_array_equal(out, align_face(image, pts))


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)])
def test_align_face_rejects_bad_images(bad):
    with pytest.raises(ValueError):
        align_face(bad, np.zeros((68, 2), np.float32))


def test_five_points_rejects_wrong_shape():
    with pytest.raises(ValueError, match="68, 2"):
        five_points(np.zeros((5, 2)))
