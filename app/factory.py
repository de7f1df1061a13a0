"""Builds the stages a :class:`~app.config.RunConfig` names (the composition root's half
that knows concrete classes; ``app.session`` wires them into the main loop)."""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from .config import LANDMARK_MODELS, RunConfig
from .pipeline import LazyModels, Pipeline
from .stages.cuts import CutDetector
from .stages.follow import DETECT_EVERY, BoxFollower
from .stages.smooth import LandmarkSmoother
from .stages.track import Tracker

# Detector name -> the crop rule (in the CNN's io.json) fitted to that detector's boxes.
CROP_RULE_OF = {"blazeface": "blazeface", "blazeface-short": "blazeface", "hog": "hog"}
_OTHER_RANGE = {"full": "short", "short": "full"}
_second_chances: dict[str, object] = {}


def build_detector(name: str, threads: int = 2):
    if name == "hog":
        from .stages.detect import HogDetector
        return HogDetector()
    from .stages.detect import BlazeFaceDetector
    model = "short" if name == "blazeface-short" else "full"
    return BlazeFaceDetector(model=model, num_threads=threads)


def second_chance(detector):
    """The photo path's second detector for ``detector`` (app.people.photo_faces): the
    other BlazeFace range for a BlazeFace detector (built once, then kept), None for any
    other detector."""
    model = getattr(detector, "model", None)
    if model not in _OTHER_RANGE:
        return None
    other = _OTHER_RANGE[model]
    if other not in _second_chances:
        from .stages.detect import BlazeFaceDetector
        _second_chances[other] = BlazeFaceDetector(model=other)
    return _second_chances[other]


def build_landmark_model(name: str, detector: str = "blazeface", backend: str = "tflite",
                         threads: int | None = None, model_dir=None):
    """One landmark model: "dlib", or "cnn" with the crop rule fitted to ``detector``'s
    boxes (a box source of the lab such as "gt" names its own rule; a rule the model's
    io.json lacks falls back to its "default" one, with a note)."""
    if name == "dlib":
        from .stages.landmarks.dlib68 import Dlib68Landmarks
        return Dlib68Landmarks()
    if name != "cnn":
        raise ValueError(f"unknown landmark model {name!r}; expected one of {LANDMARK_MODELS}")
    from .paths import CNN68_DIR
    from .stages.landmarks.cnn import CnnLandmarks, read_io

    model_dir = Path(model_dir or CNN68_DIR)
    rule = CROP_RULE_OF.get(detector, detector)
    if rule not in read_io(model_dir / "io.json")["crop_rules"]:
        print(f"note: {model_dir}/io.json has no crop rule for {detector} boxes; "
              "using 'default'", file=sys.stderr)
        rule = "default"
    return CnnLandmarks(model_dir, backend=backend, detector=rule, num_threads=threads)


def build_landmark_models(detector: str, backend: str = "tflite",
                          threads: int | None = None) -> LazyModels:
    """Every landmark model, each built on first use."""
    return LazyModels({name: partial(build_landmark_model, name, detector, backend, threads)
                       for name in LANDMARK_MODELS})


def build_embedder(name: str, threads: int = 2):
    """``name`` is ``<family>-<variant>`` (or a bare CASIA variant), see app.stages.embed."""
    from .paths import facenet_tflite_path
    from .stages.embed import PbEmbedder, TfliteEmbedder, resolve_embedder
    family, variant = resolve_embedder(name)
    if variant == "pb":
        return PbEmbedder(num_threads=threads, family=family.name)
    return TfliteEmbedder(facenet_tflite_path(variant, family.name), num_threads=threads,
                          family=family.name)


def build_pipeline(config: RunConfig, gallery) -> Pipeline:
    """Every model the config names, loaded now (so a missing file fails before any frame).

    Without an explicit threshold the embedder family's own (measured) one applies."""
    embedder = build_embedder(config.embedder, config.threads)
    threshold = embedder.family.threshold if config.threshold is None else config.threshold
    detector = build_detector(config.detector, config.threads)
    return Pipeline(detector=detector,
                    landmark_models=build_landmark_models(config.detector,
                                                          config.landmark_backend,
                                                          config.threads),
                    embedder=embedder, gallery=gallery, threshold=threshold,
                    tracker=Tracker(),
                    landmarks="both" if config.side_by_side else config.landmarks,
                    smoother=LandmarkSmoother() if config.smooth else None,
                    cuts=CutDetector(),
                    detector_factory=lambda: build_detector(config.detector, config.threads),
                    worker_landmarks=_worker_landmarks(config),
                    second_chance=partial(second_chance, detector),
                    follower=None if config.detect_every == 1
                    else BoxFollower(config.detect_every or DETECT_EVERY))


def _worker_landmarks(config: RunConfig) -> bool:
    """Whether detection workers get their own CNN: for the .tflite CNN (light) when it
    may be used (CNN landmarks, or a window whose keys may switch to them); the
    TensorFlow backends are references, kept on the main thread."""
    return config.landmark_backend == "tflite" and (config.landmarks == "cnn"
                                                    or not config.headless)
