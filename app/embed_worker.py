"""FaceNet off the frame path: faces due for an embedding go to a worker thread, and the
frame goes on with each track's current name; a match is applied to its track when it
arrives (a frame or a few later), never to a track that has since ended (track ids are
never re-used, so "still alive" is the whole check).

Order of service: a new track's face before any re-verification, then oldest first. A
face already queued for its track is replaced by the newer view, not stacked; a track
whose face is being embedded right now is not queued again until it is done.

The worker shares the pipeline's embedder (one interpreter, one copy of the weights)
through :class:`LockedEmbedder`: the frame path's other users (live enrolment, the
gallery sync) take the same lock for their rare calls.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .stages.align import crop_face
from .types import Face, Frame


@dataclass(frozen=True)
class EmbedRequest:
    track_id: int
    frame_index: int
    crop: np.ndarray      # the aligned crop (app.stages.align), what FaceNet sees
    new: bool             # a new track: served before re-verifications


@dataclass(frozen=True)
class EmbedDone:
    request: EmbedRequest
    embedding: np.ndarray   # (D,) unit length
    ms: float               # the worker's time on it


class LockedEmbedder:
    """An embedder that several threads may call, one at a time."""

    def __init__(self, embedder):
        self.unwrapped = embedder
        self._lock = threading.Lock()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.unwrapped.embed(crops)

    def __getattr__(self, name):   # model_id, crop, close, ...: the embedder's own
        return getattr(self.unwrapped, name)


class EmbedWorker:
    """One thread embedding :class:`EmbedRequest` s; :meth:`take` hands back what is done."""

    def __init__(self, embedder: LockedEmbedder):
        self._embedder = embedder
        self._queued: dict[int, EmbedRequest] = {}   # track -> request, oldest first
        self._running: EmbedRequest | None = None
        self._done: list[EmbedDone] = []
        self._cond = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="embed", daemon=True)
        self._thread.start()

    def busy_with(self, track_id: int) -> bool:
        """Whether ``track_id`` has a face being embedded now (a queued one is replaced)."""
        with self._cond:
            return self._busy(track_id)

    def submit(self, request: EmbedRequest) -> bool:
        """Queue ``request`` (replacing its track's queued one); False, and nothing queued,
        while that track's face is being embedded."""
        with self._cond:
            if self._busy(request.track_id):
                return False
            self._queued.pop(request.track_id, None)   # the newer view replaces it
            self._queued[request.track_id] = request
            self._cond.notify_all()
            return True

    def take(self) -> list[EmbedDone]:
        """The embeddings finished since the last call, in the order they finished."""
        with self._cond:
            self._raise_error()
            done, self._done = self._done, []
            return done

    def wait_for(self, frame_index: int | None = None, new_only: bool = False,
                 timeout: float = 30.0) -> None:
        """Until nothing from ``frame_index`` or earlier (None: nothing at all) is queued or
        running (``new_only``: no new track's face)."""
        def settled() -> bool:
            pending = list(self._queued.values()) + ([self._running] if self._running else [])
            return self._error is not None or not any(
                (frame_index is None or r.frame_index <= frame_index)
                and (r.new or not new_only) for r in pending)
        with self._cond:
            if not self._cond.wait_for(settled, timeout):
                raise TimeoutError(f"FaceNet did not finish within {timeout:.0f} s")
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _busy(self, track_id: int) -> bool:
        return self._running is not None and self._running.track_id == track_id

    def _next(self) -> EmbedRequest | None:
        """Under the lock: the first new track's request, else the oldest."""
        if not self._queued:
            return None
        track = next((t for t, r in self._queued.items() if r.new), next(iter(self._queued)))
        return self._queued.pop(track)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or self._queued)
                if self._stop:
                    return
                request = self._running = self._next()
            start = time.perf_counter()
            try:
                embedding = self._embedder.embed(request.crop[None])[0]
            except BaseException as exc:   # handed to the frame path by take()
                with self._cond:
                    self._error, self._running = exc, None
                    self._cond.notify_all()
                return
            ms = (time.perf_counter() - start) * 1000.0
            with self._cond:
                self._done.append(EmbedDone(request, embedding, ms))
                self._running = None
                self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"FaceNet failed on its worker: {self._error!r}") from self._error


