"""The main loop of ``python -m app run``: source -> pipeline -> window / video / events.

Detection of the next frame runs on a worker thread (:class:`DetectAhead`) while the
main thread does landmarks, tracking, embedding, drawing and output for the current
one; the models release the GIL, so on two cores the two halves overlap.
"""
from __future__ import annotations

import queue
import signal
import statistics
import threading
import time
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

from app.capture import now_ms
from app.outputs import WriteFailed
from app.pipeline import Pipeline
from app.sinks import EventsWriter, VideoSink, Window
from app.types import FrameResult
from app.ui import Controller, compose_view

_END = object()


class DetectAhead:
    """Reads ``source`` and runs ``detect(image)`` on a worker thread, ``depth`` frames
    ahead. :meth:`get` returns ``(frame, detections, detect_ms)`` or None at the end;
    an exception in the worker is re-raised there.

    The worker reads a frame only when a slot is free, so a live camera's frame is taken
    as late as possible (newest) instead of waiting in a buffer while older ones drain."""

    def __init__(self, source, detect, depth: int = 1):
        self._source, self._detect = source, detect
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detect-ahead", daemon=True)
        self._thread.start()

    def get(self):
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return None
                continue
            if item is _END:
                return None
            if isinstance(item, BaseException):
                raise item
            self._slots.release()
            return item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._slots.acquire(timeout=0.1):
                    continue
                frame = self._source.read(timeout=0.1)
                if frame is None:
                    self._slots.release()
                    if self._source.ended:
                        break
                    continue
                detections, ms = self._detect(frame.image)
                self._queue.put((frame, detections, ms))
        except BaseException as exc:  # handed to the main thread
            self._queue.put(exc)
            return
        self._queue.put(_END)


@dataclass
class RunStats:
    """Per-frame timings; ``summary()`` is what the events file and the terminal get."""
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    frames: int = 0
    embedded: int = 0
    started: float | None = None
    finished: float | None = None
    _recent: deque = field(default_factory=lambda: deque(maxlen=30))

    def add(self, result: FrameResult, latency_ms: float | None) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        self.finished = now
        self.frames += 1
        self._recent.append(now)
        for stage, ms in result.stage_ms.items():
            self.stage_ms.setdefault(stage, []).append(ms)
        if latency_ms is not None:
            self.latency_ms.append(latency_ms)
        self.embedded += sum(1 for f in result.faces if f.embedding is not None)

    @property
    def fps(self) -> float:
        """Over the last 30 frames (for the HUD)."""
        if len(self._recent) < 2:
            return 0.0
        return (len(self._recent) - 1) / max(self._recent[-1] - self._recent[0], 1e-9)

    def summary(self, dropped: int = 0) -> dict:
        wall = (self.finished - self.started) if self.frames > 1 else 0.0
        fps = (self.frames - 1) / wall if wall > 0 else 0.0
        out = {"frames": self.frames, "fps": round(fps, 1),
               "stage_ms": {k: round(statistics.median(v), 2) for k, v in self.stage_ms.items()},
               "faces_embedded": self.embedded, "dropped": dropped}
        if self.latency_ms:
            out["latency_ms"] = latency_summary(self.latency_ms)
        return out


def latency_summary(latency_ms: list[float]) -> dict:
    """Median and 95th percentile (nearest rank below) of capture->display latencies."""
    ordered = sorted(latency_ms)
    return {"median": round(statistics.median(ordered), 1),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}


class _Terminate(Exception):
    """SIGTERM, turned into an exception so outputs are finalised as on Ctrl-C."""


