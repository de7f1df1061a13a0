"""Teaching the gallery a person: from photos (``python -m app enroll``) or live (key ``e``).

Photos: every photo must hold exactly one face; all are checked and embedded before
anything is written, then stored in one transaction, so a bad photo stores nothing.

Live: :class:`LiveEnrolment` follows one person (the clicked face, else the most
central, large, sharp one when ``e`` was pressed: :func:`pick_face`) and keeps frames
that pass :func:`quality_problem` (big enough, sharp enough, frontal enough by its
landmarks), at least ``min_gap`` frames apart, until it has ``samples`` of them; the
caller then stores them under the typed name. When the person's track ends (a cut, a
detection gap), the face whose embedding matches theirs takes over, so the collection
goes on under the new track id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..protocols import Detector
from ..stages.align import FIVE_POINT, crop_face
from ..stages.geometry import largest
from ..stages.images import ImageFileError, read_image
from ..types import Face, Frame
from .gallery import clean_name, name_key
from .photo_faces import detect_photo, main_face

# embed(image, faces) -> (N, D) embeddings of faces with landmarks, each face's aligned
# crop made on the way (``Pipeline.embed_faces``)
EmbedFaces = Callable[[np.ndarray, list[Face]], np.ndarray]

MIN_FACE_PX = 60          # box width; FaceNet's 160 px crop from less is mostly blur
MIN_SHARPNESS = 40.0      # variance of the Laplacian of the aligned grey crop
MAX_YAW_RATIO = 0.35      # |nose offset from the eye midline| / eye distance
LIVE_SAMPLES = 5
LIVE_MIN_GAP = 3          # frames between kept samples, so they are not all the same
LIVE_TIMEOUT_FRAMES = 300


class EnrolmentError(ValueError):
    """A photo or request that cannot be enrolled; the message names the file."""


class FaceCountError(EnrolmentError):
    """A photo with no face or several: ``boxes`` (x1, y1, x2, y2 each, best first) lets
    a caller ask which face was meant (``enroll_photos(..., face=i)``)."""

    def __init__(self, message: str, boxes: list[list[float]]):
        super().__init__(message)
        self.boxes = boxes


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


def enroll_photos(pipeline, name: str, paths: list[str | Path],
                  force: bool = False, face: int | None = None) -> PhotoEnrolment:
    """Enrol ``name`` from photos holding exactly one face each, all or nothing.

    Raises EnrolmentError naming the first photo that is unreadable or has 0 or 2+
    faces (:class:`FaceCountError`), or (unless ``force``) whose face already matches
    another enrolled person (nothing stored); ValueError for an empty name (checked before
    any photo is read; the gallery checks it again as it stores). ``face``: enrol the
    photo's face of that index (of :class:`FaceCountError`'s ``boxes``) from a single
    photo holding several."""
    name = clean_name(name)
    if not paths:
        raise EnrolmentError("give at least one photo to enrol")
    if face is not None and len(paths) != 1:
        raise EnrolmentError("choosing a face (face=N) needs exactly one photo")
    second = pipeline.second_detector
    faces = [photo_face(read_photo(path), pipeline.detector, pipeline.landmarker, path,
                        crop=pipeline.crop, second=second, index=face) for path in paths]
    warnings = [f"{path}: {problem} (enrolled anyway)" for path, face in zip(paths, faces)
                if (problem := quality_problem(face, face.aligned))]
    crops = np.stack([face.aligned for face in faces])
    embeddings = pipeline.embedder.embed(crops)
    stored, found = enrol_checked(pipeline.gallery, name, embeddings, pipeline.model_id,
                                  list(crops), pipeline.crop, pipeline.threshold, paths, force)
    return PhotoEnrolment(name, stored.person_id, stored.created_person, len(faces),
                          warnings + found)


def enrol_checked(gallery, name: str, embeddings: np.ndarray, model_id: str, thumbnails,
                  crop: str, threshold: float, labels: list, force: bool):
    """Store ``embeddings`` under ``name`` (``gallery.enrol``) after
    :func:`same_face_elsewhere`, which runs inside the write transaction, so two enrolments
    of one face under two names at once cannot both pass it. Returns (the
    :class:`~app.people.gallery.Enrolled` record, the warnings of ``force``)."""
    warnings: list[str] = []

    def check() -> None:
        warnings[:] = same_face_elsewhere(gallery, model_id, threshold, name, embeddings,
                                          labels, force)
    stored = gallery.enrol(name, embeddings, model_id, thumbnails, crop=crop, check=check)
    return stored, warnings


def same_face_elsewhere(gallery, model_id: str, threshold: float, name: str,
                        embeddings: np.ndarray, paths: list[str | Path],
                        force: bool) -> list[str]:
    """EnrolmentError (or, with ``force``, warnings) for photos whose face already matches
    another person enrolled in ``gallery`` (under ``model_id``) above ``threshold``: one
    face under two names confuses recognition."""
    found, others = [], []
    matches = gallery.match(embeddings, model_id, threshold)
    for path, match in zip(paths, matches):
        other, similarity = match.name, match.similarity
        if other is not None and name_key(other) != name_key(name):
            others.append(other)
            found.append(f"{path}: this face already matches {other!r} (similarity "
                         f"{similarity:.2f}, threshold {threshold:.2f})")
    if found and not force:
        raise EnrolmentError("; ".join(found) + f". Nothing was enrolled. If {name!r} is "
                             f"really someone else, enrol again with --force; to add photos "
                             f"to {others[0]!r}, use --name {others[0]!r}")
    return [f"{text} (enrolled anyway: --force)" for text in found]


def read_photo(path: str | Path) -> np.ndarray:
    """A photo's pixels; EnrolmentError for a missing, truncated, damaged or huge file."""
    try:
        return read_image(path)
    except ImageFileError as exc:
        raise EnrolmentError(f"{exc}. Nothing was enrolled") from exc


