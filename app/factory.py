"""Builds the stages a :class:`~app.config.RunConfig` names (the composition root's half
that knows concrete classes; ``app.cli`` wires them into the main loop)."""
from __future__ import annotations

from app.config import RunConfig
from app.pipeline import LazyModels, Pipeline

# Detector name -> the crop rule (in the CNN's io.json) fitted to that detector's boxes.
CROP_RULE_OF = {"blazeface": "blazeface", "blazeface-short": "blazeface", "hog": "hog"}


def build_detector(name: str, threads: int = 2):
    if name == "hog":
        from app.detect import HogDetector
        return HogDetector()
    from app.detect import BlazeFaceDetector
    model = "short" if name == "blazeface-short" else "full"
    return BlazeFaceDetector(model=model, num_threads=threads)


def build_landmark_models(detector: str, backend: str = "pb",
                          threads: int | None = None) -> LazyModels:
    def cnn():
        from app.landmarks.cnn import CnnLandmarks
        return CnnLandmarks(backend=backend, detector=CROP_RULE_OF[detector],
                            num_threads=threads)

    def dlib():
        from app.landmarks.dlib68 import Dlib68Landmarks
        return Dlib68Landmarks()

    return LazyModels({"cnn": cnn, "dlib": dlib})


def build_embedder(name: str, threads: int = 2):
    if name == "pb":
        from app.embed import PbEmbedder
        return PbEmbedder(num_threads=threads)
    from app.embed import TfliteEmbedder
    from app.paths import facenet_tflite_path
    return TfliteEmbedder(facenet_tflite_path(name), num_threads=threads)


def build_pipeline(config: RunConfig, gallery) -> Pipeline:
    """Every model the config names, loaded now (so a missing file fails before any frame)."""
    return Pipeline(detector=build_detector(config.detector, config.threads),
                    landmark_models=build_landmark_models(config.detector,
                                                          config.landmark_backend,
                                                          config.threads),
                    embedder=build_embedder(config.embedder, config.threads),
                    gallery=gallery, threshold=config.threshold,
                    landmarks="both" if config.side_by_side else config.landmarks)
