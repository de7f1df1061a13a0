"""The main loop of ``python -m app run``: source -> pipeline -> window / video / events.

Detection of the next frames runs on worker threads (:class:`~app.detect_ahead.DetectAhead`)
while the main thread does landmarks, tracking, embedding, drawing and output for the current
one; the models release the GIL, so on two cores the two halves overlap.
"""
from __future__ import annotations

import signal
import statistics
import threading
import time
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

from app.capture import now_ms
from app.detect_ahead import DetectAhead
from app.pipeline import FrameResult, Pipeline
from app.sinks import EventsWriter, VideoSink, Window
from app.ui import Controller, compose_view

@dataclass
class RunStats:
    """Per-frame timings; ``summary()`` is what the events file and the terminal get."""
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    ran_ms: dict[str, list[float]] = field(default_factory=dict)  # frames that ran the stage
    latency_ms: list[float] = field(default_factory=list)
    frames: int = 0
    embedded: int = 0
    started: float | None = None
    finished: float | None = None
    first_frame_unix: float | None = None   # time.time() at the first processed frame
    _recent: deque = field(default_factory=lambda: deque(maxlen=30))

    def add(self, result: FrameResult, latency_ms: float | None) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started, self.first_frame_unix = now, time.time()
        self.finished = now
        self.frames += 1
        self._recent.append(now)
        for stage, ms in result.stage_ms.items():
            self.stage_ms.setdefault(stage, []).append(ms)
            if _ran(stage, result):
                self.ran_ms.setdefault(stage, []).append(ms)
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
               "stage_mean_ms": {k: round(statistics.fmean(v), 2)
                                 for k, v in self.ran_ms.items()},
               "stage_frames": {k: len(v) for k, v in self.ran_ms.items()},
               "faces_embedded": self.embedded, "dropped": dropped,
               "first_frame_unix": self.first_frame_unix}
        if self.latency_ms:
            out["latency_ms"] = latency_summary(self.latency_ms)
        return out


def _ran(stage: str, result: FrameResult) -> bool:
    """Whether ``stage`` did work on this frame: landmarks need a face, embed and match a
    face due for embedding; a stage the pipeline skipped has no entry at all."""
    if stage == "landmarks":
        return bool(result.faces)
    if stage in ("embed", "match"):
        return any(f.embedding is not None for f in result.faces)
    return True


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


def run(pipeline: Pipeline, source, *, window: Window | None = None,
        video: VideoSink | None = None, events: EventsWriter | None = None,
        max_frames: int | None = None, side_by_side: bool = False,
        models: list[str] | None = None,
        on_result: Callable[[FrameResult], None] | None = None) -> tuple[dict, str | None]:
    """Process ``source`` until it ends, the user quits or ``max_frames``; returns the
    summary and why it stopped early (None when the source simply ended).
    ``on_result`` is called with every processed frame's result (benchmarks, tests)."""
    controller = Controller(pipeline, side_by_side=side_by_side)
    stats = RunStats()
    fps = getattr(source, "fps", None)
    first_ts: float | None = None
    last: FrameResult | None = None
    stop_reason = None
    signals = _StopSignals()
    with ExitStack() as stack:
        signals.install()
        stack.callback(signals.restore)
        # Files may be read ahead (smooths jitter) and detected two frames at a time; a live
        # camera is read as late as possible, one frame at a time.
        live = getattr(source, "is_live", False)
        reader = DetectAhead(source, pipeline.detect_functions(1 if live else 2),
                             depth=1 if live else 3)
        stack.callback(reader.stop)
        try:
            while not controller.quit:
                if controller.paused and window is not None:
                    if last is not None:
                        window.show(compose_view(last, controller, _hud(stats, source, pipeline,
                                                                        models)))
                    controller.handle_key(window.key(30), last)
                    if window.closed:
                        stop_reason = "window closed"
                        break
                    continue
                item = reader.get()
                if item is None:
                    break
                frame, detections, detect_ms = item
                result = pipeline.process(frame, detections, detect_ms)
                with signals.recording():  # a Ctrl-C now stops after this frame
                    controller.after_frame(result)
                    if first_ts is None:
                        first_ts = frame.timestamp_ms
                    t_ms = frame.index * 1000.0 / fps if fps else frame.timestamp_ms - first_ts
                    if window is not None or video is not None:
                        start = time.perf_counter()
                        view = compose_view(result, controller,
                                            _hud(stats, source, pipeline, models))
                        result.stage_ms["render"] = (time.perf_counter() - start) * 1000
                        if video is not None:
                            video.write(view)
                        if window is not None:
                            window.show(view)
                            controller.handle_key(window.key(1), result)
                            if window.closed:
                                stop_reason = "window closed"
                    if events is not None:
                        events.write(result, t_ms)
                    stats.add(result, now_ms() - frame.timestamp_ms)
                    if on_result is not None:
                        on_result(result)
                    last = result
                if stop_reason:
                    break
                if max_frames is not None and stats.frames >= max_frames:
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted (Ctrl-C)"
        except _Terminate:
            stop_reason = "terminated (SIGTERM)"
    if controller.quit:
        stop_reason = "quit"
    summary = stats.summary(dropped=getattr(source, "dropped", 0))
    if events is not None:
        events.write_summary(summary)
    return summary, stop_reason


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
