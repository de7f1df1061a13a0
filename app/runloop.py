"""The main loop of ``python -m app run``: source -> pipeline -> window / video / events.

Detection of the next frames runs on worker threads (:class:`~app.sources.detect_ahead.DetectAhead`)
while the main thread does landmarks, tracking, embedding, drawing and output for the current
one; the models release the GIL, so on two cores the two halves overlap.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2

from .outputs.files import WriteFailed
from .outputs.sinks import EventsWriter, VideoSink, Window
from .pipeline import Pipeline
from .protocols import Source
from .sources.capture import now_ms
from .sources.detect_ahead import DetectAhead
from .runstats import RunStats, latency_summary, peak_rss_mb, ru_maxrss_mb  # noqa: F401
from .sources.playback import Pacer
from .types import FrameResult
from .window.ui import Controller, compose_picture, window_view


# File runs (see MainLoop.run and app.embed_worker.AsyncEmbedding): how many frames a
# re-verification's result may trail its face (half the shortest re-verification period,
# so it is in before the next falls due), and how many processed frames a headless run
# may hold back while a track's first name is owed to them. Against waiting 2 frames for
# every result and at once for a new track (the first async design), these made the
# Hamilton clip 1.27-1.35x faster with AVX2 kernels (bench --baseline, issue 23); 24
# held frames measured no faster than 12 on the 2x2 mosaic.
EMBED_LAG_FRAMES = 15
HELD_FRAMES = 12


class _Terminate(Exception):
    """SIGTERM, turned into an exception so outputs are finalised as on Ctrl-C."""


class _StopSignals:
    """Ctrl-C and SIGTERM as exceptions (KeyboardInterrupt, :class:`_Terminate`), held back
    while a frame is processed and recorded with any frames a headless run released with
    it (:meth:`recording`): the video, the events file and the summary then always hold
    the same frames. A second signal while one is held acts at once. Only on the main
    thread; Ctrl-C is left alone where it is not Python's default (ignored, or someone
    else's handler)."""

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
    failed: str | None = None   # the run failed mid-run: files stay partial (not committed)


@dataclass
class LoopOptions:
    max_frames: int | None = None
    side_by_side: bool = False
    landmarks: str | None = None  # the mode that leaving side by side returns to (--landmarks)
    models: list[str] = field(default_factory=list)   # the HUD's "models" line
    pacer: Pacer | None = None   # play a file in the window at its frame rate x --speed
    record_status: bool = False  # --output also records the status bar
    screenshot_dir: str = "."    # where key p saves PNGs
    name_input: str = "window"   # how a live enrolment asks for the name (app.window.names)
    on_result: Callable[[FrameResult], None] | None = None  # every result (bench, tests)
    sync_embed: bool = False     # FaceNet on the frame path (bench --reference), not its thread


def run(pipeline: Pipeline, source: Source, outputs: Outputs | None = None,
        options: LoopOptions | None = None) -> tuple[dict, str | None]:
    """Process ``source`` until it ends, the user quits or ``max_frames``; returns the
    summary and why it stopped early (None when the source simply ended)."""
    return MainLoop(pipeline, source, outputs or Outputs(), options or LoopOptions()).run()


