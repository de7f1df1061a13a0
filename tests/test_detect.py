"""Face detectors on real photos and the Hamilton clip (../shared/data)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.stages.detect import _SPECS, BlazeFaceDetector, HogDetector, ssd_anchors, weighted_nms
from tests.conftest import shared

ENROL_PHOTOS = ("lin-manuel-miranda.png", "alex-lacamoire.png")
WIDE_SHOT_FRAMES = (0, 10, 19)        # faces ~40-60 px wide
CLOSE_UP_FRAMES = (82, 150, 210)      # faces ~75-110 px wide
# 300-W test faces (one landscape, one portrait) with hand-made 68-point annotations
W300_FACES = ("helen_2968784797_1", "helen_2984236559_1")


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def read_image(*parts: str) -> np.ndarray:
    image = cv2.imread(str(shared(*parts)))
    assert image is not None, parts
    return image


def read_pts(path) -> np.ndarray:
    body = path.read_text().split("{")[1].split("}")[0]
    return np.array(body.split(), dtype=np.float32).reshape(-1, 2)


@pytest.fixture(scope="module")
def full():
    return BlazeFaceDetector(model="full")


@pytest.fixture(scope="module")
def short():
    return BlazeFaceDetector(model="short")


@pytest.fixture(scope="module")
def hog():
    return HogDetector()


@pytest.fixture(scope="module")
def clip_frames() -> dict[int, np.ndarray]:
    wanted = set(WIDE_SHOT_FRAMES + CLOSE_UP_FRAMES)
    capture = cv2.VideoCapture(str(shared("video", "short_hamilton_clip.mp4")))
    frames, index = {}, 0
    try:
        while len(frames) < len(wanted):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames[index] = frame
            index += 1
    finally:
        capture.release()
    assert set(frames) == wanted
    return frames


def assert_well_formed(detections, shape, keypoints: bool):
    h, w = shape[:2]
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for d in detections:
        assert d.box.shape == (4,) and d.box.dtype == np.float32
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        if keypoints:
            assert d.keypoints.shape == (6, 2) and d.keypoints.dtype == np.float32
        else:
            assert d.keypoints is None


# --- SSD decoding pieces --------------------------------------------------------------

def test_anchor_counts_match_mediapipe():
    assert ssd_anchors(_SPECS["short"]).shape == (896, 2)   # 16*16*2 + 8*8*6
    full = ssd_anchors(_SPECS["full"])
    assert full.shape == (2304, 2)                         # 48*48*1
    np.testing.assert_allclose(full[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(full[1], [1.5 / 48, 0.5 / 48])  # x varies fastest


def test_weighted_nms_blends_overlaps_by_score():
    def det(x1, y1, x2, y2):
        return np.array([[x1, y1], [x2, y2]], np.float32)
    points = np.stack([det(0, 0, 10, 10), det(1, 1, 11, 11), det(50, 50, 60, 60)])
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    kept, kept_scores = weighted_nms(points, scores, 0.3)
    np.testing.assert_allclose(kept_scores, [0.9, 0.7])
    np.testing.assert_allclose(kept[0], det(0.6, 0.6, 10.6, 10.6), atol=1e-5)
    np.testing.assert_allclose(kept[1], points[2])


# --- real photos ----------------------------------------------------------------------

@pytest.mark.parametrize("photo", ENROL_PHOTOS)
def test_blazeface_finds_one_face_in_each_enrolment_photo(full, short, photo):
    image = read_image("video", photo)
    for detector in (full, short):
        faces = detector.detect(image)
        assert len(faces) == 1
        assert faces[0].score > 0.8
        assert_well_formed(faces, image.shape, keypoints=True)


@pytest.mark.parametrize("photo", ENROL_PHOTOS)
def test_hog_finds_one_face_in_each_enrolment_photo(hog, photo):
    image = read_image("video", photo)
    faces = hog.detect(image)
    assert len(faces) == 1
    assert_well_formed(faces, image.shape, keypoints=False)


@pytest.mark.parametrize("photo", ENROL_PHOTOS)
def test_blazeface_box_agrees_with_hog_and_keypoints_lie_in_it(full, hog, photo):
    image = read_image("video", photo)
    face, = full.detect(image)
    hog_face, = hog.detect(image)
    assert iou(face.box, hog_face.box) > 0.6
    x1, y1, x2, y2 = face.box
    margin = 0.1 * (x2 - x1)  # ear tragions may sit on the box edge
    kx, ky = face.keypoints[:, 0], face.keypoints[:, 1]
    assert np.all((kx > x1 - margin) & (kx < x2 + margin) & (ky > y1 - margin) & (ky < y2 + margin))
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    assert right_eye[0] < nose[0] < left_eye[0]       # subject's right eye is image-left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


@pytest.mark.parametrize("name", W300_FACES)
def test_blazeface_box_matches_annotated_landmark_box(full, name):
    image = read_image("landmarks300w", "test", f"{name}.jpg")
    points = read_pts(shared("landmarks300w", "test", f"{name}.pts"))
    landmark_box = [*points.min(axis=0), *points.max(axis=0)]
    faces = full.detect(image)
    assert len(faces) == 1
    assert iou(faces[0].box, landmark_box) > 0.4


def test_letterbox_mapping_follows_padding(full):
    """Padding the frame on the left (non-square, off-centre) moves the box with it."""
    image = read_image("video", "alex-lacamoire.png")
    pad = 300
    padded = cv2.copyMakeBorder(image, 0, 0, pad, 0, cv2.BORDER_CONSTANT, value=0)
    face, = full.detect(image)
    moved, = full.detect(padded)
    size = face.box[2] - face.box[0]
    np.testing.assert_allclose(moved.box - [pad, 0, pad, 0], face.box, atol=0.08 * size)
    np.testing.assert_allclose(moved.keypoints - [pad, 0], face.keypoints, atol=0.08 * size)


def test_box_is_clipped_when_the_face_leaves_the_frame(full):
    image = read_image("video", "lin-manuel-miranda.png")
    face, = full.detect(image)
    cut = int(face.box[0] + 0.3 * (face.box[2] - face.box[0]))
    cropped = np.ascontiguousarray(image[:, cut:])
    faces = full.detect(cropped)
    assert len(faces) >= 1
    assert_well_formed(faces, cropped.shape, keypoints=True)
    assert faces[0].box[0] == 0.0


# --- the Hamilton clip ----------------------------------------------------------------

@pytest.mark.parametrize("index", WIDE_SHOT_FRAMES + CLOSE_UP_FRAMES)
def test_full_range_finds_a_face_in_clip_frames(full, clip_frames, index):
    frame = clip_frames[index]
    faces = full.detect(frame)
    assert len(faces) >= 1
    assert_well_formed(faces, frame.shape, keypoints=True)


def test_short_range_misses_the_small_wide_shot_faces(short, clip_frames):
    """Why 'full' is the default: the ~50 px faces of the wide shot are too small."""
    assert all(short.detect(clip_frames[i]) == [] for i in WIDE_SHOT_FRAMES)


# --- empty results and errors ---------------------------------------------------------

def test_black_image_has_no_faces(full, short, hog):
    black = np.zeros((360, 640, 3), np.uint8)
    assert full.detect(black) == []
    assert short.detect(black) == []
    assert hog.detect(black) == []


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64, 3), np.float32),
    np.zeros((64, 64), np.uint8),
    np.zeros((64, 64, 4), np.uint8),
])
def test_bad_images_raise_value_error(full, hog, bad):
    with pytest.raises(ValueError, match="expected"):
        full.detect(bad)
    with pytest.raises(ValueError, match="expected"):
        hog.detect(bad)


def test_missing_model_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        BlazeFaceDetector(missing)


def test_corrupt_model_names_the_path(tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises((ValueError, RuntimeError)) as info:
        BlazeFaceDetector(corrupt)
    assert str(corrupt) in str(info.value)


def test_model_of_the_wrong_type_is_refused():
    from app.paths import blazeface_path
    with pytest.raises(ValueError, match="input shape"):
        BlazeFaceDetector(blazeface_path("full"), model="short")


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="short"):
        BlazeFaceDetector(model="medium")
