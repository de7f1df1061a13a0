"""`python -m app eval landmarks`: NME bookkeeping on tiny fixtures, then the real models."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from app.lab.landmark_eval import evaluate, face_errors, plot_ced, read_faces, summarise, with_boxes
from app.types import OUTER_EYE_CORNERS
from tests.conftest import shared


class ShiftedTruth:
    """A 'landmark model' that returns the ground truth moved by (dx, 0)."""

    def __init__(self, truth: dict, dx: float):
        self.truth, self.dx = truth, dx

    def predict(self, image, box):
        return self.truth[id(image)] + np.float32([self.dx, 0])


def write_pts(path, points):
    lines = ["version: 1", "n_points: 68", "{", *(f"{x} {y}" for x, y in points), "}"]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def fixture_dir(tmp_path):
    """Two real 300-W test faces and one blank photo whose 'face' no detector can find."""
    for path in sorted(shared("landmarks300w", "test").glob("*.jpg"))[:2]:
        shutil.copy(path, tmp_path)
        shutil.copy(path.with_suffix(".pts"), tmp_path)
    cv2.imwrite(str(tmp_path / "zz_blank.jpg"), np.full((200, 200, 3), 90, np.uint8))
    write_pts(tmp_path / "zz_blank.pts", np.random.default_rng(0).uniform(60, 140, (68, 2)))
    return tmp_path


def test_known_shift_gives_known_nme_and_misses_count_as_failures(fixture_dir):
    faces = with_boxes(read_faces(fixture_dir), "blazeface")
    assert [f.box is None for f in faces] == [False, False, True]
    right, left = OUTER_EYE_CORNERS
    iods = [np.linalg.norm(f.points[right] - f.points[left]) for f in faces[:2]]
    model = ShiftedTruth({id(f.image): f.points for f in faces}, dx=3.0)
    errors, seconds = face_errors(model, faces)
    np.testing.assert_allclose(errors[:2], 3.0 / np.array(iods), rtol=1e-6)
    assert np.isnan(errors[2]) and len(seconds) == 2
    row = summarise(errors, seconds)
    assert (row["n"], row["detected"]) == (3, 2)
    assert row["nme_mean"] == pytest.approx(np.mean(3.0 / np.array(iods)), abs=1e-5)
    assert row["fail_rate"] == pytest.approx(1 / 3, abs=1e-4)  # the missed face


def test_failure_threshold_is_nme_above_a_tenth():
    row = summarise(np.array([0.05, 0.099, 0.101, 0.3]), np.array([0.001] * 4))
    assert row["fail_rate"] == 0.5 and row["nme_median"] == pytest.approx(0.1, abs=1e-6)


def test_gt_boxes_and_real_models_on_the_fixture(fixture_dir, tmp_path):
    rows = evaluate(fixture_dir, ["cnn", "dlib"], "gt", threads=1)
    for row in rows:
        assert row["n"] == 3 and row["detected"] == 3  # a gt box always exists
        assert row["ms_per_face"] > 0
    # Two real faces are placed well; the blank photo's random 'face' fails.
    assert all(0 < e < 0.1 for row in rows for e in row["errors"][:2])
    path = plot_ced(rows, tmp_path / "ced.png")
    assert cv2.imread(str(path)).shape[0] > 100


def test_cli_prints_one_json_line_per_model(fixture_dir, capsys):
    from app.cli import main

    assert main(["eval", "landmarks", "--data", str(fixture_dir), "--landmarks", "dlib",
                 "--boxes", "hog", "--threads", "1"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    row = json.loads(line)
    assert set(row) == {"landmarks", "boxes", "n", "detected", "nme_mean", "nme_median",
                        "fail_rate", "ms_per_face"}
    assert row["n"] == 3 and row["detected"] <= 2


def test_missing_or_empty_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        read_faces(tmp_path / "nope")
    with pytest.raises(ValueError, match="no .jpg"):
        read_faces(tmp_path)
