"""One frame through the stages: detect -> landmarks -> track -> align -> embed -> match.

:class:`Pipeline` owns no models itself; :func:`build_pipeline` (the composition root)
builds them from a :class:`~app.config.RunConfig`. Per frame::

    detections, ms = pipeline.detect(frame.image)      # may run on another thread
    result = pipeline.process(frame, detections, ms)   # faces with ids, names, landmarks

Only faces whose track asks for it (new, jumped, or not verified for 15 frames; see
``app.track``) are aligned and embedded, all in one embedder call per frame. Landmarks
are smoothed per track (One Euro filter, ``app.smooth``) when a smoother is given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from app.align import FIVE_POINT, crop_face
from app.embed import INPUT_SIZE as EMBED_INPUT_SIZE
from app.landmarks.metrics import nme
from app.smooth import LandmarkSmoother
from app.track import Tracker
from app.types import Detection, Face, Frame

# Landmark models that each mode runs; the first one's points are the face's landmarks.
MODE_MODELS = {"cnn": ("cnn",), "dlib": ("dlib",), "both": ("cnn", "dlib")}


@dataclass
class FrameResult:
    frame: Frame
    faces: list[Face]
    stage_ms: dict[str, float]
    landmark_ms_per_face: dict[str, float] = field(default_factory=dict)
    disagreement_nme: float | None = None  # mean NME between CNN and dlib ("both" mode)


class LazyModels:
    """Name -> model, each built by its factory on first use (dlib's 100 MB file loads
    only if someone asks for dlib landmarks)."""

    def __init__(self, factories: Mapping[str, Callable[[], object]]):
        self._factories = dict(factories)
        self._models: dict[str, object] = {}

    def __getitem__(self, name: str):
        if name not in self._models:
            if name not in self._factories:
                raise KeyError(f"no landmark model {name!r}; have {sorted(self._factories)}")
            self._models[name] = self._factories[name]()
        return self._models[name]

    def close(self) -> None:
        for model in self._models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()
        self._models.clear()


class Pipeline:
    """Runs the stages on one frame and decides when to re-embed (see module docstring)."""

    def __init__(self, detector, landmark_models: LazyModels, embedder, gallery,
                 threshold: float, landmarks: str = "cnn", tracker: Tracker | None = None,
                 smoother: LandmarkSmoother | None = None):
        self.detector = detector
        self.landmark_models = landmark_models
        self.embedder = embedder
        self.gallery = gallery
        self.threshold = threshold
        self.tracker = tracker or Tracker()
        self.smoother = smoother
        self.landmarks = landmarks

    @property
    def landmarks(self) -> str:
        return self._landmarks

    @landmarks.setter
    def landmarks(self, mode: str) -> None:
        if mode not in MODE_MODELS:
            raise ValueError(f"unknown landmarks mode {mode!r}; expected one of "
                             f"{', '.join(MODE_MODELS)}")
        for name in MODE_MODELS[mode]:
            self.landmark_models[name]  # load now, not in the middle of a frame
        self._landmarks = mode

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def crop(self) -> str:
        """The app.align crop this pipeline's embedder wants (five-point for test doubles)."""
        return getattr(self.embedder, "crop", FIVE_POINT)

    # -- per frame -------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> tuple[list[Detection], float]:
        start = time.perf_counter()
        detections = self.detector.detect(image)
        return detections, _ms_since(start)

    def process(self, frame: Frame, detections: list[Detection] | None = None,
                detect_ms: float | None = None) -> FrameResult:
        """Everything after detection for one frame (detects first if not given)."""
        if detections is None:
            detections, detect_ms = self.detect(frame.image)
        stage_ms = {"detect": detect_ms or 0.0}
        faces = [Face(box=d.box, score=d.score) for d in detections]
        result = FrameResult(frame, faces, stage_ms)
        self._landmarks_stage(frame.image, result)

        start = time.perf_counter()
        self.tracker.update(faces)
        if self.smoother is not None:
            self.smoother.apply(faces)
        stage_ms["track"] = _ms_since(start)

        due = [f for f in faces if f.extras.get("needs_embedding")]
        start = time.perf_counter()
        embeddings = self.embed_faces(frame.image, due)
        stage_ms["embed"] = _ms_since(start)

        start = time.perf_counter()
        matches = self.gallery.match(embeddings, self.model_id, self.threshold) if due else []
        for face, embedding, (name, similarity) in zip(due, embeddings, matches):
            face.embedding = embedding
            face.extras["match"] = (name, similarity)
            face.name, face.similarity = self.tracker.record_match(face.track_id, name,
                                                                   similarity)
        stage_ms["match"] = _ms_since(start)
        return result

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(N, D) embeddings of faces with landmarks, in one embedder call; aligned crops
        are kept in ``face.extras["aligned"]`` (enrolment stores them as thumbnails)."""
        if not faces:
            return np.zeros((0, 0), np.float32)
        crops = np.stack([crop_face(image, face.landmarks, self.crop) for face in faces])
        for face, crop in zip(faces, crops):
            face.extras["aligned"] = crop
        return self.embedder.embed(crops)

    # -- gallery -----------------------------------------------------------------------
    def sync_gallery(self) -> tuple[int, int]:
        """Embed, with this pipeline's embedder, the gallery samples that only another model
        embedded: from their stored crops when made by this embedder's crop rule, else from
        a crop re-made out of the stored one (``recrop_thumbnail``); never an old-crop
        thumbnail as it is. Returns (re-embedded, left out: no crop or no face in it)."""
        missing = self.gallery.samples_missing_model(self.model_id)
        ids, crops = [], []
        for sample in missing:
            crop = self._stored_crop(sample)
            if crop is not None:
                ids.append(sample.sample_id)
                crops.append(crop)
        if crops:
            self.gallery.add_embeddings(ids, self.embedder.embed(np.stack(crops)), self.model_id)
        return len(ids), len(missing) - len(ids)

    def _stored_crop(self, sample) -> np.ndarray | None:
        thumbnail = sample.thumbnail
        if thumbnail is None or thumbnail.shape[:2] != (EMBED_INPUT_SIZE, EMBED_INPUT_SIZE):
            return None
        if sample.crop == self.crop:
            return thumbnail
        from app.photo_faces import recrop_thumbnail
        return recrop_thumbnail(thumbnail, self.crop, self.detector, self.landmark_models["cnn"])

    def close(self) -> None:
        self.landmark_models.close()
        close = getattr(self.embedder, "close", None)
        if close is not None:
            close()

    # -- internals -----------------------------------------------------------------------
    def _landmarks_stage(self, image: np.ndarray, result: FrameResult) -> None:
        faces, names = result.faces, MODE_MODELS[self._landmarks]
        sets: dict[str, np.ndarray] = {}
        total = 0.0
        for name in names:
            start = time.perf_counter()
            sets[name] = self._predict(name, image, [f.box for f in faces])
            ms = _ms_since(start)
            total += ms
            if faces:
                result.landmark_ms_per_face[name] = ms / len(faces)
        result.stage_ms["landmarks"] = total
        for i, face in enumerate(faces):
            face.landmarks = sets[names[0]][i]
            face.extras["landmark_model"] = names[0]
            if len(names) > 1:
                face.extras["landmarks"] = {name: sets[name][i] for name in names}
        if len(names) > 1 and faces:
            result.disagreement_nme = float(np.mean(nme(sets["dlib"], sets["cnn"])))

    def _predict(self, name: str, image: np.ndarray, boxes: list) -> np.ndarray:
        model = self.landmark_models[name]
        if not boxes:
            return np.zeros((0, 68, 2), np.float32)
        if hasattr(model, "predict_many"):
            return model.predict_many(image, boxes)
        return np.stack([model.predict(image, box) for box in boxes])


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