class MainLoop:
    """The loop's state; :meth:`step` is one turn (a frame, or a tick while paused)."""

    def __init__(self, pipeline: Pipeline, source: Source, outputs: Outputs,
                 options: LoopOptions):
        self.pipeline, self.source, self.out, self.options = pipeline, source, outputs, options
        self.controller = Controller(pipeline, side_by_side=options.side_by_side,
                                     name_input=options.name_input,
                                     mode_after_side_by_side=options.landmarks)
        self.stats = RunStats()
        self.last: FrameResult | None = None
        self.stop_reason: str | None = None
        self.failure: str | None = None   # why the run failed mid-run (exit 1), if it did
        self._signals = _StopSignals()
        self._fps = source.fps
        self._first_ts: float | None = None
        self._processed = 0           # frames through the pipeline (some may be held back)
        self.ended = False            # the source ended; the window holds the last picture
        self._shown_mode: str | None = None   # landmark mode self.last was drawn with
        self._redraw_at = 0.0

    def run(self) -> tuple[dict, str | None]:
        with ExitStack() as stack:
            self._signals.install()
            stack.callback(self._signals.restore)
            # Files may be read ahead (smooths jitter) and detected two frames at a time; a
            # live camera is read as late as possible, one frame at a time.
            live = self.source.is_live
            # FaceNet on its own thread: a live frame never waits for it, a file's frame
            # waits only for the faces of EMBED_LAG_FRAMES frames ago, and a headless file
            # run holds frames back until a track's first name is in (names stay on time)
            stack.enter_context(self.pipeline.video_mode(
                async_embed=not self.options.sync_embed,
                embed_lag=None if live else EMBED_LAG_FRAMES,
                hold=HELD_FRAMES if self.out.window is None else 0))
            reader = DetectAhead(self.source, self.pipeline.detect_functions(1 if live else 2),
                                 depth=1 if live else 3, wanted=self.pipeline.detect_wanted)
            stack.callback(reader.stop)
            self._guarded(lambda: self._play(reader))
            if not (self.stop_reason or "").startswith("failed"):  # also after Ctrl-C, q
                self._guarded(self._record_held)
        if self.controller.quit and not self.failure:
            self.stop_reason = "quit"
        if self.stop_reason is None and self.source.error:   # lost camera, file, --loop
            self.failure = self.source.error
            self.stop_reason = f"failed: {self.source.error}"
        self.out.failed = self.failure
        for line in self.controller.finish():
            print(line)
        summary = self.stats.summary(dropped=self.source.dropped)
        if self.stop_reason:
            summary["stopped"] = self.stop_reason
        if self.out.events is not None:
            self.out.events.write_summary(summary)
        return summary, self.stop_reason

    def _play(self, reader: DetectAhead) -> None:
        while self.step(reader):
            pass

    def _guarded(self, work: Callable[[], None]) -> None:
        """``work``, its way of stopping put in ``stop_reason``."""
        try:
            work()
        except KeyboardInterrupt:
            self.stop_reason = "interrupted (Ctrl-C)"
        except _Terminate:
            self.stop_reason = "terminated (SIGTERM)"
        except WriteFailed as exc:  # full disk, I/O error: stop, say so in the summary
            self.stop_reason = f"failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - a source or stage failed mid-run
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """A failure mid-run (a damaged gallery vector at the first match, a source that
        cannot be read on): the run stops with it in the summary (``stopped``); an
        unexpected kind of error also leaves its traceback on stderr."""
        self.failure = str(exc) or type(exc).__name__
        self.stop_reason = f"failed: {self.failure}"
        if not isinstance(exc, (ValueError, OSError, RuntimeError, LookupError)):
            import traceback
            traceback.print_exception(exc)

    def step(self, reader: DetectAhead) -> bool:
        """One turn of the loop; False when it should end."""
        controller = self.controller
        if controller.quit:
            return False
        if self.out.window is not None and (self.ended or controller.paused):
            if self.ended or not controller.take_step():
                return self._paused_tick()
        item = reader.get()
        if item is None:
            return self._at_end()
        embedding = self.pipeline.embedding
        with self._signals.recording():  # a Ctrl-C now stops after this frame
            result = self.pipeline.process(*item)   # (its FaceNet results taken are kept)
            self._processed += 1
            self.stats.begin()
            for ready in (embedding.hold(result) if embedding else [result]):
                self._record(ready)
        if self.stop_reason:
            return False
        limit = self.options.max_frames
        return limit is None or self._processed < limit

    def _record_held(self) -> None:
        """The frames a headless file run still holds (their names now in), at its end."""
        embedding = self.pipeline.embedding
        if embedding is not None:
            with self._signals.recording():
                for result in embedding.drain():
                    self._record(result)

    def _at_end(self) -> bool:
        """The source ended: a window keeps the last picture, with a hint, until q."""
        if self.out.window is None or self.last is None or self.controller.quit:
            return False
        self.ended = True
        self.controller.at_end = ("single image" if self.source.frame_count == 1
                                  else "end of video")
        self._redraw_at = 0.0
        return True

    def _paused_tick(self) -> bool:
        """Paused (or held at the end): redraw on any key and now and then (messages
        expire), pick up a landmark mode changed meanwhile; the time is not counted as
        playing time."""
        start = time.perf_counter()
        window = self.out.window
        if self.last is not None and (self._shown_mode != self.pipeline.requested_landmarks
                                      or start >= self._redraw_at):
            self._redraw()
        if self._input(30, self.last):
            self._redraw_at = 0.0
        self.controller.poll_name()
        if self.options.pacer is not None:
            self.options.pacer.reanchor()
        if window.closed:
            self.stop_reason = "window closed"
            return False
        if not self.ended:
            self.stats.idle(time.perf_counter() - start)
        return True

    def _redraw(self) -> None:
        """Show ``self.last`` again, its landmarks re-run if the mode changed (l, s)."""
        if self._shown_mode != self.pipeline.requested_landmarks:  # l or s while paused
            self.last = self.pipeline.relandmark(self.last)
            self._shown_mode = self.pipeline.landmarks
        picture = compose_picture(self.last, self.controller)
        self._to_window(window_view(picture, self.controller, self._hud(self.last)))
        self._redraw_at = time.perf_counter() + 0.25

    def _to_window(self, view) -> None:
        self.out.window.show(view)
        if self.controller.screenshot_wanted:
            self.controller.screenshot_wanted = False
            self.controller.say(save_screenshot(view, self.options.screenshot_dir))

    def _record(self, result: FrameResult) -> None:
        """Everything done with a processed frame: enrolment, view, outputs, stats."""
        frame = result.frame
        self.controller.after_frame(result)
        if self._first_ts is None:
            self._first_ts = frame.timestamp_ms
        t_ms = _media_ms(frame, self._fps, self._first_ts)
        if self.out.window is not None or self.out.video is not None:
            self._show(result)
        if self.out.events is not None:
            self.out.events.write(result, t_ms)
        self.stats.add(result, now_ms() - frame.timestamp_ms)
        if self.options.on_result is not None:
            self.options.on_result(result)
        self.last = result
        self._shown_mode = self.pipeline.landmarks

    def _show(self, result: FrameResult) -> None:
        start = time.perf_counter()
        picture = compose_picture(result, self.controller)
        view = None
        if self.out.window is not None or self.options.record_status:
            view = window_view(picture, self.controller, self._hud(result))
        result.stage_ms["render"] = (time.perf_counter() - start) * 1000
        if self.out.video is not None:
            self.out.video.write(view if self.options.record_status else picture,
                                 result.frame.media_ms)
        window = self.out.window
        if window is not None:
            self._wait_until_due(result)
            if window.closed:  # closed while waiting: showing would open it again
                self.stop_reason = "window closed"
                return
            self._to_window(view)
            self._input(1, result)
            if window.closed:
                self.stop_reason = "window closed"

    def _input(self, wait_ms: int, result: FrameResult | None) -> bool:
        """Clicks and a key from the window (waiting up to ``wait_ms`` for a key);
        whether there was any."""
        window = self.out.window
        key = window.key(wait_ms)
        clicks = getattr(window, "clicks", None) or []   # a window without a mouse: none
        if clicks:
            window.clicks = []
        for x, y in clicks:
            self.controller.click(x, y, result)
        self.controller.handle_key(key, result)
        return key >= 0 or bool(clicks)

    def _wait_until_due(self, result: FrameResult) -> None:
        """Playing a file at its own speed: keys keep working while waiting."""
        pacer, window = self.options.pacer, self.out.window
        if pacer is None or self.controller.paused:
            return
        frame = result.frame
        while (wait := pacer.delay(frame.index, frame.media_ms)) > 0.002:
            self._input(max(1, min(50, int(wait * 1000))), result)
            if self.controller.paused or self.controller.quit or window.closed:
                return

    def _hud(self, shown: FrameResult) -> list[str]:
        return _hud(self.stats, self.source, self.pipeline, self.options.models,
                    shown.frame.index, shown.frame.media_ms)


