"""Landmark stage on real 300-W test faces: the CNN (frozen .pb and SavedModel) and dlib 68.
The .tflite CNN (the app's default) is checked against the .pb in test_cnn_tflite.py."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from app.paths import CNN68_DIR, REPO_ROOT
from app.stages.geometry import nme
from app.stages.landmarks import LandmarkModel
from app.stages.landmarks.crop import cut_square, square_for_box, to_frame
from tests.conftest import shared

N_FACES = 5
MAX_NME = 0.08
MAX_BACKEND_DIFF = 1e-5


@pytest.fixture(scope="module")
def faces():
    """The first N_FACES 300-W test faces with their best-matching HOG box."""
    from app.lab.landmark_eval import read_faces, with_boxes

    found = [f for f in with_boxes(read_faces(shared("landmarks300w", "test"), 2 * N_FACES),
                                   "hog") if f.box is not None][:N_FACES]
    if len(found) < N_FACES:
        pytest.fail("HOG found too few of the 300-W test faces")
    return [(f.image, f.points, f.box) for f in found]


@pytest.fixture(scope="module")
def cnn_pb():
    from app.stages.landmarks.cnn import CnnLandmarks

    with CnnLandmarks(backend="pb") as model:
        yield model


@pytest.fixture(scope="module")
def cnn_saved_model():
    from app.stages.landmarks.cnn import CnnLandmarks

    return CnnLandmarks(backend="saved_model")


@pytest.fixture(scope="module")
def dlib68():
    from app.stages.landmarks.dlib68 import Dlib68Landmarks

    return Dlib68Landmarks()


@pytest.mark.parametrize("name", ["cnn_pb", "cnn_saved_model", "dlib68"])
def test_landmarks_land_on_real_faces(name, faces, request):
    model = request.getfixturevalue(name)
    assert isinstance(model, LandmarkModel)
    errors = []
    for image, gt, box in faces:
        points = model.predict(image, box)
        assert points.shape == (68, 2) and points.dtype == np.float32
        errors.append(nme(points, gt))
    assert max(errors) < MAX_NME, errors


def test_saved_model_and_frozen_graph_agree(cnn_pb, cnn_saved_model, faces):
    squares = [cnn_pb._square(box) for _, _, box in faces]
    crops = np.stack([cnn_pb._crop(image, sq) for (image, _, _), sq in zip(faces, squares)])
    diff = np.abs(cnn_pb._run(crops) - cnn_saved_model._run(crops)).max()
    assert diff < MAX_BACKEND_DIFF


def test_predict_many_matches_predict(cnn_pb, faces):
    image, _, box = faces[0]
    shifted = box + np.float32([5, -3, 5, -3])
    many = cnn_pb.predict_many(image, [box, shifted])
    assert many.shape == (2, 68, 2)
    np.testing.assert_allclose(many[0], cnn_pb.predict(image, box), atol=1e-4)
    np.testing.assert_allclose(many[1], cnn_pb.predict(image, shifted), atol=1e-4)
    assert cnn_pb.predict_many(image, []).shape == (0, 68, 2)


# ---------------------------------------------------------------- crop geometry

def test_crop_maps_back_exactly_for_a_clipped_non_square_box_at_the_edge():
    """A dot near the frame corner, a box that sticks out of the frame and is not square:
    the crop pads (never stretches), and mapping the dot's crop position back finds it."""
    frame = np.zeros((120, 200, 3), np.uint8)
    dot = np.array([6.0, 100.0])  # pixel-index coordinates (x, y)
    frame[100, 6] = 255
    box = np.float32([-30, 70, 40, 130])  # 70 x 60, leaves the frame left and bottom
    rule = {"scale": 1.4, "dx": 0.05, "dy": -0.1}
    square = square_for_box(box, rule)
    crop = cut_square(frame, square, int(square[2]))  # no resize: exact pixel check
    y, x = np.argwhere(crop[:, :, 0] == 255)[0]
    found = to_frame(np.array([(x + 0.5) / square[2], (y + 0.5) / square[2]]), square)
    np.testing.assert_allclose(found, dot, atol=1e-4)
    # resized to the network size, the bright spot still maps back within a pixel
    small = cut_square(frame, square, 112).astype(np.float32)[:, :, 0]
    ys, xs = np.mgrid[:112, :112]
    centre = np.array([(xs * small).sum(), (ys * small).sum()]) / small.sum()
    np.testing.assert_allclose(to_frame((centre + 0.5) / 112, square), dot, atol=1.0)


