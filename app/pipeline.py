"""One frame through the stages: detect -> landmarks -> track -> align -> embed -> match.

:class:`Pipeline` owns no models itself; :func:`build_pipeline` (the composition root)
builds them from a :class:`~app.config.RunConfig`. Per frame::

    detections, ms = pipeline.detect(frame.image)      # may run on another thread
    result = pipeline.process(frame, detections, ms)   # faces with ids, names, landmarks

The run loop's detection workers (:meth:`Pipeline.detect_functions`) also run the CNN
on the boxes they found, each with its own interpreter, when the mode is "cnn": per-face
work then spreads over both cores instead of waiting on the main thread (a 2x2 mosaic of
four faces ran the CNN 4 times a frame there). ``process`` uses those points when the
mode is still the one they were made for, and landmarks the faces itself otherwise.

Only faces whose track asks for it (new, jumped, closer, or not verified for 30 frames;
see ``app.stages.track``) are aligned and embedded, all in one embedder call per frame. Landmarks
are smoothed per track (One Euro filter, ``app.stages.smooth``) when a smoother is given.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import numpy as np

from .config import MODE_MODELS
from .embed_worker import AsyncEmbedding, record_matches
from .people.resync import sync_gallery
from .protocols import Detector, Embedder
from .stages.align import crop_face
from .stages.follow import BoxFollower
from .stages.geometry import nme
from .stages.landmarks import predict_boxes
from .stages.smooth import LandmarkSmoother
from .stages.track import Tracker
from .types import Detection, Face, Frame, FrameResult


@dataclass
class EarlyLandmarks:
    """Landmarks a detection worker made for its frame's detections, in detection order."""
    mode: str
    points: np.ndarray   # (N, 68, 2)
    ms: float


class LazyModels:
    """Name -> model, each built by its factory on first use (dlib's 100 MB file loads
    only if someone asks for dlib landmarks), or ahead of time on a background thread
    (:meth:`preload`, where a key may switch to it) so no frame waits for it."""

    def __init__(self, factories: Mapping[str, Callable[[], object]]):
        self._factories = dict(factories)
        self._models: dict[str, object] = {}
        self._loading: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def preload(self, name: str) -> None:
        """Start building ``name`` on a daemon thread (once); an error shows on use."""
        with self._lock:
            if name in self._models or name in self._loading:
                return
            thread = threading.Thread(target=self._build_quietly, args=(name,),
                                      name=f"load-{name}", daemon=True)
            self._loading[name] = thread
        thread.start()

    def ready(self, name: str) -> bool:
        return name in self._models

    def build_another(self, name: str):
        """A new instance of ``name`` that nobody else uses (one per worker thread:
        interpreters are not thread safe); the caller closes it."""
        return self._factories[name]()

    def _build_quietly(self, name: str) -> None:
        try:
            model = self._factories[name]()
        except Exception:  # noqa: BLE001 -- raised again by __getitem__ on use
            return
        self._models.setdefault(name, model)

    def __getitem__(self, name: str):
        loading = self._loading.get(name)
        if loading is not None and name not in self._models:
            loading.join()
        if name not in self._models:
            if name not in self._factories:
                raise KeyError(f"no landmark model {name!r}; have {sorted(self._factories)}")
            self._models[name] = self._factories[name]()
        return self._models[name]

    def close(self) -> None:
        for thread in list(self._loading.values()):
            thread.join()
        for model in self._models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()
        self._models.clear()