def _media_ms(frame, fps: float | None, first_ts: float) -> float:
    """Where ``frame`` is in the source (the events' ``t_ms``): a file's presentation time
    (PTS), else its index at the nominal frame rate, else (a camera) the time since the
    first frame."""
    if frame.media_ms is not None:
        return frame.media_ms
    return frame.index * 1000.0 / fps if fps else frame.timestamp_ms - first_ts


def _hud(stats: RunStats, source: Source, pipeline: Pipeline, models: list[str] | None,
         frame_index: int = 0, media_ms: float | None = None) -> list[str]:
    """Three lines for the status bar: speed; models; mean ms of each stage over the
    frames that ran it, with their count (match, well under 1 ms, is left out)."""
    active = [m if not m.startswith("landmarks:") else f"landmarks {pipeline.landmarks}"
              for m in (models or [])]
    speed = f"FPS {stats.fps:.1f}   " + _position(stats, source, frame_index, media_ms)
    stages = "  ".join(f"{k} {v.mean:.1f} ({len(v)})"
                       for k, v in stats.ran_ms.items() if v and k not in ("track", "match"))
    return [speed, "models: " + "  |  ".join(active),
            f"mean ms (frames): {stages}" if stages else "mean ms: -"]


def _position(stats: RunStats, source: Source, frame_index: int,
              media_ms: float | None = None) -> str:
    """A camera: latency of the last frame and frames dropped. A file: where playback is,
    the shown frame (1-based) and time (its PTS ``media_ms`` where known: a variable frame
    rate; its latency would only be the time a frame waited to be due)."""
    if source.is_live:
        latency = stats.latency_ms[-1] if stats.latency_ms else 0.0
        return (f"latency {latency:.0f} ms   dropped {source.dropped}   "
                f"frames {stats.frames}")
    total, fps = source.frame_count, source.fps
    if total:
        frame_index %= total   # --loop keeps counting across plays
    frame = f"frame {frame_index + 1}" + (f" / {total}" if total else "")
    if not fps or not total or total < 2:
        return frame
    length = total / fps
    at = frame_index / fps if media_ms is None else (media_ms / 1000.0) % length
    return f"{frame}   {_clock(at)} / {_clock(length)}"


def _clock(seconds: float) -> str:
    tenths = round(seconds * 10)   # rounded first: 59.96 s is 1:00.0, not 0:60.0
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def save_screenshot(view, folder: str | Path) -> str:
    """Key p: the window's picture as a PNG; returns the message to show."""
    folder = Path(folder)
    path = folder / time.strftime("facelandmarks-%Y%m%d-%H%M%S.png")
    n = 1
    while path.exists():
        n += 1
        path = folder / time.strftime(f"facelandmarks-%Y%m%d-%H%M%S-{n}.png")
    try:
        ok = cv2.imwrite(str(path), view)
    except cv2.error as exc:
        return f"screenshot failed: {exc}"
    return f"screenshot saved: {path}" if ok else f"screenshot failed: cannot write {path}"