def test_cnn_padding_equals_real_black_border(cnn_pb, faces):
    """A face cut by the frame edge gives the same points as the same face inside a larger
    black frame: out-of-frame parts are zero-padded and the mapping back is exact."""
    image, _, box = faces[0]
    x1, y1, x2, y2 = box
    cut = image[int(y1) + 10:, int(x1) + 10:]            # face now pokes out top-left
    cut_box = np.float32([x1 - int(x1) - 10, y1 - int(y1) - 10, x2 - int(x1) - 10,
                          y2 - int(y1) - 10])
    clipped = np.maximum(cut_box, 0)                      # as a detector would clip it
    pad = 200
    big = cv2.copyMakeBorder(cut, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    inside = cnn_pb.predict(big, clipped + pad)
    at_edge = cnn_pb.predict(cut, clipped)
    np.testing.assert_allclose(at_edge, inside - pad, atol=1e-3)


# ---------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("name", ["cnn_pb", "dlib68"])
def test_wrong_image_shape_or_dtype_raises(name, request):
    model = request.getfixturevalue(name)
    box = [10, 10, 60, 60]
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((100, 100), np.uint8), box)
    with pytest.raises(ValueError, match="uint8"):
        model.predict(np.zeros((100, 100, 3), np.float32), box)
    with pytest.raises(ValueError, match="box"):
        model.predict(np.zeros((100, 100, 3), np.uint8), [60, 10, 10, 60])


def test_missing_model_dir_names_the_build_command(tmp_path):
    from app.stages.landmarks.cnn import CnnLandmarks

    with pytest.raises(FileNotFoundError, match="git checkout -- models/landmarks/cnn68"):
        CnnLandmarks(tmp_path / "nowhere")


def test_missing_dlib_model_raises(tmp_path):
    from app.stages.landmarks.dlib68 import Dlib68Landmarks

    with pytest.raises(FileNotFoundError, match="make setup"):
        Dlib68Landmarks(tmp_path / "missing.dat")


@pytest.mark.parametrize("backend", ["tflite", "pb", "saved_model"])
def test_corrupt_model_file_names_its_path(tmp_path, backend):
    from app.stages.landmarks.cnn import CnnLandmarks

    model_dir = tmp_path / "cnn68"
    shutil.copytree(CNN68_DIR, model_dir)
    bad = model_dir / {"tflite": "cnn68_fp32.tflite", "pb": "frozen.pb",
                       "saved_model": "saved_model/saved_model.pb"}[backend]
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 7)
    with pytest.raises(ValueError, match=re.escape(str(bad if backend == "pb" else bad.parent))):
        CnnLandmarks(model_dir, backend=backend)


def test_unknown_detector_or_backend_raises():
    from app.stages.landmarks.cnn import CnnLandmarks

    with pytest.raises(ValueError, match="crop rule"):
        CnnLandmarks(detector="no-such-detector")
    with pytest.raises(ValueError, match="backend"):
        CnnLandmarks(backend="onnx")


def test_landmark_modules_do_not_import_tensorflow():
    code = ("import sys, app.stages.landmarks, app.stages.landmarks.dlib68, app.stages.landmarks.cnn; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


@pytest.mark.parametrize("head", ["avgpool", "flatten"])
def test_export_writes_a_loadable_model_dir(tmp_path, faces, head):
    """The reusable export that train_landmarks uses: SavedModel == .pb == Keras."""
    from app.stages.landmarks.cnn import CnnLandmarks
    from app.toolchain.cnn68 import build_keras_model, export_landmark_model

    model = build_keras_model(head=head)  # random weights stand in for fine-tuned ones
    rules = {"default": {"scale": 1.2, "dx": 0.0, "dy": 0.1}}
    io = export_landmark_model(model, tmp_path, rules)
    assert io["crop_rules"] == rules and io["input_size"] == 112
    image, _, box = faces[0]
    with CnnLandmarks(tmp_path, backend="pb", detector="default") as exported:
        points = exported.predict(image, box)
    crop = exported._crop(image, exported._square(box))
    expected = exported._to_frame(np.asarray(model(crop[None])).reshape(68, 2),
                                  exported._square(box))
    np.testing.assert_allclose(points, expected, atol=1e-3)
    with pytest.raises(ValueError, match="default"):
        export_landmark_model(model, tmp_path / "other", {"hog": rules["default"]})
