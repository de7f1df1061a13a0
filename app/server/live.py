"""The pipeline thread behind ``serve``: the main loop of ``run`` (no window), the only
thread that touches the models and the tracker.

Everything the web side asks of the models or the tracker (a photo upload, a rename, a
live enrolment) is a job handed to :meth:`LiveService.call`; the pipeline thread runs
the queued jobs between two frames (or, once a file without ``--loop`` has ended, as
they come) and the caller waits on the returned future. What the web side only reads
(the latest result, the status, the recent unknown faces) is read directly.
"""
from __future__ import annotations

import queue
import sys
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import cv2
import numpy as np

from ..config import RunConfig
from ..people.enroll import quality_problem
from ..types import FrameResult
from .hub import FrameHub

T = TypeVar("T")
JOBS_PER_FRAME = 4        # jobs run between two frames at most (the rest wait a frame)
RECENT_UNKNOWN = 12       # unknown tracks kept for the page's "who is this?" panel
UNKNOWN_SAMPLES = 5       # embedded views kept per unknown track (what "this is ..." stores)
STOP_WAIT_S = 2.0         # how long stop() lets the loop notice before closing the source
# Results kept for a click on a face: the page draws boxes up to 0.2 s old, and a face the
# detector missed in the newest frame is still on the picture (1/3 s at 30 FPS).
RECENT_RESULTS = 10


class ServiceStopped(RuntimeError):
    """The server is shutting down: no more jobs."""


@dataclass
class UnknownFace:
    """A recent track that was embedded and matched nobody."""
    track: int
    last_frame: int
    thumbnail: bytes                                     # JPEG of its latest embedded view
    embeddings: list[np.ndarray] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)   # the aligned crops embedded


class RecentUnknowns:
    """The last :data:`RECENT_UNKNOWN` unknown tracks with a view good enough to enrol
    (``quality_problem``: big, sharp and frontal enough), newest last; a track that gets
    a name leaves. Written by the pipeline thread, read by the web side."""

    def __init__(self, size: int = RECENT_UNKNOWN):
        self._size = size
        self._faces: OrderedDict[int, UnknownFace] = OrderedDict()
        self._lock = threading.Lock()

    def see(self, result: FrameResult) -> None:
        with self._lock:
            for face in result.faces:
                if face.track_id is None:
                    continue
                if face.name is not None:
                    self._faces.pop(face.track_id, None)
                elif (face.embedding is not None and face.aligned is not None
                      and quality_problem(face, face.aligned) is None):
                    self._add(face, result)   # only views good enough to enrol

    def _add(self, face, result: FrameResult) -> None:
        entry = self._faces.pop(face.track_id, None)
        thumbnail = _face_jpeg(result.frame.image, face.box)
        if entry is None:
            entry = UnknownFace(face.track_id, result.frame.index, thumbnail)
        entry.last_frame, entry.thumbnail = result.frame.index, thumbnail
        entry.embeddings = (entry.embeddings + [face.embedding])[-UNKNOWN_SAMPLES:]
        entry.crops = (entry.crops + [face.aligned])[-UNKNOWN_SAMPLES:]
        self._faces[face.track_id] = entry
        while len(self._faces) > self._size:
            self._faces.popitem(last=False)

    def drop_known(self, match: Callable[[np.ndarray], list]) -> None:
        """Forget the faces that now match someone (``match``: embeddings -> Matches),
        after an enrolment."""
        with self._lock:
            for track, face in list(self._faces.items()):
                if any(m.name is not None for m in match(np.stack(face.embeddings))):
                    del self._faces[track]

    def get(self, track: int) -> UnknownFace | None:
        with self._lock:
            return self._faces.get(track)

    def pop(self, track: int) -> UnknownFace | None:
        with self._lock:
            return self._faces.pop(track, None)

    def listing(self) -> list[UnknownFace]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._faces.values()))


