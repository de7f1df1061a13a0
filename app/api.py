"""The public Python API: ``import facelandmarks``.

Two modes, as MediaPipe Tasks have them:

* **image mode**, :meth:`Recognizer.faces`: one picture, nothing carried from one call to
  the next (no tracks, name votes or landmark smoothing), every face embedded and matched;
* **video mode**, :meth:`Recognizer.stream`: consecutive frames of one video, with the
  run's tracking (ids, re-verification, name votes over frames), One Euro smoothing of the
  landmarks and scene-cut handling, exactly what ``facelandmarks run`` does per frame.

Plus the gallery operations of the CLI (:meth:`Recognizer.enroll`, ``people``, ``remove``,
``rename``, with the same refusals) and, for one-off use, :func:`detect`,
:func:`landmarks` and :func:`embeddings`, whose models load once, on first use, never at
import. Images are BGR ``uint8`` arrays of shape (H, W, 3), as ``cv2.imread`` returns them;
boxes are ``(x1, y1, x2, y2)`` in pixels. Models are not thread safe: use one
:class:`Recognizer` per thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .config import DEFAULT_EMBEDDER, RunConfig
from .factory import build_detector, build_embedder, build_landmark_model, build_pipeline
from .paths import default_gallery_path
from .people.enroll import PhotoEnrolment, enroll_photos
from .people.gallery import Gallery, Person
from .stages.align import crop_face
from .stages.images import check_bgr_frame
from .stages.landmarks import predict_boxes
from .types import Detection, Frame
from .types import Face as StageFace

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class Face:
    """One face found in an image or frame."""
    box: tuple[float, float, float, float]   # x1, y1, x2, y2 in pixels
    score: float                             # the detector's confidence
    landmarks: np.ndarray                    # (68, 2) float32 pixels, iBUG 300-W order
    name: str | None                         # None: unknown (or nobody enrolled)
    similarity: float | None                 # cosine to the best enrolled person; None: none
    embedding: np.ndarray | None             # (D,) float32 unit vector (video mode: only
    #                                          on the frames the face was embedded)
    track: int | None = None                 # video mode: the face's track id


class Recognizer:
    """Find, landmark and name faces against a gallery of enrolled people.

    ``gallery``: the SQLite gallery file (created when missing; default: the CLI's,
    ``~/.local/share/facelandmarks/gallery.sqlite3``). ``embedder``: a FaceNet
    ``<family>-<variant>`` (default keras-int8); ``landmarks``: "cnn" (ours) or "dlib";
    ``detector``: "blazeface", "blazeface-short" or "hog"; ``threshold``: the cosine below
    which a face is unknown (default: the embedder family's measured one).

    Use it as a context manager (or call :meth:`close`)::

        with facelandmarks.Recognizer(gallery="people.db") as rec:
            rec.enroll("Ada Lovelace", ["ada.jpg"])
            for face in rec.faces(cv2.imread("group.jpg")):
                print(face.name, face.similarity, face.box)
    """

    def __init__(self, gallery: str | Path | None = None, *, embedder: str = DEFAULT_EMBEDDER,
                 landmarks: str = "cnn", detector: str = "blazeface",
                 threshold: float | None = None, threads: int = 1):
        config = RunConfig(source="", detector=detector, landmarks=landmarks,
                           embedder=embedder, threshold=threshold, threads=threads,
                           gallery=Path(gallery) if gallery else default_gallery_path())
        self._gallery = Gallery(config.gallery)
        try:
            self._pipeline = build_pipeline(config, self._gallery)
            # people enrolled with another embedder or crop are re-embedded from their
            # stored crops, as `run` and `enroll` do
            self._pipeline.sync_gallery()
        except BaseException:
            self._gallery.close()
            raise
        self._lock = threading.Lock()

    # -- image mode ----------------------------------------------------------------------
    def faces(self, image: np.ndarray) -> list[Face]:
        """Every face in ``image`` with its landmarks, embedding and name; no state is
        carried from one call to the next."""
        check_bgr_frame(image)
        with self._lock:
            pipeline = self._pipeline
            detections, _ = pipeline.detect(image)
            faces = [StageFace(box=d.box, score=d.score) for d in detections]
            points = predict_boxes(pipeline.landmarker, image, [f.box for f in faces])
            for face, face_points in zip(faces, points):
                face.landmarks = face_points
            vectors = pipeline.embed_faces(image, faces)
            matches = (pipeline.gallery.match(vectors, pipeline.model_id, pipeline.threshold)
                       if faces else [])
            return [_public(f, v, m.name, m.similarity)
                    for f, v, m in zip(faces, vectors, matches)]

    # -- video mode ----------------------------------------------------------------------
    def stream(self, frames: Iterable[np.ndarray],
               fps: float = DEFAULT_FPS) -> Iterator[list[Face]]:
        """The faces of each frame of one video, in order, with track ids and names voted
        over frames (a face is embedded at its track's birth, after a jump and every 15
        frames, as in ``facelandmarks run``). Each call starts new tracks."""
        with self._lock:
            self._pipeline.tracker.reset()
        for index, image in enumerate(frames):
            check_bgr_frame(image)
            with self._lock:
                result = self._pipeline.process(Frame(index, image, index * 1000.0 / fps))
            yield [_public(f, f.embedding, f.name, f.similarity) for f in result.faces]

    # -- people --------------------------------------------------------------------------
    def enroll(self, name: str, photos: Sequence[str | Path],
               force: bool = False) -> PhotoEnrolment:
        """Enrol ``name`` from photos that each show exactly one face, all or nothing:
        ``EnrolmentError`` (a ``ValueError``) names the first photo that is unreadable,
        holds no face or several, or (unless ``force``) shows someone already enrolled
        under another name; nothing is stored then."""
        with self._lock:
            report = enroll_photos(self._pipeline, name, list(photos), force=force)
            self._pipeline.tracker.forget_names("enrolled")
        return report

    def people(self) -> list[Person]:
        """Everyone enrolled, with their sample counts."""
        return self._gallery.people()

    def remove(self, name: str) -> int:
        """Remove ``name`` (``PersonNotFound`` if unknown); returns the samples removed."""
        with self._lock:
            count = self._gallery.remove(name)
            self._pipeline.tracker.forget_names("removed")
        return count

    def rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new`` (``PersonNotFound`` if unknown, ``GalleryError`` if
        ``new`` is taken)."""
        with self._lock:
            self._gallery.rename(old, new)
            self._pipeline.tracker.forget_names("renamed")

    @property
    def gallery_path(self) -> Path:
        return self._gallery.path

    def close(self) -> None:
        """Close the models and the gallery (idempotent)."""
        pipeline, self._pipeline = getattr(self, "_pipeline", None), None
        if pipeline is not None:
            pipeline.close()
            self._gallery.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _public(face: StageFace, embedding, name: str | None,
            similarity: float | None) -> Face:
    box = tuple(float(v) for v in face.box)
    return Face(box=box, score=float(face.score),
                landmarks=np.asarray(face.landmarks, np.float32), name=name,
                similarity=None if similarity is None else float(similarity),
                embedding=None if embedding is None else np.asarray(embedding, np.float32),
                track=face.track_id)


# -- one-off conveniences (models cached per name, loaded on first use) ------------------
_models_lock = threading.Lock()


def detect(image: np.ndarray, detector: str = "blazeface") -> list[Detection]:
    """Face boxes in ``image`` (``Detection.box`` x1, y1, x2, y2; ``.score``), best first."""
    check_bgr_frame(image)
    with _models_lock:
        return _detector(detector).detect(image)


def landmarks(image: np.ndarray, boxes: Sequence | None = None, model: str = "cnn",
              detector: str = "blazeface") -> list[np.ndarray]:
    """68 points, a (68, 2) float32 array per face: in ``boxes`` (x1, y1, x2, y2 each),
    or in the faces :func:`detect` finds. ``model``: "cnn" (ours) or "dlib"."""
    check_bgr_frame(image)
    with _models_lock:
        if boxes is None:
            boxes = [d.box for d in _detector(detector).detect(image)]
        boxes = [np.asarray(b, np.float32) for b in boxes]
        points = predict_boxes(_landmark_model(model, detector), image, boxes)
        return [np.asarray(p, np.float32) for p in points]


def embeddings(image: np.ndarray, face_landmarks: Sequence[np.ndarray] | None = None,
               embedder: str = DEFAULT_EMBEDDER) -> np.ndarray:
    """(N, D) unit FaceNet embeddings, one per face: of the faces whose 68 points are
    given, or of every face :func:`landmarks` finds; compare two with a dot product."""
    points = landmarks(image) if face_landmarks is None else list(face_landmarks)
    with _models_lock:
        model = _embedder(embedder)
        if not points:
            return np.zeros((0, model.family.dim), np.float32)
        crops = np.stack([crop_face(image, np.asarray(p, np.float32), model.crop)
                          for p in points])
        return model.embed(crops)


@lru_cache(maxsize=None)
def _detector(name: str):
    return build_detector(name, threads=1)


@lru_cache(maxsize=None)
def _landmark_model(name: str, detector: str):
    return build_landmark_model(name, detector)


@lru_cache(maxsize=None)
def _embedder(name: str):
    return build_embedder(name, threads=1)
