"""FaceNet off the frame path: faces due for an embedding go to a worker thread, and the
frame goes on with each track's current name; a match is applied to its track when it
arrives (a frame or a few later), never to a track that has since ended (track ids are
never re-used, so "still alive" is the whole check).

Order of service: a new track's face before any re-verification, then oldest first. A
re-verification already queued for its track is replaced by the newer view, not stacked;
a new track's first face is kept; a track whose face is being embedded right now is not
queued again until it is done.

The worker shares the pipeline's embedder (one interpreter, one copy of the weights)
through :class:`LockedEmbedder`: the frame path's other users (live enrolment, the
gallery sync) take the same lock for their rare calls.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .stages.align import crop_face
from .types import Face, Frame, FrameResult


@dataclass(frozen=True)
class EmbedRequest:
    track_id: int
    frame_index: int
    crop: np.ndarray      # the aligned crop (app.stages.align), what FaceNet sees
    new: bool             # a track's first face (new, or after a jump): served first, kept, held
    seen_at: int | None = None   # the tracker's frame number then (Tracker.record_match)
    since: int | None = None     # the track's last jump (Track.jumped_at): its earlier
                                 # faces, queued or running, are someone else's


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

    @property
    def failed(self) -> bool:
        with self._cond:
            return self._error is not None

    def busy_with(self, track_id: int) -> bool:
        """Whether ``track_id`` has a face being embedded now (not merely queued)."""
        with self._cond:
            return self._busy(track_id)

    def submit(self, request: EmbedRequest) -> bool:
        """Queue ``request`` (replacing its track's queued re-verification); False, and
        nothing queued, while that track's face is being embedded or its first face is
        still queued (a new track is named from the frame it was first seen in) — unless
        that face is from before the track's last jump (``request.since``)."""
        with self._cond:
            queued, running = self._queued.get(request.track_id), self._running
            if running is not None and running.track_id == request.track_id \
                    and not _before(running, request.since):
                return False
            if queued is not None and queued.new and not _before(queued, request.since):
                return False
            self._queued.pop(request.track_id, None)   # due again: the newer view replaces it
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
        running (``new_only``: no track's first face)."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: not self._pending(frame_index, new_only, with_done=False), timeout):
                raise TimeoutError(f"FaceNet did not finish within {timeout:.0f} s")
            self._raise_error()

    def owes(self, frame_index: int, new_only: bool = False) -> bool:
        """Whether a face from ``frame_index`` or earlier is queued, running, or done but
        not yet handed back by :meth:`take` (``new_only``: a track's first face)."""
        with self._cond:
            return self._pending(frame_index, new_only, with_done=True)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _pending(self, frame_index: int | None, new_only: bool, with_done: bool) -> bool:
        """Under the lock (see :meth:`owes`); False once the worker has failed."""
        pending = list(self._queued.values()) + ([self._running] if self._running else [])
        if with_done:
            pending += [d.request for d in self._done]
        return self._error is None and any(
            (frame_index is None or r.frame_index <= frame_index) and (r.new or not new_only)
            for r in pending)

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


def _before(request: EmbedRequest, since: int | None) -> bool:
    """Whether ``request``'s face was seen before frame ``since`` (a jump)."""
    return since is not None and request.seen_at is not None and request.seen_at < since


def record_matches(pipeline, faces: list, embeddings: np.ndarray,
                   requests: list[EmbedRequest] | None = None) -> float:
    """Match embeddings against ``pipeline``'s gallery and record them with their tracks
    (``requests``: what each came from, for results that arrive after their frame: then
    ``faces[i]`` may be None); a face given gets its embedding, match and name.
    Returns the milliseconds it took."""
    start = time.perf_counter()
    sources = [(r.track_id, r.seen_at) for r in requests] if requests else \
        [(f.track_id, None) for f in faces]
    matches = (pipeline.gallery.match(embeddings, pipeline.model_id, pipeline.threshold)
               if sources else [])
    for face, (track, seen_at), embedding, match in zip(faces, sources, embeddings, matches):
        name, similarity = pipeline.tracker.record_match(track, match.name, match.similarity,
                                                         seen_at)
        if face is not None:
            face.embedding, face.match = embedding, match
            face.name, face.similarity = name, similarity
    return _ms_since(start)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class AsyncEmbedding:
    """The frame path's side of the worker, one call a frame (:meth:`step`), for
    ``pipeline`` (whose embedder it shares with the worker through a
    :class:`LockedEmbedder` until :meth:`finish`).

    ``lag`` None (a live source): the frame path never waits and holds nothing. In a file
    run a re-verification's result may trail its face by at most ``lag`` frames before
    the frame path waits for it, and a track's first face (new, or after a jump) names
    it from that frame on, as with FaceNet on the frame path, in one of two ways:

    - ``hold`` 0 (a window plays the file): the frame path waits for that face at once;
    - ``hold`` N (headless): the frame path goes on; its frames, and every frame after,
      are held back (:meth:`hold`) until its name has arrived and been written into
      them, so the frame path never idles while FaceNet works; past N held frames (or
      :attr:`HELD_BYTES` of pictures: 10 at 1080p) it waits for the oldest.
      :meth:`drain` hands back the rest at the end."""

    HELD_BYTES = 64 << 20

    def __init__(self, pipeline, lag: int | None, hold: int = 0):
        self.pipeline, self.tracker, self.lag = pipeline, pipeline.tracker, lag
        self.hold_limit = hold if lag is not None else 0
        self._held: deque[FrameResult] = deque()
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
        if new and not self.hold_limit:
            self.worker.wait_for(frame.index, new_only=True)
        stage_ms["embed_wait"] = _ms_since(start)
        self._apply_arrived(faces, stage_ms)

    def hold(self, result: FrameResult) -> list[FrameResult]:
        """``result`` (just processed) joins the held frames; returns, in order, those no
        first-face name is owed to any more (``[result]`` when nothing is held)."""
        if not self.hold_limit:
            return [result]
        self._held.append(result)
        if (len(self._held) > self.hold_limit
                or sum(r.frame.image.nbytes for r in self._held) > self.HELD_BYTES):
            start = time.perf_counter()
            self.worker.wait_for(self._held[0].frame.index, new_only=True)
            result.stage_ms["embed_wait"] = (result.stage_ms.get("embed_wait", 0.0)
                                             + _ms_since(start))
        self._apply_arrived([], result.stage_ms)
        ready = []
        while self._held and not self.worker.owes(self._held[0].frame.index, new_only=True):
            ready.append(self._held.popleft())
        return ready

    def drain(self) -> list[FrameResult]:
        """Every held frame, its names written in (the run is ending)."""
        if self._held:
            self.worker.wait_for(self._held[-1].frame.index, new_only=True)
            self._apply_arrived([], self._held[-1].stage_ms)
        ready, self._held = list(self._held), deque()
        return ready

    def finish(self) -> None:
        """The faces still queued are embedded (the run's every embedding), then the
        worker stops. A worker that failed has said so already (through :meth:`step`,
        :meth:`hold` or :meth:`drain`, into the run's summary): it is only stopped."""
        try:
            if not self.worker.failed:
                self.worker.wait_for(None)
        finally:
            self.worker.close()
            self.pipeline.embedder = self._locked.unwrapped

    def _apply_arrived(self, faces: list[Face], stage_ms: dict) -> None:
        """Record the finished embeddings with their tracks (those still alive, and not of
        a face seen before the track's last jump); each goes to its face in the frame it
        came from if that frame is held, else to its face in this frame (``faces``), and
        the track's name to its faces in every later frame.
        A track's first face whose match is not recorded (the track ended in a cut, or
        jumped to perhaps someone else, before it came back) still names the frames held
        for that face, up to the cut or jump, as the frame path would have."""
        taken = self.worker.take()
        if not taken:
            return
        usable = [self.tracker.alive(d.request.track_id)
                  and not self.tracker.stale(d.request.track_id, d.request.seen_at)
                  for d in taken]
        done = [d for d, ok in zip(taken, usable) if ok]
        unrecorded = [d for d, ok in zip(taken, usable) if not ok and d.request.new
                      and self._source_face(d.request) is not None]
        current = {f.track_id: f for f in faces}
        arrived = [self._source_face(d.request) or current.get(d.request.track_id)
                   for d in done]
        for face, d in zip(arrived, done):
            if face is not None:
                face.aligned = d.request.crop
        start = time.perf_counter()
        if done:
            record_matches(self.pipeline, arrived, np.stack([d.embedding for d in done]),
                           [d.request for d in done])
        for d in done:
            track = self.tracker.track(d.request.track_id)
            self._carry_name(d.request, track.name, track.similarity, faces)
        for d in unrecorded:
            self._name_unrecorded(d)
        # the time goes to the frame whose face got the embedding (what run stats expect)
        match_ms = _ms_since(start) / len(taken)
        for d in taken:
            held = self._held_result(d.request.frame_index)
            target = held.stage_ms if held is not None else stage_ms
            target["embed"] = target.get("embed", 0.0) + d.ms
            target["match"] = target.get("match", 0.0) + match_ms

    def _name_unrecorded(self, done: EmbedDone) -> None:
        """A held first face whose track has since ended or jumped: named by its own match
        (its one vote) in its held frames before the end or jump; the tracker, which has
        forgotten the track or moved on to another face, records nothing."""
        request, pipeline = done.request, self.pipeline
        face = self._source_face(request)
        match = pipeline.gallery.match(done.embedding[None], pipeline.model_id,
                                       pipeline.threshold)[0]
        face.aligned, face.embedding, face.match = request.crop, done.embedding, match
        face.name, face.similarity = match.name, match.similarity
        until = None
        if self.tracker.alive(request.track_id):   # jumped: frames from the jump on are not its
            jumped_at = self.tracker.track(request.track_id).jumped_at
            until = request.frame_index + (jumped_at - request.seen_at)
        self._carry_name(request, match.name, match.similarity, [], until)

    def _held_result(self, frame_index: int) -> FrameResult | None:
        return next((r for r in self._held if r.frame.index == frame_index), None)

    def _source_face(self, request: EmbedRequest) -> Face | None:
        """The request's face in its own frame, if that frame is held."""
        result = self._held_result(request.frame_index)
        if result is None:
            return None
        return next((f for f in result.faces if f.track_id == request.track_id), None)

    def _carry_name(self, request: EmbedRequest, name: str | None, similarity: float | None,
                    faces: list[Face], until: int | None = None) -> None:
        """The track's voted name onto its faces in the held frames after the request's
        (before frame ``until``, if given) and in this frame: what they would have shown
        had FaceNet run on the frame path."""
        later = [r.faces for r in self._held if r.frame.index > request.frame_index
                 and (until is None or r.frame.index < until)]
        for face in (f for group in later + [faces] for f in group):
            if face.track_id == request.track_id:
                face.name, face.similarity = name, similarity

    def _submit_due(self, frame: Frame, faces: list[Face]) -> bool:
        """Queue every face whose track is due an embedding (the worker refuses one whose
        current face is being embedded now or whose first face is still queued); whether
        any queued is a track's first face."""
        new_any = False
        for face in faces:
            track = face.track_id
            if (track is None or face.landmarks is None
                    or not self.tracker.needs_embedding(track)):
                continue
            state = self.tracker.track(track)
            # a track's first face: new, or after a jump cleared its votes
            new = state.pending in ("new", "jump")
            crop = crop_face(frame.image, face.landmarks, self.pipeline.crop)
            request = EmbedRequest(track, frame.index, crop, new, self.tracker.frame,
                                   state.jumped_at)
            if self.worker.submit(request):
                self.tracker.mark_requested(track)
                new_any = new_any or new
        return new_any
