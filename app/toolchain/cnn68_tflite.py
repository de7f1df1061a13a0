"""The landmark CNN as ``.tflite``: converted from ``frozen.pb``, checked, recorded in io.json.

The app runs the CNN through ai-edge-litert (no TensorFlow at run time), so every export
(``export_cnn68``, ``train_landmarks``) and ``python -m models build`` (when a file is
missing or was made from another ``frozen.pb``) converts the frozen graph with
``tf.compat.v1.lite.TFLiteConverter.from_frozen_graph``, batch dimension left dynamic so
all faces of a frame run in one call. Each variant is checked against ``frozen.pb``:

* on real face crops (300-W test, ground-truth boxes): largest |difference| of the
  outputs (crop fractions); float32 must stay under ``MAX_FLOAT_DIFF``;
* by NME on ``landmarks300w/test`` with BlazeFace boxes (the app's detector): within
  ``MAX_NME_DELTA`` of the ``.pb``'s.

A variant that fails is not installed (and the build fails when it is float32, which
the app needs). What passed is recorded in io.json under "tflite" (file, sha256, the
sha256 of the ``frozen.pb`` it came from, max diff, NME, ms per face at one thread).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..paths import CNN68_DIR, SHARED_DATA

VARIANTS = ("fp32", "fp16", "int8")
REQUIRED = ("fp32",)          # the app's default; the build fails without it
MAX_FLOAT_DIFF = 1e-4         # fp32 vs frozen.pb, crop fractions (measured ~6e-7)
MAX_NME_DELTA = 0.0005        # any variant vs frozen.pb, mean NME on 300-W test
CHECK_SPLIT = SHARED_DATA / "landmarks300w" / "test"
CALIBRATION_SPLIT = SHARED_DATA / "landmarks300w" / "train"
CHECK_BOXES = "blazeface"


def tflite_name(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown CNN .tflite variant {variant!r}; expected one of {VARIANTS}")
    return f"cnn68_{variant}.tflite"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(pb_path: str | Path, input_name: str, output_name: str, variant: str,
            calibration: np.ndarray | None = None) -> bytes:
    """``frozen.pb`` -> .tflite bytes with input shape (None, S, S, 3).

    fp16: float16 weights (dequantised at load); int8: every op int8 with float input and
    output, calibrated on ``calibration`` (N, S, S, 3) crops."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tflite_name(variant)
    size = None if calibration is None else calibration.shape[1]
    inp, out = input_name.split(":")[0], output_name.split(":")[0]
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(pb_path), [inp], [out], input_shapes={inp: [None, size or 112, size or 112, 3]})
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if calibration is None:
            raise ValueError("the int8 variant needs calibration crops")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([crop[None]] for crop in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def stale_variants(model_dir: Path, variants=VARIANTS) -> list[str]:
    """Variants to (re)build: all when io.json's record was made from another frozen.pb;
    else those neither installed (file present, sha256 as recorded) nor rejected."""
    from ..stages.landmarks.cnn import read_io

    io = read_io(model_dir / "io.json")
    record = io.get("tflite", {})
    if record.get("source_sha256") != sha256(model_dir / io["frozen_graph"]["file"]):
        return list(variants)
    kept, rejected = record.get("variants", {}), record.get("rejected", {})

    def installed(variant: str) -> bool:
        path = model_dir / kept[variant]["file"]
        return path.is_file() and sha256(path) == kept[variant]["sha256"]

    return [v for v in variants if not (v in kept and installed(v))
            and not (v in rejected and v not in REQUIRED)]


def build_tflite(model_dir: str | Path = CNN68_DIR, force: bool = False,
                 variants=VARIANTS) -> list[str]:
    """Convert, check and install the CNN's .tflite variants; returns error messages."""
    model_dir = Path(model_dir)
    todo = list(variants) if force else stale_variants(model_dir, variants)
    if not todo:
        print(f"cnn68 .tflite: present and made from {model_dir.name}/frozen.pb")
        return []
    from ..stages.landmarks.cnn import read_io
    from .crops import real_crops

    start = time.perf_counter()
    io = read_io(model_dir / "io.json")
    pb = model_dir / io["frozen_graph"]["file"]
    crops = real_crops(32, CHECK_SPLIT)
    calibration = real_crops(200, CALIBRATION_SPLIT)
    faces = _check_faces()
    reference = _pb_outputs(model_dir, io, crops)
    pb_row = _score(model_dir, "pb", None, faces)
    print(f"cnn68 frozen.pb: NME {pb_row['nme']} on {CHECK_SPLIT.name} ({CHECK_BOXES} boxes)",
          flush=True)
    record = dict(io.get("tflite", {}), source_sha256=sha256(pb), pb_nme=pb_row["nme"],
                  pb_ms_per_face=pb_row["ms_per_face"],
                  check=f"{len(crops)} {CHECK_SPLIT.name} crops (max diff); "
                        f"{pb_row['faces']} {CHECK_SPLIT.name} faces, {CHECK_BOXES} boxes (NME)")
    record.setdefault("variants", {})
    record["rejected"] = {k: v for k, v in record.get("rejected", {}).items() if k not in todo}
    errors = []
    for variant in todo:
        row, problem = _build_variant(model_dir, io, variant, crops, calibration, faces,
                                      reference, pb_row["nme"])
        if problem:
            record["variants"].pop(variant, None)
            record["rejected"][variant] = problem
            print(f"cnn68 {variant}: not installed: {problem}", flush=True)
            if variant in REQUIRED:
                errors.append(f"cnn68 {variant}: {problem}")
        else:
            record["variants"][variant] = row
            print(f"cnn68 {row['file']}: {json.dumps(row)}", flush=True)
    io["tflite"] = record
    (model_dir / "io.json").write_text(json.dumps(io, indent=2) + "\n")
    print(f"cnn68 .tflite: {time.perf_counter() - start:.0f} s", flush=True)
    return errors


def _build_variant(model_dir, io, variant, crops, calibration, faces, reference, pb_nme):
    """(record, None) when the variant passes and is installed, else (None, why)."""
    target = model_dir / tflite_name(variant)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(convert(model_dir / io["frozen_graph"]["file"], io["frozen_graph"]["input"],
                            io["frozen_graph"]["output"], variant, calibration))
    try:
        diff = float(np.abs(_tflite_outputs(tmp, crops) - reference).max())
        row = _score(model_dir, "tflite", tmp, faces)
    except Exception:
        tmp.unlink()
        raise
    delta = row["nme"] - pb_nme
    problem = None
    if not np.isfinite(diff) or (variant == "fp32" and diff >= MAX_FLOAT_DIFF):
        problem = f"max abs diff {diff:.2e} vs frozen.pb (limit {MAX_FLOAT_DIFF:g})"
    elif not abs(delta) <= MAX_NME_DELTA:
        problem = (f"NME {row['nme']:.5f} vs frozen.pb {pb_nme:.5f}: {delta:+.5f} "
                   f"(limit +-{MAX_NME_DELTA})")
    if problem:
        tmp.unlink()
        return None, problem
    tmp.replace(target)
    return {"file": target.name, "size_bytes": target.stat().st_size,
            "sha256": sha256(target), "source_sha256": sha256(model_dir / io["frozen_graph"]
                                                              ["file"]),
            "max_abs_diff": float(f"{diff:.3g}"), "nme": row["nme"],
            "nme_delta": round(delta, 5), "ms_per_face": row["ms_per_face"]}, None


def _check_faces():
    from ..lab.landmark_eval import read_faces, with_boxes

    if not CHECK_SPLIT.is_dir():
        raise FileNotFoundError(f"checking the CNN .tflite needs {CHECK_SPLIT} (shared data)")
    return with_boxes(read_faces(CHECK_SPLIT), CHECK_BOXES)


def _score(model_dir: Path, backend: str, tflite: Path | None, faces) -> dict:
    """Mean NME and median ms per face (one thread) of one backend on the check faces."""
    from ..lab.landmark_eval import face_errors, summarise
    from ..stages.landmarks.cnn import CnnLandmarks

    with CnnLandmarks(model_dir, backend=backend, detector=CHECK_BOXES, num_threads=1,
                      tflite=tflite) as model:
        row = summarise(*face_errors(model, faces))
    return {"nme": row["nme_mean"], "faces": row["detected"], "ms_per_face": row["ms_per_face"]}


def _pb_outputs(model_dir: Path, io: dict, crops: np.ndarray) -> np.ndarray:
    from ..stages.landmarks.cnn import load_frozen_graph

    spec = io["frozen_graph"]
    run, close = load_frozen_graph(model_dir / spec["file"], spec["input"], spec["output"])
    try:
        return run(crops)
    finally:
        close()


def _tflite_outputs(path: Path, crops: np.ndarray) -> np.ndarray:
    from ..stages.landmarks.cnn import load_tflite

    run, close = load_tflite(path)
    try:
        return run(crops)
    finally:
        close()