PICKS = ("one", "largest", "best", "main")


def photo_face(image: np.ndarray, detector: Detector, landmarker, path: str | Path = "photo",
               pick: str = "one", crop: str = FIVE_POINT,
               second: Detector | None = None, index: int | None = None) -> Face | None:
    """The face of a photo with its landmarks and ``crop`` (``face.aligned``): the one
    path from a photo to an aligned face (enrolment, the demo, evaluation, the model
    toolchain's calibration crops). A photo is also looked at by ``second`` when given
    (app.people.photo_faces: the other BlazeFace range, ``app.factory.second_chance``),
    which finds faces the first misses.

    ``pick`` "one": the photo must hold exactly one face (EnrolmentError naming ``path``
    otherwise); "largest" / "best" (highest score) / "main" (big and central, FaceNet's
    LFW rule): that face, None when there is none. ``index``: the face of that index
    (best score first) whatever ``pick`` says."""
    if pick not in PICKS:
        raise ValueError(f"unknown pick {pick!r}; expected one of {PICKS}")
    detections = detect_photo(image, detector, second)
    boxes = [[round(float(v), 1) for v in d.box] for d in detections]
    if index is not None and not 0 <= index < len(detections):
        raise FaceCountError(f"{path}: no face {index} (found {len(detections)}). Nothing "
                             f"was enrolled", boxes)
    if index is None and pick == "one" and len(detections) != 1:
        what = "no face" if not detections else f"{len(detections)} faces"
        raise FaceCountError(f"{path}: found {what}; an enrolment photo must show exactly one "
                             f"face. Nothing was enrolled", boxes)
    if index is not None:
        chosen = detections[index]
    elif pick == "largest":
        chosen = largest(detections)
    elif pick == "main":
        chosen = main_face(detections, image.shape)
    else:
        chosen = detections[0] if detections else None
    if chosen is None:
        return None
    face = Face(box=chosen.box, score=chosen.score)
    face.landmarks = landmarker.predict(image, face.box)
    face.aligned = crop_face(image, face.landmarks, crop)
    return face


# -- live ----------------------------------------------------------------------------------
def box_width(face: Face) -> float:
    return float(face.box[2] - face.box[0])


def pick_face(faces: list[Face], image: np.ndarray,
              point: tuple[float, float] | None = None) -> Face | None:
    """The face to enrol: the one under ``point`` (a click; the smallest box holding it),
    else the one with the best size x centrality x sharpness (so not a blurred hand or a
    face at the edge). Only tracked faces with landmarks can be enrolled."""
    usable = [f for f in faces if f.track_id is not None and f.landmarks is not None]
    if point is not None:
        x, y = point
        under = [f for f in usable if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]]
        return min(under, key=box_width, default=None)
    return max(usable, key=lambda f: enrol_score(f, image), default=None)


