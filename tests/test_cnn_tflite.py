"""The landmark CNN as .tflite (the app's default backend) against its source, frozen.pb,
on real 300-W faces; and the default run path never importing TensorFlow."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from app.paths import CNN68_DIR, REPO_ROOT
from tests.conftest import shared

# Crop fractions; float32 measured 5e-7, float16 weights 3e-4.
MAX_DIFF = {"fp32": 1e-4, "fp16": 1e-3}
MAX_POINT_DIFF_PX = {"fp32": 0.01, "fp16": 0.2}


def _recorded() -> dict:
    return json.loads((CNN68_DIR / "io.json").read_text())["tflite"]


@pytest.fixture(scope="module")
def crops():
    from app.toolchain.cnn68 import real_crops

    return real_crops(12, shared("landmarks300w", "test"))


@pytest.fixture(scope="module")
def pb_outputs(crops):
    from app.stages.landmarks.cnn import load_frozen_graph

    run, close = load_frozen_graph(CNN68_DIR / "frozen.pb", "image:0", "landmarks:0")
    try:
        return run(crops)
    finally:
        close()


@pytest.fixture(scope="module")
def faces():
    from app.lab.landmark_eval import read_faces, with_boxes

    found = [f for f in with_boxes(read_faces(shared("landmarks300w", "test"), 8), "blazeface")
             if f.box is not None]
    assert len(found) >= 4
    return found[:4]


def test_every_kept_variant_is_recorded_and_made_from_this_frozen_pb():
    from app.toolchain.cnn68_tflite import REQUIRED, sha256, stale_variants

    record = _recorded()
    assert set(REQUIRED) <= set(record["variants"])
    assert record["source_sha256"] == sha256(CNN68_DIR / "frozen.pb")
    for row in record["variants"].values():
        assert sha256(CNN68_DIR / row["file"]) == row["sha256"]
        assert abs(row["nme_delta"]) <= 0.0005
    assert stale_variants(CNN68_DIR) == []


@pytest.mark.parametrize("variant", sorted(MAX_DIFF))
def test_tflite_matches_frozen_pb_on_real_crops(variant, crops, pb_outputs):
    from app.stages.landmarks.cnn import load_tflite

    if variant not in _recorded()["variants"]:
        pytest.skip(f"{variant} was not kept by the build")
    run, close = load_tflite(CNN68_DIR / f"cnn68_{variant}.tflite", num_threads=1)
    got = run(crops)
    close()
    assert got.shape == pb_outputs.shape and np.isfinite(got).all()
    assert np.abs(got - pb_outputs).max() < MAX_DIFF[variant]
    one_by_one = np.concatenate([run(crop[None]) for crop in crops[:3]])  # batch resized
    np.testing.assert_allclose(one_by_one, got[:3], atol=1e-5)


@pytest.mark.parametrize("variant", sorted(MAX_DIFF))
def test_tflite_and_pb_backends_place_the_same_points(variant, faces):
    from app.stages.landmarks.cnn import CnnLandmarks

    if variant not in _recorded()["variants"]:
        pytest.skip(f"{variant} was not kept by the build")
    image, boxes = faces[0].image, [f.box for f in faces[:1]]
    with CnnLandmarks(backend="pb", detector="blazeface") as pb, \
            CnnLandmarks(detector="blazeface", tflite=f"cnn68_{variant}.tflite") as lite:
        for face in faces:
            diff = np.abs(lite.predict(face.image, face.box) - pb.predict(face.image, face.box))
            assert diff.max() < MAX_POINT_DIFF_PX[variant]
        many = lite.predict_many(image, boxes * 3)   # one call, batch of 3
    np.testing.assert_allclose(many, np.stack([many[0]] * 3), atol=1e-4)


def test_a_changed_frozen_pb_makes_every_variant_stale(tmp_path):
    from app.toolchain.cnn68_tflite import VARIANTS, stale_variants

    model_dir = tmp_path / "cnn68"
    shutil.copytree(CNN68_DIR, model_dir, ignore=shutil.ignore_patterns("saved_model"))
    with open(model_dir / "frozen.pb", "ab") as handle:
        handle.write(b"\0")
    assert stale_variants(model_dir) == list(VARIANTS)


def test_conversion_of_a_new_export_matches_its_frozen_pb(tmp_path, crops):
    """What every export (train_landmarks, export_cnn68) runs, on random weights."""
    from app.stages.landmarks.cnn import load_frozen_graph, load_tflite
    from app.toolchain.cnn68 import build_keras_model, export_landmark_model
    from app.toolchain.cnn68_tflite import convert

    export_landmark_model(build_keras_model(), tmp_path, {"default": {"scale": 1.2, "dx": 0,
                                                                      "dy": 0.1}},
                          check_crops=crops[:2])
    path = tmp_path / "cnn68_fp32.tflite"
    path.write_bytes(convert(tmp_path / "frozen.pb", "image:0", "landmarks:0", "fp32"))
    run_pb, close = load_frozen_graph(tmp_path / "frozen.pb", "image:0", "landmarks:0")
    expected = run_pb(crops)
    close()
    run, _ = load_tflite(path)
    assert np.abs(run(crops) - expected).max() < MAX_DIFF["fp32"]


RUN_AND_LIST_MODULES = """
import atexit, sys
atexit.register(lambda: print("MODULES", " ".join(sorted(
    m for m in ("tensorflow", "keras", "dlib") if m in sys.modules))))
from app.cli import run_main
sys.exit(run_main(sys.argv[1:]))
"""


@pytest.mark.parametrize("backend", [None, "pb"])
def test_default_run_path_never_imports_tensorflow(tmp_path, backend):
    """run_video.py --headless on the Hamilton clip; the pb backend shows the check can
    fail (it must import TensorFlow)."""
    clip = shared("video", "short_hamilton_clip.mp4")
    args = ["--source", str(clip), "--headless", "--max-frames", "3", "--no-progress",
            "--gallery", str(tmp_path / "g.sqlite3")]
    if backend:
        args += ["--landmark-backend", backend]
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "frames: 3" in done.stdout
    modules = done.stdout.split("MODULES")[-1].split()
    if backend is None:
        assert modules == [], modules
        assert "INFO:" not in done.stderr and "I0000" not in done.stderr, done.stderr
    else:
        assert "tensorflow" in modules and "dlib" not in modules
