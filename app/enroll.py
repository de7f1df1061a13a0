"""Teaching the gallery a person: from photos (``python -m app enroll``) or live (key ``e``).

Photos: every photo must hold exactly one face; all are checked and embedded before
anything is written, then stored in one transaction, so a bad photo stores nothing.

Live: :class:`LiveEnrolment` follows one track (the largest face when ``e`` was
pressed) and keeps frames that pass :func:`quality_problem` (big enough, sharp enough,
frontal enough by its landmarks), at least ``min_gap`` frames apart, until it has
``samples`` of them; the caller then stores them under the typed name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.gallery import clean_name
from app.types import Face, Frame

MIN_FACE_PX = 60          # box width; FaceNet's 160 px crop from less is mostly blur
MIN_SHARPNESS = 40.0      # variance of the Laplacian of the aligned grey crop
MAX_YAW_RATIO = 0.35      # |nose offset from the eye midline| / eye distance
LIVE_SAMPLES = 5
LIVE_MIN_GAP = 3          # frames between kept samples, so they are not all the same
LIVE_TIMEOUT_FRAMES = 300


class EnrolmentError(ValueError):
    """A photo or request that cannot be enrolled; the message names the file."""


def quality_problem(face: Face, aligned: np.ndarray | None = None) -> str | None:
    """Why ``face`` is not a good enrolment sample, or None if it is.

    ``aligned`` is its 160x160 aligned crop (sharpness is measured there so it does not
    depend on the face's size in the frame)."""
    width = float(face.box[2] - face.box[0])
    if width < MIN_FACE_PX:
        return f"face too small ({width:.0f} px wide, need {MIN_FACE_PX})"
    if face.landmarks is None:
        return "no landmarks"
    yaw = yaw_ratio(face.landmarks)
    if abs(yaw) > MAX_YAW_RATIO:
        return f"not frontal enough (turn {yaw:+.2f}, need within {MAX_YAW_RATIO})"
    if aligned is not None:
        sharpness = laplacian_variance(aligned)
        if sharpness < MIN_SHARPNESS:
            return f"too blurred (sharpness {sharpness:.0f}, need {MIN_SHARPNESS:.0f})"
    return None


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Signed horizontal offset of the nose tip from the midpoint of the eyes, in eye
    distances: about 0 for a frontal face, growing as the head turns."""
    points = np.asarray(landmarks, np.float64)
    right_eye, left_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    axis = left_eye - right_eye
    distance = float(np.linalg.norm(axis))
    if distance < 1e-6:
        return float("inf")
    offset = points[30] - (left_eye + right_eye) / 2
    return float(np.dot(offset, axis) / distance ** 2)


def laplacian_variance(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


# -- photos ------------------------------------------------------------------------------
@dataclass
class PhotoEnrolment:
    name: str
    person_id: int
    created_new: bool
    samples: int
    warnings: list[str] = field(default_factory=list)


def enroll_photos(pipeline, name: str, paths: list[str | Path]) -> PhotoEnrolment:
    """Enrol ``name`` from photos holding exactly one face each, all or nothing.

    Raises EnrolmentError naming the first photo that is unreadable or has 0 or 2+
    faces (nothing stored), ValueError for an empty name."""
    name = clean_name(name)
    if not paths:
        raise EnrolmentError("give at least one photo to enrol")
    faces, vectors, warnings = [], [], []
    for path in paths:
        image = read_photo(path)
        face = single_face(pipeline, image, path)
        vectors.append(pipeline.embed_faces(image, [face])[0])
        faces.append(face)
        problem = quality_problem(face, face.extras["aligned"])
        if problem:
            warnings.append(f"{path}: {problem} (enrolled anyway)")
    embeddings = np.stack(vectors)
    thumbnails = [face.extras["aligned"] for face in faces]
    person_id, created_new = pipeline.gallery.add_samples(name, embeddings, pipeline.model_id,
                                                          thumbnails, crop=pipeline.crop)
    return PhotoEnrolment(name, person_id, created_new, len(faces), warnings)


def read_photo(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise EnrolmentError(f"{path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EnrolmentError(f"{path}: not an image OpenCV can read (corrupt or unsupported)")
    return image


def single_face(pipeline, image: np.ndarray, path: str | Path) -> Face:
    """The one face in a photo, with landmarks; EnrolmentError for 0 or 2+ faces. A photo
    where the pipeline's detector finds nothing gets a second chance (app.photo_faces)."""
    from app.photo_faces import detect_photo, second_chance

    detections = detect_photo(image, pipeline.detector, second_chance(pipeline.detector))
    if len(detections) != 1:
        what = "no face" if not detections else f"{len(detections)} faces"
        raise EnrolmentError(f"{path}: found {what}; an enrolment photo must show exactly one "
                             f"face. Nothing was enrolled")
    face = Face(box=detections[0].box, score=detections[0].score)
    model = pipeline.landmark_models["cnn" if pipeline.landmarks != "dlib" else "dlib"]
    face.landmarks = model.predict(image, face.box)
    return face


# -- live ----------------------------------------------------------------------------------
class LiveEnrolment:
    """Collects samples of one track for a live enrolment (see module docstring).

    Call :meth:`offer` with each processed frame's faces; it returns True when enough
    samples are in. ``status`` is a one-line progress message for the screen."""

    def __init__(self, track_id: int, samples: int = LIVE_SAMPLES, min_gap: int = LIVE_MIN_GAP,
                 timeout_frames: int = LIVE_TIMEOUT_FRAMES):
        self.track_id = track_id
        self.wanted = samples
        self.min_gap = min_gap
        self.timeout_frames = timeout_frames
        self.name: str | None = None
        self.embeddings: list[np.ndarray] = []
        self.thumbnails: list[np.ndarray] = []
        self.frames_seen = 0
        self.last_problem: str | None = None
        self._last_kept: int | None = None

    @property
    def done(self) -> bool:
        return len(self.embeddings) >= self.wanted

    @property
    def timed_out(self) -> bool:
        return self.frames_seen >= self.timeout_frames and not self.done

    @property
    def status(self) -> str:
        text = f"enrolling #{self.track_id}: {len(self.embeddings)}/{self.wanted} samples"
        if self.last_problem and not self.done:
            text += f" ({self.last_problem})"
        return text

    def offer(self, pipeline, frame: Frame, faces: list[Face]) -> bool:
        if self.done:
            return True
        self.frames_seen += 1
        face = next((f for f in faces if f.track_id == self.track_id), None)
        if face is None:
            self.last_problem = "face not in view"
            return False
        if self._last_kept is not None and frame.index - self._last_kept < self.min_gap:
            return False
        if face.landmarks is None:
            return False
        embedding = face.embedding
        if embedding is None or "aligned" not in face.extras:
            embedding = pipeline.embed_faces(frame.image, [face])[0]
        problem = quality_problem(face, face.extras["aligned"])
        self.last_problem = problem
        if problem is None:
            self.embeddings.append(np.asarray(embedding, np.float32))
            self.thumbnails.append(face.extras["aligned"])
            self._last_kept = frame.index
        return self.done

    def store(self, pipeline) -> tuple[int, bool]:
        """Write the samples under ``self.name`` (one transaction)."""
        if not self.done:
            raise EnrolmentError(f"only {len(self.embeddings)} of {self.wanted} samples")
        return pipeline.gallery.add_samples(clean_name(self.name or ""),
                                            np.stack(self.embeddings), pipeline.model_id,
                                            self.thumbnails, crop=pipeline.crop)


def largest_face(faces: list[Face]) -> Face | None:
    if not faces:
        return None
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