def _face_jpeg(image: np.ndarray, box, pad: float = 0.25) -> bytes:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - pad * w)), max(0, int(y1 - pad * h))
    right, bottom = min(width, int(x2 + pad * w)), min(height, int(y2 + pad * h))
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        crop = image
    scale = 128 / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


class LiveService:
    """The source, gallery and models of one ``serve``, run on the pipeline thread.

    :meth:`start` opens them there and returns once the first frame can come (raising
    what failed: a missing file, a damaged gallery, a model error); :meth:`stop` ends
    the loop and closes them. ``pace``: play a file at its own frame rate (a viewer
    watches it), not as fast as the machine allows."""

    def __init__(self, config: RunConfig, pace: bool = True):
        self.config = config
        self.pace = pace
        self.hub = FrameHub(self._render)
        self.unknown = RecentUnknowns()
        self.recent: deque[FrameResult] = deque(maxlen=RECENT_RESULTS)   # newest last
        self.people_version = 0        # bumped by every change to the people (page refresh)
        self.ended: str | None = None  # why frames stopped coming (the file ended, ...)
        self.error: str | None = None
        self.pipeline = self.gallery = self.source = self.loop = None
        self._jobs: queue.Queue[tuple[Callable, Future]] = queue.Queue()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._enrolled_seen = 0
        self._thread = threading.Thread(target=self._main, name="facelandmarks-pipeline",
                                        daemon=True)

    # -- life ------------------------------------------------------------------------------
    def start(self, timeout: float = 600.0) -> "LiveService":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the pipeline did not start within {timeout:.0f} s")
        if self._failure is not None:
            raise self._failure
        return self

    def request_stop(self) -> None:
        """Streams, WebSockets and the loop end as soon as they look (a signal came)."""
        self._stopping.set()

    def stop(self, timeout: float = 6.0) -> None:
        """End the loop, finish the jobs' futures, close the source, models and gallery."""
        self._stopping.set()
        self._thread.join(STOP_WAIT_S)
        if self._thread.is_alive() and self.source is not None:
            self.source.stop()   # a camera that sends nothing: its reader wakes up empty
        self._thread.join(max(0.0, timeout - STOP_WAIT_S))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def call(self, job: Callable[[], T]) -> "Future[T]":
        """Run ``job()`` on the pipeline thread; its result (or exception) in the future."""
        if self._stopping.is_set() or not self._thread.is_alive():
            raise ServiceStopped("the server is shutting down")
        future: Future = Future()
        self._jobs.put((job, future))
        return future

    # -- the pipeline thread ------------------------------------------------------------------
    def _main(self) -> None:
        with ExitStack() as stack:
            try:
                self._open(stack)
            except BaseException as exc:   # re-raised by start() on the caller's thread
                self._failure = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                _, reason = self.loop.run()
                self.ended = reason or ("stopped" if self.stopping else "end of video")
                if self.loop.failure:   # the loop caught a model or source failure
                    self.error = self.ended = self.loop.failure
                    print(f"error: the pipeline stopped: {self.error}", file=sys.stderr)
            except Exception as exc:   # a model or source failure: say it, keep serving
                self.error = self.ended = f"{type(exc).__name__}: {exc}"
                print(f"error: the pipeline stopped: {self.error}", file=sys.stderr)
            while not self._stopping.is_set():
                self._run_jobs(wait=0.1)
        self._cancel_jobs()

    def _open(self, stack: ExitStack) -> None:
        from ..factory import build_pipeline
        from ..people.gallery import Gallery
        from ..runloop import LoopOptions, MainLoop
        from ..session import open_configured_source, print_warnings, sync_gallery

        config = self.config
        source = open_configured_source(config, realtime=self.pace)
        stack.callback(source.stop)
        self.gallery = stack.enter_context(Gallery(config.gallery))
        print_warnings(self.gallery.warnings)
        self.pipeline = build_pipeline(config, self.gallery)
        stack.callback(self.pipeline.close)
        sync_gallery(self.pipeline, progress=False)
        self.pipeline.warm_up(1 if source.is_live else 2)
        source.start()
        self.source = source
        self.loop = MainLoop(self.pipeline, source, self._outputs(stack),
                             LoopOptions(on_result=self._after_frame,
                                         models=self.models_line()))

    def _outputs(self, stack: ExitStack):
        """--events: appended as frames come (a service's log, followed at its path)."""
        from ..runloop import Outputs
        from ..session import events_writer

        if self.config.events is None:
            return Outputs()
        events = events_writer(self.config, live=True,
                               ended_after=self.pipeline.tracker.max_missed)
        stack.callback(events.close)
        return Outputs(events=events)

    def _after_frame(self, result: FrameResult) -> None:
        self.unknown.see(result)
        self.recent.append(result)
        self.hub.publish(result)
        enrolled = len(self.loop.controller.enrolled)
        if enrolled != self._enrolled_seen:   # a live enrolment was stored (or undone)
            self._enrolled_seen = enrolled
            self.people_changed()
        self._run_jobs(limit=JOBS_PER_FRAME)
        if self._stopping.is_set():
            self.loop.controller.quit = True

    def latest_with(self, track: int) -> FrameResult | None:
        """On the pipeline thread: the newest recent result where face ``track`` has
        landmarks (the newest result when none has)."""
        for result in reversed(self.recent):
            if any(f.track_id == track and f.landmarks is not None for f in result.faces):
                return result
        return self.hub.latest

    def people_changed(self) -> None:
        """On the pipeline thread, after any change to the people: the page refreshes
        them, and unknown faces that are now someone leave its "who is this?" panel."""
        pipeline = self.pipeline
        self.unknown.drop_known(lambda vectors: pipeline.gallery.match(
            vectors, pipeline.model_id, pipeline.threshold))
        self.people_version += 1

    def _run_jobs(self, limit: int | None = None, wait: float | None = None) -> None:
        done = 0
        while limit is None or done < limit:
            try:
                job, future = self._jobs.get(timeout=wait) if wait else self._jobs.get_nowait()
            except queue.Empty:
                return
            wait = None
            done += 1
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as exc:
                    future.set_exception(exc)

    def _cancel_jobs(self) -> None:
        while True:
            try:
                _, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(ServiceStopped("the server is shutting down"))

    def _render(self, result: FrameResult) -> np.ndarray:
        from ..window.ui import compose_picture
        return compose_picture(result, self.loop.controller if self.loop else None)

    # -- what the web side reads ------------------------------------------------------------
    def models_line(self) -> list[str]:
        config = self.config
        return [config.detector, f"landmarks:{config.landmarks}", f"facenet:{config.embedder}"]

    def status(self) -> dict:
        from ..sources.capture import describe_source
        loop, config = self.loop, self.config
        source = config.source
        text = source if not ("://" in source or source.isdigit()) else describe_source(source)
        return {"frames": loop.stats.frames, "fps": round(loop.stats.fps, 1),
                "source": text, "loop": config.loop, "ended": self.ended, "error": self.error,
                "models": {"detector": config.detector, "landmarks": self.pipeline.landmarks,
                           "embedder": self.pipeline.model_id},
                "watchers": self.hub.watchers, "people_version": self.people_version}

    def faces(self) -> dict:
        """The latest processed frame's faces (boxes in its pixels)."""
        result = self.hub.latest
        if result is None:
            return {"frame": None, "size": None, "faces": []}
        height, width = result.frame.image.shape[:2]
        return {"frame": result.frame.index, "size": [width, height],
                "faces": [{"track": f.track_id, "box": [round(float(v), 1) for v in f.box],
                           "name": f.name,
                           "similarity": None if f.similarity is None
                           else round(float(f.similarity), 3)} for f in result.faces]}

    def enrolment(self) -> dict | None:
        """The live enrolment in progress, and the latest message."""
        controller = self.loop.controller
        live = controller.enrolment
        state = None if live is None else {
            "track": live.track_id, "name": live.name, "samples": len(live.embeddings),
            "wanted": live.wanted, "status": live.status}
        return {"live": state, "message": controller.message}