def record_matches(pipeline, faces: list, embeddings: np.ndarray,
                   tracks: list[int] | None = None) -> float:
    """Match embeddings against ``pipeline``'s gallery and record them with their tracks
    (``tracks``: each one's track, for results whose face is not in this frame: then
    ``faces[i]`` is None); a face in this frame gets its embedding, match and name.
    Returns the milliseconds it took."""
    start = time.perf_counter()
    tracks = tracks or [f.track_id for f in faces]
    matches = (pipeline.gallery.match(embeddings, pipeline.model_id, pipeline.threshold)
               if tracks else [])
    for face, track, embedding, match in zip(faces, tracks, embeddings, matches):
        name, similarity = pipeline.tracker.record_match(track, match.name, match.similarity)
        if face is not None:
            face.embedding, face.match = embedding, match
            face.name, face.similarity = name, similarity
    return (time.perf_counter() - start) * 1000.0


class AsyncEmbedding:
    """The frame path's side of the worker, one call a frame (:meth:`step`), for
    ``pipeline`` (whose embedder it shares with the worker through a
    :class:`LockedEmbedder` until :meth:`finish`).

    ``lag``: in a file run, a re-verification's result may come at most this many
    frames after its face before the frame path waits for it, and a new track's is
    waited for at once (named from its first frame, as with FaceNet on the frame path);
    None (a live source): the frame path never waits."""

    def __init__(self, pipeline, lag: int | None):
        self.pipeline, self.tracker, self.lag = pipeline, pipeline.tracker, lag
        self._locked = pipeline.embedder = LockedEmbedder(pipeline.embedder)
        self.worker = EmbedWorker(self._locked)

    def step(self, frame: Frame, faces: list[Face], stage_ms: dict) -> None:
        stage_ms["embed"] = stage_ms["match"] = 0.0
        self._apply_arrived(faces, stage_ms)
        new = self._submit_due(frame, faces)
        if self.lag is None:
            return
        start = time.perf_counter()
        self.worker.wait_for(frame.index - self.lag)
        if new:
            self.worker.wait_for(frame.index, new_only=True)
        stage_ms["embed_wait"] = (time.perf_counter() - start) * 1000.0
        self._apply_arrived(faces, stage_ms)

    def finish(self) -> None:
        """The faces still queued are embedded (the run's every embedding), then the
        worker stops."""
        try:
            self.worker.wait_for(None)
        finally:
            self.worker.close()
            self.pipeline.embedder = self._locked.unwrapped

    def _apply_arrived(self, faces: list[Face], stage_ms: dict) -> None:
        """Record the finished embeddings with their tracks (those still alive), and hand
        each to its face in this frame, if the face is in it."""
        done = [d for d in self.worker.take() if self.tracker.alive(d.request.track_id)]
        if not done:
            return
        by_track = {f.track_id: f for f in faces}
        arrived = [by_track.get(d.request.track_id) for d in done]
        for face, d in zip(arrived, done):
            if face is not None:
                face.aligned = d.request.crop
        stage_ms["embed"] += sum(d.ms for d in done)
        stage_ms["match"] += record_matches(self.pipeline, arrived,
                                            np.stack([d.embedding for d in done]),
                                            [d.request.track_id for d in done])

    def _submit_due(self, frame: Frame, faces: list[Face]) -> bool:
        """Queue every face whose track is due an embedding (not one being embedded now);
        whether any is a new track."""
        new_any = False
        for face in faces:
            track = face.track_id
            if (track is None or face.landmarks is None or self.worker.busy_with(track)
                    or not self.tracker.needs_embedding(track)):
                continue
            new = self.tracker.track(track).last_embedded is None
            crop = crop_face(frame.image, face.landmarks, self.pipeline.crop)
            if self.worker.submit(EmbedRequest(track, frame.index, crop, new)):
                new_any = new_any or new
        return new_any