class _StopSignals:
    """Ctrl-C and SIGTERM as exceptions (KeyboardInterrupt, :class:`_Terminate`), held back
    while one frame is being recorded (:meth:`recording`): the video, the events file and
    the summary then always hold the same frames. A second signal while one is held acts
    at once. Only on the main thread; Ctrl-C is left alone where it is not Python's
    default (ignored, or someone else's handler)."""

    def __init__(self):
        self._previous: dict[int, object] = {}
        self._holding = False
        self._pending: BaseException | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextmanager
    def recording(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending

    def _handle(self, signum, frame):
        exc = KeyboardInterrupt() if signum == signal.SIGINT else _Terminate()
        if not self._holding or self._pending is not None:
            raise exc
        self._pending = exc


@dataclass
class Outputs:
    """Where processed frames go; any of them may be absent."""
    window: Window | None = None
    video: VideoSink | None = None
    events: EventsWriter | None = None


@dataclass
class LoopOptions:
    max_frames: int | None = None
    side_by_side: bool = False
    models: list[str] = field(default_factory=list)   # the HUD's "models" line
    on_result: Callable[[FrameResult], None] | None = None  # every result (bench, tests)


def run(pipeline: Pipeline, source, outputs: Outputs | None = None,
        options: LoopOptions | None = None) -> tuple[dict, str | None]:
    """Process ``source`` until it ends, the user quits or ``max_frames``; returns the
    summary and why it stopped early (None when the source simply ended)."""
    return MainLoop(pipeline, source, outputs or Outputs(), options or LoopOptions()).run()


class MainLoop:
    """The loop's state; :meth:`step` is one turn (a frame, or a tick while paused)."""

    def __init__(self, pipeline: Pipeline, source, outputs: Outputs, options: LoopOptions):
        self.pipeline, self.source, self.out, self.options = pipeline, source, outputs, options
        self.controller = Controller(pipeline, side_by_side=options.side_by_side)
        self.stats = RunStats()
        self.last: FrameResult | None = None
        self.stop_reason: str | None = None
        self._signals = _StopSignals()
        self._fps = getattr(source, "fps", None)
        self._first_ts: float | None = None

    def run(self) -> tuple[dict, str | None]:
        with ExitStack() as stack:
            self._signals.install()
            stack.callback(self._signals.restore)
            # Files may be read ahead (smooths jitter); a live camera is read as late as possible.
            reader = DetectAhead(self.source, self.pipeline.detect,
                                 depth=1 if getattr(self.source, "is_live", False) else 3)
            stack.callback(reader.stop)
            try:
                while self.step(reader):
                    pass
            except KeyboardInterrupt:
                self.stop_reason = "interrupted (Ctrl-C)"
            except _Terminate:
                self.stop_reason = "terminated (SIGTERM)"
            except WriteFailed as exc:  # full disk, I/O error: stop, say so in the summary
                self.stop_reason = f"failed: {exc}"
        if self.controller.quit:
            self.stop_reason = "quit"
        summary = self.stats.summary(dropped=getattr(self.source, "dropped", 0))
        if self.stop_reason:
            summary["stopped"] = self.stop_reason
        if self.out.events is not None:
            self.out.events.write_summary(summary)
        return summary, self.stop_reason

    def step(self, reader: DetectAhead) -> bool:
        """One turn of the loop; False when it should end."""
        if self.controller.quit:
            return False
        if self.controller.paused and self.out.window is not None:
            return self._paused_tick()
        item = reader.get()
        if item is None:
            return False
        result = self.pipeline.process(*item)
        with self._signals.recording():  # a Ctrl-C now stops after this frame
            self._record(result)
        if self.stop_reason:
            return False
        limit = self.options.max_frames
        return limit is None or self.stats.frames < limit

    def _paused_tick(self) -> bool:
        window = self.out.window
        if self.last is not None:
            window.show(compose_view(self.last, self.controller, self._hud()))
        self.controller.handle_key(window.key(30), self.last)
        if window.closed:
            self.stop_reason = "window closed"
            return False
        return True

    def _record(self, result: FrameResult) -> None:
        """Everything done with a processed frame: enrolment, view, outputs, stats."""
        frame = result.frame
        self.controller.after_frame(result)
        if self._first_ts is None:
            self._first_ts = frame.timestamp_ms
        t_ms = (frame.index * 1000.0 / self._fps if self._fps
                else frame.timestamp_ms - self._first_ts)
        if self.out.window is not None or self.out.video is not None:
            self._show(result)
        if self.out.events is not None:
            self.out.events.write(result, t_ms)
        self.stats.add(result, now_ms() - frame.timestamp_ms)
        if self.options.on_result is not None:
            self.options.on_result(result)
        self.last = result

    def _show(self, result: FrameResult) -> None:
        start = time.perf_counter()
        view = compose_view(result, self.controller, self._hud())
        result.stage_ms["render"] = (time.perf_counter() - start) * 1000
        if self.out.video is not None:
            self.out.video.write(view)
        window = self.out.window
        if window is not None:
            window.show(view)
            self.controller.handle_key(window.key(1), result)
            if window.closed:
                self.stop_reason = "window closed"

    def _hud(self) -> dict:
        return _hud(self.stats, self.source, self.pipeline, self.options.models)


def _hud(stats: RunStats, source, pipeline: Pipeline, models: list[str] | None) -> dict:
    """Three short lines: speed, per-stage ms of the last frame, active models."""
    latency = stats.latency_ms[-1] if stats.latency_ms else 0.0
    stage = {k: round(v[-1], 1) for k, v in stats.stage_ms.items() if v and k != "render"}
    hud = {"FPS": f"{stats.fps:.1f}  latency {latency:.0f} ms  "
                  f"dropped {getattr(source, 'dropped', 0)}",
           "ms": stage}
    active = [m if not m.startswith("landmarks:") else f"landmarks:{pipeline.landmarks}"
              for m in (models or [])]
    if active:
        hud["models"] = " | ".join(active)
    return hud
