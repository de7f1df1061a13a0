"""Run settings: one frozen dataclass, built by the CLI and read by the composition root."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.embed import ALIASES, EMBEDDERS as FAMILY_EMBEDDERS
from app.gallery import default_gallery_path

DETECTORS = ("blazeface", "blazeface-short", "hog")
LANDMARK_MODES = ("cnn", "dlib", "both")
LANDMARK_BACKENDS = ("tflite", "pb", "saved_model")  # tflite: no TensorFlow at run time
# <family>-<variant> (app.embed), then the bare CASIA names older galleries and scripts use.
EMBEDDERS = (*FAMILY_EMBEDDERS, *ALIASES)
DEFAULT_EMBEDDER = "keras-int8"   # chosen by measurement: models/README.md


@dataclass(frozen=True)
class RunConfig:
    source: str = "0"
    detector: str = "blazeface"
    landmarks: str = "cnn"
    landmark_backend: str = "tflite"
    embedder: str = DEFAULT_EMBEDDER
    threshold: float | None = None   # None: the embedder family's measured threshold
    gallery: Path = field(default_factory=default_gallery_path)
    headless: bool = False
    output: Path | None = None
    events: Path | None = None
    max_frames: int | None = None
    side_by_side: bool = False
    smooth: bool = True   # One Euro filter on landmarks per tracked face (app.smooth)
    threads: int = 1   # per model: detection and the rest already run on two threads
    progress: bool = True

    def __post_init__(self):
        _check_choice("detector", self.detector, DETECTORS)
        _check_choice("landmarks", self.landmarks, LANDMARK_MODES)
        _check_choice("landmark backend", self.landmark_backend, LANDMARK_BACKENDS)
        _check_choice("embedder", self.embedder, EMBEDDERS)
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max frames must be >= 1, got {self.max_frames}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")

