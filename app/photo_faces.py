"""The photo path (enrolment and evaluation, never the video loop): find the faces of one
still photo with a second chance, and the main face's landmarks and crop.

BlazeFace full-range misses some close, large faces (19 of LFW View 1's 4,992 photos);
its short-range model, made for faces that fill the frame, finds all of them. So a photo
where the first model finds nothing is looked at again by the other range. Video keeps
one detector per frame (no second pass: it would cost every faceless frame twice).

The main face of a photo is the one FaceNet's own LFW alignment keeps (davidsandberg/
facenet align_dataset_mtcnn.py): the largest box area minus twice the squared distance of
its centre from the photo's centre, i.e. big and central. In LFW View 1, 364 photos show
more than one face; in 85 BlazeFace scores a background face highest (taking the best
score cost keras-int8 2 points on dev train, 97.2 % vs 99.2 % with the largest face), and
in 17 the largest face is not the central one, the person the photo is of (see
models/README.md for what each rule scores).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from app.types import Detection


def largest(detections: list[Detection]) -> Detection | None:
    """The detection with the largest box area, or None."""
    if not detections:
        return None
    return max(detections, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))


def main_face(detections: list[Detection], image_shape) -> Detection | None:
    """The photo's main face: largest area minus 2 x squared offset from the centre (the
    rule of FaceNet's LFW alignment), or None when there is no face."""
    if not detections:
        return None
    centre = np.array([image_shape[1], image_shape[0]], np.float64) / 2

    def weight(d: Detection) -> float:
        box = np.asarray(d.box, np.float64)
        offset = (box[:2] + box[2:]) / 2 - centre
        return float((box[2] - box[0]) * (box[3] - box[1]) - 2.0 * (offset ** 2).sum())
    return max(detections, key=weight)


def detect_photo(image: np.ndarray, detector, second=None) -> list[Detection]:
    """Faces of a still photo: ``detector``'s, else (nothing found) ``second``'s."""
    detections = detector.detect(image)
    if not detections and second is not None:
        detections = second.detect(image)
    return detections


_OTHER_RANGE = {"full": "short", "short": "full"}
_second_chances: dict[str, object] = {}


def second_chance(detector):
    """The other BlazeFace range for a BlazeFace detector (built once, then kept), None
    for any other detector."""
    model = getattr(detector, "model", None)
    if model not in _OTHER_RANGE:
        return None
    other = _OTHER_RANGE[model]
    if other not in _second_chances:
        from app.detect import BlazeFaceDetector
        _second_chances[other] = BlazeFaceDetector(model=other)
    return _second_chances[other]


class PhotoFaces:
    """Main face -> CNN landmarks -> the family's crop, per photo; detection and
    landmarks (the slow, crop-independent part) optionally cached in a pickle file so crop
    variants can be compared without re-detecting (``eval verify --cache FILE``)."""

    def __init__(self, detector: str = "blazeface", crop: str | None = None,
                 cache: Path | None = None, threads: int = 2):
        from app.align import DEFAULT_CROP
        from app.factory import build_detector, build_landmark_models

        self.crop_name = crop or DEFAULT_CROP
        self._detector = build_detector(detector, threads)
        self._second = second_chance(self._detector)
        self._landmarks = build_landmark_models(detector, threads=threads)
        self._cache_path = cache
        self._cache = _read_cache(cache)
        self._dirty = False

    def landmarks(self, image: np.ndarray, key: str | None = None) -> np.ndarray | None:
        """(68, 2) landmarks of the photo's main face, or None when it has no face."""
        if key is not None and key in self._cache:
            return self._cache[key]
        face = main_face(detect_photo(image, self._detector, self._second), image.shape)
        points = None if face is None else self._landmarks["cnn"].predict(image, face.box)
        if key is not None:
            self._cache[key] = points
            self._dirty = True
        return points

    def crop(self, path: Path, key: str | None = None) -> np.ndarray | None:
        """The 160x160 crop of the photo's main face, or None when it has no face."""
        from app.align import crop_face
        from app.enroll import read_photo

        image = read_photo(path)
        points = self.landmarks(image, key)
        return None if points is None else crop_face(image, points, self.crop_name)

    def close(self) -> None:
        if self._cache_path is not None and self._dirty:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._cache_path.write_bytes(pickle.dumps(self._cache))
        self._landmarks.close()


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        cache = pickle.loads(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is the same problem
        raise ValueError(f"--cache {path}: not a landmark cache ({exc}); delete it") from exc
    if not isinstance(cache, dict):
        raise ValueError(f"--cache {path}: not a landmark cache; delete it")
    return cache


# -- gallery thumbnails of another crop --------------------------------------------------
THUMBNAIL_PAD = 0.5  # of the thumbnail's side, each way: room for the detector and crop


def recrop_thumbnail(thumbnail: np.ndarray, crop: str, detector, landmark_model
                     ) -> np.ndarray | None:
    """A stored face crop made by another crop rule -> ``crop``, or None when no face is
    found in it. The thumbnail is padded (edge pixels repeated), its face found and
    landmarked again, and the new crop cut from it; what the old crop left out is
    repeated edge (measured in models/README.md: what it costs in accuracy)."""
    import cv2

    from app.align import crop_face

    pad = int(round(thumbnail.shape[0] * THUMBNAIL_PAD))
    padded = cv2.copyMakeBorder(thumbnail, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face = main_face(detector.detect(padded), padded.shape)
    if face is None:
        return None
    return crop_face(padded, landmark_model.predict(padded, face.box), crop)