class Pipeline:
    """Runs the stages on one frame and decides when to re-embed (see module docstring)."""

    def __init__(self, detector: Detector, landmark_models: LazyModels, embedder: Embedder,
                 gallery, threshold: float, tracker: Tracker, landmarks: str = "cnn",
                 smoother: LandmarkSmoother | None = None, cuts=None,
                 detector_factory: Callable[[], Detector] | None = None,
                 worker_landmarks: bool = False,
                 second_chance: Callable[[], Detector | None] | None = None,
                 follower: BoxFollower | None = None):
        self.detector = detector
        self.detector_factory = detector_factory   # more detectors for parallel workers
        self._second_chance = second_chance        # the photo path's second detector
        self.worker_landmarks = worker_landmarks   # workers also run the CNN (see above)
        self._workers: list[tuple] = []            # (detector, cnn or None) per worker
        self.landmark_models = landmark_models
        self.embedder = embedder
        self.gallery = gallery
        self.threshold = threshold
        self.tracker = tracker
        self.smoother = smoother
        self.cuts = cuts   # a CutDetector (app.stages.cuts): a new shot starts new tracks
        self._follower = follower      # boxes between detections, in video_mode only
        self.follower: BoxFollower | None = None
        self.embedding: AsyncEmbedding | None = None   # FaceNet's thread, in video_mode only
        self._pending: str | None = None
        self._warm = False
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
        self._pending = None

    @property
    def requested_landmarks(self) -> str:
        """The mode asked for last (still loading when it differs from ``landmarks``)."""
        return self._pending or self._landmarks

    def request_landmarks(self, mode: str) -> bool:
        """Switch to ``mode`` now if its models are loaded (True); else load them on a
        background thread and switch at the first frame after they are (False), so a
        key press never stalls frames on dlib's 100 MB file."""
        if mode not in MODE_MODELS:
            raise ValueError(f"unknown landmarks mode {mode!r}")
        missing = [n for n in MODE_MODELS[mode] if not self.landmark_models.ready(n)]
        if not missing:
            self.landmarks = mode
            return True
        for name in missing:
            self.landmark_models.preload(name)
        self._pending = mode
        return False

    @property
    def landmarker(self):
        """The landmark model whose points become ``face.landmarks`` in the current mode."""
        return self.landmark_models[MODE_MODELS[self._landmarks][0]]

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def crop(self) -> str:
        """The app.stages.align crop this pipeline's embedder wants."""
        return self.embedder.crop

    @property
    def second_detector(self) -> Detector | None:
        """The photo path's second detector beside ``detector`` (app.people.photo_faces:
        the other BlazeFace range), built on first use; None when there is none."""
        return self._second_chance() if self._second_chance is not None else None

    # -- per frame -------------------------------------------------------------------
    def detect(self, image: np.ndarray, detector=None) -> tuple[list[Detection], float]:
        start = time.perf_counter()
        detections = (detector or self.detector).detect(image)
        return detections, _ms_since(start)

    def detect_functions(self, count: int) -> list[Callable]:
        """Up to ``count`` functions for parallel workers, ``image -> (detections,
        detect_ms, EarlyLandmarks or None)``, each with its own detector (built once and
        kept; ``self.detector`` stays the frame path's own, which :meth:`process` uses
        after a cut or a lost face) and, with ``worker_landmarks``, its own CNN. Without
        a ``detector_factory``: one, sharing ``self.detector``."""
        while len(self._workers) < count and (not self._workers or self.detector_factory):
            detector = self.detector_factory() if self.detector_factory else self.detector
            cnn = self.landmark_models.build_another("cnn") if self.worker_landmarks else None
            _warm_up(detector, cnn)
            self._workers.append((detector, cnn))
        return [lambda image, d=d, c=c: self._detect_ahead(image, d, c)
                for d, c in self._workers[:count]]

    def warm_up(self, workers: int) -> None:
        """Build the ``workers`` detection workers and call every model once: first calls
        allocate (tens of ms), which would otherwise stall the first frames (a camera
        would drop them). Before a source starts; a second call costs nothing."""
        self.detect_functions(workers)
        if not self._warm:
            cnn = self.landmark_models["cnn"] if self._landmarks == "cnn" else None
            _warm_up(self.detector, cnn, self.embedder)
            self._warm = True

    def detect_wanted(self, frame: Frame) -> bool:
        """Whether detection ahead should run the detector on ``frame`` (the schedule;
        a lost face or a cut makes :meth:`process` detect by itself)."""
        return self.follower is None or self.follower.scheduled(frame.index)

    @contextmanager
    def video_mode(self, async_embed: bool = True, embed_lag: int | None = None,
                   hold: int = 0):
        """For the run loop: the detector on the follower's schedule (when the factory
        built one: ``--detect-every`` other than 1) and FaceNet on its own thread
        (``async_embed``; ``embed_lag``, ``hold``: :class:`AsyncEmbedding`'s lag, hold),
        its last faces finished at the end."""
        self.follower = self._follower
        self.embedding = AsyncEmbedding(self, embed_lag, hold) if async_embed else None
        try:
            yield self
        finally:
            embedding, self.embedding, self.follower = self.embedding, None, None
            if embedding is not None:
                embedding.finish()

    def _detect_ahead(self, image: np.ndarray, detector, cnn) -> tuple:
        detections, detect_ms = self.detect(image, detector)
        if cnn is None or self._landmarks != "cnn" or not detections:
            return detections, detect_ms, None
        start = time.perf_counter()
        points = cnn.predict_many(image, [d.box for d in detections])
        return detections, detect_ms, EarlyLandmarks("cnn", points, _ms_since(start))

    def process(self, frame: Frame, detections: list[Detection] | None = None,
                detect_ms: float | None = None,
                early: EarlyLandmarks | None = None) -> FrameResult:
        """Everything after detection for one frame (detects first if not given and due;
        between scheduled detections the faces are the follower's boxes; uses a worker's
        ``early`` landmarks when made for the current mode)."""
        self._switch_when_loaded()
        cut = self.cuts is not None and self.cuts.is_cut(frame.image)
        if cut:
            self.tracker.reset()  # ids keep increasing: none passes to another person
            if self.follower is not None:
                self.follower.reset()
        if detections is None and (self.follower is None
                                   or self.follower.wants_detection(frame.index)):
            detections, detect_ms = self.detect(frame.image)
        # no "detect" entry on a frame whose boxes were followed: bench counts detector frames
        stage_ms = {} if detections is None else {"detect": detect_ms or 0.0}
        faces = (self.follower.faces() if detections is None
                 else [Face(box=d.box, score=d.score) for d in detections])
        result = FrameResult(frame, faces, stage_ms)
        if early is not None and early.mode != self._landmarks:
            early = None
        self._landmarks_stage(frame.image, result, early)
        if detections is None:
            self.follower.refine(faces)

        start = time.perf_counter()
        self.tracker.update(faces)
        if self.follower is not None:
            self.follower.observe(faces, detections is not None, frame.image.shape)
        if self.smoother is not None:
            self.smoother.apply(faces)
        stage_ms["track"] = _ms_since(start)
        if self.embedding is None:
            due = [f for f in faces if f.track.needs_embedding]
            start = time.perf_counter()
            embeddings = self.embed_faces(frame.image, due)
            stage_ms["embed"] = _ms_since(start)
            stage_ms["match"] = record_matches(self, due, embeddings)
        else:
            self.embedding.step(frame, faces, stage_ms)
        return result

    def relandmark(self, result: FrameResult) -> FrameResult:
        """``result`` with the current mode's landmarks (a paused window after l or s);
        tracks, names and embeddings stay as they were, the tracker is not touched."""
        self._switch_when_loaded()
        faces = [replace(f, landmark_sets={}) for f in result.faces]
        again = FrameResult(result.frame, faces, dict(result.stage_ms))
        self._landmarks_stage(result.frame.image, again)
        return again

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(N, D) embeddings of faces with landmarks, in one embedder call; each face's
        aligned crop is made (unless it has one) and kept in ``face.aligned`` (enrolment
        stores them as thumbnails)."""
        if not faces:
            return np.zeros((0, 0), np.float32)
        for face in faces:
            if face.aligned is None:
                face.aligned = crop_face(image, face.landmarks, self.crop)
        crops = np.stack([face.aligned for face in faces])
        return self.embedder.embed(crops)

    # -- gallery -----------------------------------------------------------------------
    def sync_gallery(self, batch_size: int = 64,
                     on_batch: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Embed the gallery samples only another model embedded (``app.people.resync``)."""
        return sync_gallery(self, batch_size, on_batch)

    def close(self) -> None:
        self.landmark_models.close()
        for _, cnn in self._workers:
            if cnn is not None:
                cnn.close()
        self.embedder.close()

    # -- internals -----------------------------------------------------------------------
    def _switch_when_loaded(self) -> None:
        """A mode asked for while its models loaded becomes the mode once they are."""
        if self._pending and all(self.landmark_models.ready(n)
                                 for n in MODE_MODELS[self._pending]):
            self.landmarks = self._pending

    def _landmarks_stage(self, image: np.ndarray, result: FrameResult,
                         early: EarlyLandmarks | None = None) -> None:
        faces, names = result.faces, MODE_MODELS[self._landmarks]
        sets: dict[str, np.ndarray] = {}
        total = 0.0
        for name in names:
            start = time.perf_counter()
            if early is not None:   # mode "cnn": one model, made on a worker
                sets[name], ms = early.points, early.ms
            else:
                sets[name] = predict_boxes(self.landmark_models[name], image,
                                           [f.box for f in faces])
                ms = _ms_since(start)
            total += ms
            if faces:
                result.landmark_ms_per_face[name] = ms / len(faces)
        result.stage_ms["landmarks"] = total
        for i, face in enumerate(faces):
            face.landmarks = sets[names[0]][i]
            face.landmark_model = names[0]
            if len(names) > 1:
                face.landmark_sets = {name: sets[name][i] for name in names}
        if len(names) > 1 and faces:
            result.disagreement_nme = float(np.mean(nme(sets["dlib"], sets["cnn"])))


def _warm_up(detector, cnn=None, embedder=None) -> None:
    """One call of each model on a blank picture: their first call allocates (tens of ms),
    which would otherwise land on the first frames."""
    blank = np.zeros((128, 128, 3), np.uint8)
    detector.detect(blank)
    if cnn is not None:
        cnn.predict_many(blank, [np.array([32, 32, 96, 96], np.float32)])
    if embedder is not None:
        embedder.embed(np.zeros((1, 160, 160, 3), np.uint8))


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
