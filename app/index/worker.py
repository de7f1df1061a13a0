"""The per-file worker: one plain class that the local pool and Ray both run.

:class:`IndexWorker` loads the models once (one thread each) and then indexes one file
per :meth:`IndexWorker.index_file` call: decode in order with PTS times
(``app.sources.pts``), run the app's own pipeline on each frame (detect, landmarks,
track, align, embed: ``Pipeline.process``, as ``run`` does, with its detector schedule:
``--detect-every``; FaceNet on the worker's own thread, so nothing depends on timing),
and collect the tracks into appearance rows (``app.index.appearances``). A file that cannot be decoded comes back
``failed`` with the reason; nothing is raised for it.

Workers name nobody: they match against an empty gallery, and the driver names the
rows from their mean embeddings (``app.index.appearances.label``). So a worker needs no
gallery file (a Ray node has none), and ``index`` and ``relabel`` name by one rule.
Landmarks are not smoothed (the One Euro filter is for the eye; enrolment embeds
unsmoothed photos too).
"""
from __future__ import annotations

import os
import resource
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import DEFAULT_EMBEDDER

PROGRESS_EVERY = 100   # decoded frames between on_frames calls


@dataclass(frozen=True)
class IndexSettings:
    """What an index is made with; files done with other settings are done again."""
    detector: str = "blazeface"
    embedder: str = DEFAULT_EMBEDDER
    fps: float | None = None        # sample at most this many frames per second
    detect_every: int = 0           # the detector's schedule (0: run's measured default)

    @property
    def signature(self) -> str:
        from ..stages.follow import DETECT_EVERY

        fps = "all" if self.fps is None else f"{self.fps:g}"
        return (f"{self.detector}|landmarks:cnn|facenet:{self.embedder}|fps:{fps}"
                f"|detect-every:{self.detect_every or DETECT_EVERY}")


@dataclass(frozen=True)
class FileTask:
    """One file to index, as the driver saw it (``--resume`` compares size and mtime)."""
    path: str
    file_id: str
    size: int
    mtime_ns: int


@dataclass
class FileResult:
    task: FileTask
    state: str                      # "done" or "failed"
    reason: str | None = None
    frames: int = 0                 # decoded
    processed: int = 0              # run through the pipeline (all, or --fps samples)
    duration_s: float = 0.0         # media time covered
    wall_s: float = 0.0
    cpu_s: float = 0.0              # the worker process's CPU time on it (all threads)
    rows: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0        # the worker process's peak resident memory so far
    worker: str = ""                # host:pid
    attempts: int = 1
    transient: bool = False         # failed for the worker's sake (it died), not the file's
    warning: str | None = None      # done, but damaged packets were skipped


class IndexWorker:
    """Models loaded once; :meth:`index_file` per file (see module docstring)."""

    def __init__(self, settings: IndexSettings):
        import cv2

        from ..config import RunConfig
        from ..factory import build_pipeline
        from ..people.gallery import Gallery

        cv2.setNumThreads(1)
        self.settings = settings
        self._folder = tempfile.TemporaryDirectory(prefix="facelandmarks-worker-")
        empty = Path(self._folder.name) / "nobody.sqlite3"   # read-only: never created
        self._gallery = Gallery(empty, readonly=True)
        config = RunConfig(source="", detector=settings.detector, embedder=settings.embedder,
                           gallery=empty, headless=True, smooth=False, threads=1,
                           progress=False, detect_every=settings.detect_every)
        self._pipeline = build_pipeline(config, self._gallery)

    @property
    def model_id(self) -> str:
        return self._pipeline.model_id

    def index_file(self, task: FileTask,
                   on_frames: Callable[[int], None] | None = None) -> FileResult:
        """Index one file; never raises for a bad file (``state`` "failed", ``reason``)."""
        start, cpu = time.perf_counter(), time.process_time()
        result = FileResult(task, "done", worker=f"{socket.gethostname()}:{os.getpid()}")
        try:
            self._track(task, result, on_frames)
        except Exception as exc:  # noqa: BLE001 -- any decoding or model error fails the file
            result.state, result.rows = "failed", []
            result.reason = str(exc) or type(exc).__name__
        result.wall_s = time.perf_counter() - start
        result.cpu_s = time.process_time() - cpu
        result.peak_rss_mb = peak_rss_mb()
        return result

    def _track(self, task: FileTask, result: FileResult,
               on_frames: Callable[[int], None] | None) -> None:
        from ..sources.pts import PtsVideo
        from .appearances import TrackBook

        pipeline = self._pipeline
        pipeline.tracker.reset()   # ids go on rising; TrackBook numbers tracks per file
        book = TrackBook()
        reported = 0
        # run's detector schedule (boxes follow the landmarks between detections); FaceNet
        # stays on this thread, so the rows never depend on timing
        with PtsVideo(task.path, fps=self.settings.fps) as video, \
                pipeline.video_mode(async_embed=False):
            if pipeline.follower is not None:
                pipeline.follower.reset()   # nothing followed from the file before
            for frame in video.frames():
                faces = pipeline.process(frame).faces
                book.add(frame.timestamp_ms / 1000.0, frame.image, faces)
                result.processed += 1
                if on_frames is not None and video.frames_decoded - reported >= PROGRESS_EVERY:
                    on_frames(video.frames_decoded - reported)
                    reported = video.frames_decoded
            result.frames = video.frames_decoded
            result.duration_s = _duration(video)
            if video.damaged:
                result.warning = (f"damaged data skipped at frame(s) "
                                  f"{', '.join(map(str, video.damaged[:10]))}")
        if result.frames == 0:
            raise ValueError(f"no frame of {task.path} could be decoded")
        if on_frames is not None and result.frames > reported:
            on_frames(result.frames - reported)
        result.rows = book.rows(task.path, pipeline.model_id)

    def ping(self) -> str:
        """Ray: wait for the models to load (the actor's constructor) before timing."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def close(self) -> None:
        pipeline, self._pipeline = getattr(self, "_pipeline", None), None
        if pipeline is not None:
            pipeline.close()
            self._gallery.close()
            self._folder.cleanup()


def _duration(video) -> float:
    """Media time covered: the last frame's PTS time plus one nominal frame."""
    rate = video.nominal_fps
    return video.last_time_s + (1.0 / rate if rate else 0.0)


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