def enrol_score(face: Face, image: np.ndarray) -> float:
    """Size (box width) x centrality (1 at the centre, 0 in a corner) x sharpness
    (Laplacian variance of the box, up to the enrolment minimum)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in np.clip(face.box, 0, [w, h, w, h]))
    crop = image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    if crop.size == 0:
        return 0.0
    sharp = laplacian_variance(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))
    centre = np.array([(x1 + x2) / 2 / w - 0.5, (y1 + y2) / 2 / h - 0.5])
    centrality = 1.0 - float(np.linalg.norm(centre)) / np.hypot(0.5, 0.5)
    return box_width(face) * max(centrality, 0.05) * min(1.0, sharp / MIN_SHARPNESS)


class LiveEnrolment:
    """Collects samples of one track for a live enrolment (see module docstring).

    Call :meth:`offer` with each processed frame's faces; it returns True when enough
    samples are in. ``status`` is a one-line progress message for the screen. Another
    track is taken for the person's when its face is like theirs by ``threshold`` (the
    recognition threshold)."""

    def __init__(self, track_id: int, threshold: float, samples: int = LIVE_SAMPLES,
                 min_gap: int = LIVE_MIN_GAP, timeout_frames: int = LIVE_TIMEOUT_FRAMES,
                 reference: np.ndarray | None = None):
        self.track_id = track_id
        self.threshold = threshold
        self.reference = reference           # the person's embedding when chosen (unit)
        self.followed: list[int] = []        # earlier track ids of the same person
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
        if self.followed:
            text += f" (followed from #{self.followed[0]})"
        if self.last_problem and not self.done:
            text += f" ({self.last_problem})"
        return text

    @property
    def summary(self) -> str:
        """For the end of an enrolment that did not finish: who, how far, why."""
        who = self.name or f"face #{self.track_id}"
        text = f"{who}: {len(self.embeddings)}/{self.wanted} samples in {self.frames_seen} frames"
        return f"{text} (last problem: {self.last_problem})" if self.last_problem else text

    def offer(self, embed: EmbedFaces, frame: Frame, faces: list[Face]) -> bool:
        """Take a sample from ``frame`` if the person is there, far enough from the last
        sample and good enough (``embed`` makes the embeddings the faces lack)."""
        if self.done:
            return True
        self.frames_seen += 1
        face = next((f for f in faces if f.track_id == self.track_id), None)
        if face is None:
            face = self._same_person(embed, frame, faces)
        if face is None:
            self.last_problem = "face not in view"
            return False
        if self._last_kept is not None and frame.index - self._last_kept < self.min_gap:
            return False
        if face.landmarks is None:
            return False
        embedding = face.embedding
        if embedding is None or face.aligned is None:
            embedding = embed(frame.image, [face])[0]
        problem = quality_problem(face, face.aligned)
        self.last_problem = problem
        if problem is None:
            if self.reference is None:
                self.reference = np.asarray(embedding, np.float32)
            self.embeddings.append(np.asarray(embedding, np.float32))
            self.thumbnails.append(face.aligned)
            self._last_kept = frame.index
        return self.done

    def _same_person(self, embed: EmbedFaces, frame: Frame, faces: list[Face]) -> Face | None:
        """The face (on another track) most like the person being enrolled, if it is
        like them by the recognition threshold; the enrolment follows it from now on."""
        known = [self.reference] if self.reference is not None else []
        candidates = sorted((f for f in faces if f.landmarks is not None
                             and f.track_id is not None), key=lambda f: -box_width(f))[:4]
        if not (known or self.embeddings) or not candidates:
            return None
        missing = [f for f in candidates if f.embedding is None]
        fresh = dict(zip(map(id, missing), embed(frame.image, missing)))
        people = np.stack(known + self.embeddings)
        best, best_sim = None, self.threshold
        for face in candidates:
            embedding = face.embedding if face.embedding is not None else fresh[id(face)]
            similarity = float(np.max(people @ np.asarray(embedding, np.float32)))
            if similarity >= best_sim:
                best, best_sim = face, similarity
        if best is not None:
            self.followed.append(self.track_id)
            self.track_id = best.track_id
        return best

    def store(self, gallery, model_id: str, crop: str):
        """Write the samples under ``self.name`` into ``gallery`` (one transaction), filed
        under the embedder's ``model_id`` with the ``crop`` rule their thumbnails were cut
        by; returns the :class:`~app.people.gallery.Enrolled` record (its id lets the
        window undo exactly this)."""
        if not self.done:
            raise EnrolmentError(f"only {len(self.embeddings)} of {self.wanted} samples")
        return gallery.enrol(self.name or "", np.stack(self.embeddings), model_id,
                             self.thumbnails, crop=crop)
