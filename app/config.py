"""Run settings: one frozen dataclass, built by the CLI and read by the composition root."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .paths import FACENET_FAMILIES, FACENET_VARIANTS, default_gallery_path

# The one list of each kind of name; stages, the CLI and the lab read them from here.
DETECTORS = ("blazeface", "blazeface-short", "hog")
LANDMARK_MODELS = ("cnn", "dlib")
# Landmark models each mode runs; the first one's points are the face's landmarks.
MODE_MODELS = {"cnn": ("cnn",), "dlib": ("dlib",), "both": ("cnn", "dlib")}
LANDMARK_MODES = tuple(MODE_MODELS)
LANDMARK_BACKENDS = ("tflite", "pb", "saved_model")  # tflite: no TensorFlow at run time
EVENTS_ON = ("frame", "change")   # --events-on: a line per frame, or per track event
# FaceNet embedders are <family>-<variant> (app.stages.embed): int8 first, the reference .pb last.
EMBEDDER_VARIANTS = (*reversed(FACENET_VARIANTS), "pb")
FAMILY_EMBEDDERS = tuple(f"{family}-{variant}" for family in FACENET_FAMILIES
                         for variant in EMBEDDER_VARIANTS)
# The bare variant names of the CASIA-only days, still accepted (galleries, scripts).
EMBEDDER_ALIASES = {variant: f"casia-{variant}" for variant in EMBEDDER_VARIANTS}
EMBEDDERS = (*FAMILY_EMBEDDERS, *EMBEDDER_ALIASES)
DEFAULT_EMBEDDER = "keras-int8"   # chosen by measurement: models/README.md
# Exit codes of every command: the one definition (the README's table and --help are
# checked against it, tests/test_round2.py); 128 + SIGINT / SIGTERM, as shells expect.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "a runtime failure: a camera, stream or file lost mid-run, a missing or "
                 "damaged model file, an output that could not be written (full disk)",
    EXIT_BAD_INPUT: "bad input: arguments, files, photos, the gallery, an output that would "
                    "overwrite an input or cannot be written",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}


def max_threads() -> int:
    """The most threads per model: this machine's cores (more only slow it down)."""
    return os.cpu_count() or 1


def default_threads() -> int:
    """Threads per model for a run, from the cores: four interpreters run at once (two
    detection workers, the frame path's CNN, FaceNet's worker), so each gets a quarter of
    the cores, at least one. On 2 cores 1 was measured fastest (README, How it runs)."""
    return max(1, max_threads() // 4)


def check_threads(threads: int, what: str = "--threads") -> int:
    """``threads`` if it is 1 to :func:`max_threads`, else ValueError saying so."""
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or not 1 <= threads <= max_threads():
        raise ValueError(f"{what} must be a whole number from 1 to {max_threads()} (the cores "
                         f"of this machine), got {threads!r}")
    return threads


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
    events: Path | None = None      # "-": standard output
    events_on: str = "frame"        # "frame": a line per frame; "change": per track event
    max_frames: int | None = None
    side_by_side: bool = False
    smooth: bool = True   # One Euro filter on landmarks per tracked face (app.stages.smooth)
    threads: int = field(default_factory=default_threads)   # per model (interpreter)
    progress: bool = True
    # Playback of a file in the window: x its frame rate; 0 as fast as possible (--fast);
    # None: 1.0 in a window, as fast as possible headless.
    speed: float | None = None
    loop: bool = False   # play a video file again from the start when it ends
    record_status: bool = False   # --output also records the window's status bar
    reconnect: bool = False   # a lost camera or stream is reopened with backoff, never ends
    # The detector runs every detect_every-th frame (0: the measured default,
    # app.stages.follow.DETECT_EVERY), and at once after a cut or a lost face; between,
    # each face's box comes from its landmarks. 1: every frame (bench --reference).
    detect_every: int = 0
    sync_embed: bool = False   # FaceNet on the frame path, not on its worker (--reference)

    def __post_init__(self):
        _check_choice("detector", self.detector, DETECTORS)
        _check_choice("landmarks", self.landmarks, LANDMARK_MODES)
        _check_choice("landmark backend", self.landmark_backend, LANDMARK_BACKENDS)
        _check_choice("embedder", self.embedder, EMBEDDERS)
        _check_choice("--events-on", self.events_on, EVENTS_ON)
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max frames must be >= 1, got {self.max_frames}")
        if self.speed is not None and not self.speed >= 0:
            raise ValueError(f"--speed must be positive (or use --fast), got {self.speed}")
        check_threads(self.threads)
        if isinstance(self.detect_every, bool) or not isinstance(self.detect_every, int) \
                or self.detect_every < 0:
            raise ValueError(f"--detect-every must be 1 or more (0: the default), got "
                             f"{self.detect_every!r}")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")

