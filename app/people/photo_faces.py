"""The photo path's face finding (enrolment, evaluation; never the video loop): both
BlazeFace ranges, the photo's main face, and re-cutting a stored gallery crop made by
another crop rule.

BlazeFace full-range misses some close, large faces (19 of LFW View 1's 4,992 photos
without any face found; 3 more where it misses the central person and finds only a
neighbour); its short-range model, made for faces that fill the frame, finds them. So
every photo is looked at by both ranges and their faces merged: where the first finds
nothing, the second's faces; else a face of the second that overlaps none of the first
and is confident and large (score >= 0.7, side >= 0.3 of the photo's shorter side: on
smaller boxes it fired on a cymbal, a raised hand, a logo, which made enrolment refuse
one-face photos). On 5,110 LFW and 5-celebrity photos that adds a face to 16 photos (each
a real second person) and changes the main face of 3 (each to the person the photo is
of). Video keeps one detector per frame (a second pass would cost every frame twice); a
photo is looked at once, so the ~3 ms are cheap. The second range's detector is built by
the composition root (``app.factory.second_chance``) and handed in by the caller.

The main face of a photo is the one FaceNet's own LFW alignment keeps (davidsandberg/
facenet align_dataset_mtcnn.py): the largest box area minus twice the squared distance of
its centre from the photo's centre, i.e. big and central. In LFW View 1, 364 photos show
more than one face; in 85 BlazeFace scores a background face highest (taking the best
score cost keras-int8 2 points on dev train, 97.2 % vs 99.2 % with the largest face), and
in 17 the largest face is not the central one, the person the photo is of (see
models/README.md for what each rule scores).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..protocols import Detector
from ..stages.align import crop_face
from ..stages.geometry import box_area, iou_matrix
from ..types import Detection

SAME_FACE_IOU = 0.3  # a second-range box overlapping a first-range one this much is that face
EXTRA_MIN_SCORE = 0.7  # a face only the second range finds, beside the first's: confident,
EXTRA_MIN_SIDE = 0.3   # and this large a part of the photo's shorter side
THUMBNAIL_PAD = 0.5  # of a stored crop's side, each way: room for the detector and new crop


def main_face(detections: list[Detection], image_shape) -> Detection | None:
    """The photo's main face: largest area minus 2 x squared offset from the centre (the
    rule of FaceNet's LFW alignment), or None when there is no face."""
    if not detections:
        return None
    centre = np.array([image_shape[1], image_shape[0]], np.float64) / 2

    def weight(d: Detection) -> float:
        box = np.asarray(d.box, np.float64)
        offset = (box[:2] + box[2:]) / 2 - centre
        return float(box_area(box) - 2.0 * (offset ** 2).sum())
    return max(detections, key=weight)


def detect_photo(image: np.ndarray, detector: Detector, second: Detector | None = None
                 ) -> list[Detection]:
    """Faces of a still photo, best score first: ``detector``'s, else (nothing found)
    ``second``'s; plus each of ``second``'s that overlaps none of the first's (IoU <
    SAME_FACE_IOU) and is confident and large (see the module docstring). ``second`` is
    the other BlazeFace range, which the caller builds (``app.factory.second_chance``)."""
    detections = list(detector.detect(image))
    if second is None:
        return detections
    extra = list(second.detect(image))
    if detections and extra:
        overlap = iou_matrix(np.array([d.box for d in extra], np.float64),
                             np.array([d.box for d in detections], np.float64))
        min_side = EXTRA_MIN_SIDE * min(image.shape[:2])
        extra = [d for d, row in zip(extra, overlap) if row.max() < SAME_FACE_IOU
                 and d.score >= EXTRA_MIN_SCORE
                 and min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min_side]
    return sorted(detections + extra, key=lambda d: -d.score)


def recrop_thumbnail(thumbnail: np.ndarray, crop: str, detector: Detector, landmark_model,
                     second: Detector | None = None) -> np.ndarray | None:
    """A stored face crop made by another crop rule -> ``crop``, or None when no face is
    found in it. The thumbnail is padded (edge pixels repeated), its face found (by
    ``detector`` and ``second``, as :func:`detect_photo`) and landmarked again, and the new
    crop cut from it; what the old crop left out is repeated edge (Alex Lacamoire's photo:
    0.83 cosine to the crop cut from the photo)."""
    pad = int(round(thumbnail.shape[0] * THUMBNAIL_PAD))
    padded = cv2.copyMakeBorder(thumbnail, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face = main_face(detect_photo(padded, detector, second), padded.shape)
    if face is None:
        return None
    return crop_face(padded, landmark_model.predict(padded, face.box), crop)

