"""Drawing returns a new image and never touches what it was given."""
from __future__ import annotations

import copy
import dataclasses

import cv2
import numpy as np
import pytest

from app.types import Face
from app.window.render import (
    HELP_KEYS,
    LANDMARK_COLORS,
    draw_faces,
    draw_help,
    draw_hud,
    draw_landmarks,
    face_label,
    header_height,
    side_by_side,
)
from tests.conftest import shared


@pytest.fixture
def image():
    """A real photo, made read-only so any in-place drawing on it raises."""
    img = cv2.imread(str(shared("video", "lin-manuel-miranda.png")))
    img = np.ascontiguousarray(img[:360, :480])
    img.flags.writeable = False
    return img


def make_faces():
    ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 68)), np.sin(np.linspace(0, 2 * np.pi, 68))],
                    axis=1)
    cnn = (ring * 40 + [200, 150]).astype(np.float32)
    dlib = cnn + 3
    known = Face(box=np.array([150, 100, 250, 210], np.float32), score=0.9, landmarks=cnn,
                 name="Zoë", similarity=0.83, track_id=1,
                 landmark_sets={"cnn": cnn, "dlib": dlib})
    unknown = Face(box=np.array([-20, 300, 60, 400], np.float32), score=0.8,  # off the edge
                   similarity=0.31, track_id=2)
    pending = Face(box=np.array([300, 0, 380, 90], np.float32), score=0.7)
    return [known, unknown, pending]


def snapshot(faces):
    return copy.deepcopy(faces)


def assert_faces_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.box, y.box)
        assert (x.landmarks is None) == (y.landmarks is None)
        if x.landmarks is not None:
            assert np.array_equal(x.landmarks, y.landmarks)
        assert (x.name, x.similarity, x.track_id) == (y.name, y.similarity, y.track_id)
        assert x.landmark_sets.keys() == y.landmark_sets.keys()


def check_output(out, image, shape=None):
    assert out is not image and out.dtype == np.uint8
    assert out.shape == (shape or image.shape)
    if out.shape == image.shape:
        assert not np.array_equal(out, image)


def test_draw_landmarks(image):
    before = image.copy()
    points = make_faces()[0].landmarks
    points_before = points.copy()
    plain = draw_landmarks(image, points)
    joined = draw_landmarks(image, points, color=(0, 0, 255), lines=True)
    check_output(plain, image)
    check_output(joined, image)
    assert not np.array_equal(plain, joined)
    assert np.array_equal(image, before) and np.array_equal(points, points_before)
    with_nan = points.copy()
    with_nan[5] = np.nan
    check_output(draw_landmarks(image, with_nan, lines=True), image)  # skips bad points


@pytest.mark.parametrize("colors", [None, (255, 0, 0), LANDMARK_COLORS])
def test_draw_faces_leaves_its_inputs_alone(image, colors):
    faces = make_faces()
    faces_before, image_before = snapshot(faces), image.copy()
    out = draw_faces(image, faces, landmark_colors=colors, lines=True)
    check_output(out, image)
    assert np.array_equal(image, image_before)
    assert_faces_equal(faces, faces_before)


def test_both_landmark_sets_are_drawn_in_their_colours(image):
    face = make_faces()[0]
    out = draw_faces(image, [face], landmark_colors=LANDMARK_COLORS)
    for name, color in LANDMARK_COLORS.items():
        x, y = np.round(face.landmark_sets[name][10]).astype(int)
        assert tuple(int(c) for c in out[y, x]) == color


def test_labels():
    known, unknown, pending = make_faces()
    assert face_label(known) == "#1 Zoë 0.83"
    assert face_label(unknown) == "#2 unknown 0.31"
    assert face_label(pending) == "…"
    pending.track.checked = True  # matched, but the gallery had nobody to compare with
    assert face_label(pending) == "unknown"


def test_draw_hud(image):
    before = image.copy()
    stats = {"FPS": 24.31, "latency ms": 38.0, "ms": {"detect": 5.1, "landmarks": 7.9},
             "dropped": 3, "models": ["blazeface", "cnn68", "facenet:int8"]}
    out = draw_hud(image, stats)
    check_output(out, image)
    assert np.array_equal(image, before)
    assert out[-1, -1].tolist() == image[-1, -1].tolist()  # only the top-left panel changes
    assert np.array_equal(draw_hud(image, {}), image)


def test_draw_help(image):
    before = image.copy()
    out = draw_help(image)
    check_output(out, image)
    assert np.array_equal(image, before)
    assert {key for key, _ in HELP_KEYS} >= {"q / Esc", "l", "s", "e", "u", "space", "h"}


def test_side_by_side(image):
    faces = make_faces()
    faces_before, image_before = snapshot(faces), image.copy()
    dlib_faces = [Face(box=faces[0].box, score=0.9, landmarks=faces[0].landmark_sets["dlib"])]
    out = side_by_side(image, faces, dlib_faces, 4.2, 3.1, 0.043)
    top = header_height(image)
    check_output(out, image, shape=(top + image.shape[0], 2 * image.shape[1], 3))
    assert np.array_equal(image, image_before)
    assert_faces_equal(faces, faces_before)
    x, y = np.round(faces[0].landmarks[10]).astype(int)
    assert tuple(int(c) for c in out[top + y, x]) == LANDMARK_COLORS["cnn"]
    xd, yd = np.round(dlib_faces[0].landmarks[10]).astype(int)
    assert tuple(int(c) for c in out[top + yd, xd + image.shape[1]]) == LANDMARK_COLORS["dlib"]
    # the header is a strip of its own: the picture below it is not covered
    assert np.array_equal(out[top:, :image.shape[1]][:20, 300:],
                          draw_faces(image, faces, LANDMARK_COLORS["cnn"])[:20, 300:])
    side_by_side(image, [], [], None, None, None)  # nothing measured yet: still draws


def test_bad_image_is_refused():
    with pytest.raises(ValueError):
        draw_hud(np.zeros((10, 10), np.uint8), {"FPS": 1.0})


@pytest.mark.parametrize("name", ["José Łukasz O'Brien", "Жанна", "Ωμέγα"])
def test_names_are_drawn_in_their_own_letters(image, name):
    """Each name is drawn with its own glyphs: not as the '?' of an ASCII-only font."""
    from app.window.text import _mask

    assert not np.array_equal(_mask(name, 20), _mask("?" * len(name), 20))
    face = make_faces()[0]
    drawn = [draw_faces(image, [dataclasses.replace(face, name=text)])
             for text in (name, "?" * len(name))]
    assert not np.array_equal(*drawn)
