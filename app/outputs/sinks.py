"""Where processed frames go: JSON lines, an annotated video file, an OpenCV window."""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..config import EVENTS_ON
from ..types import FrameResult
from .files import OutputError, PendingFile, WriteFailed
from .video import CONTAINERS, VideoEncoder, import_av

WINDOW_TITLE = "facelandmarks"


def display_available() -> bool:
    """False where an OpenCV window cannot open (no X11/Wayland display on Linux)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


STDOUT = "-"                 # --events -: JSON lines on standard output


class EventsWriter:
    """JSON lines (see README, "Events"), then a summary line.

    ``on="frame"``: one object per processed frame; ``"change"``: one per track event
    (:class:`TrackChanges`: appeared, named, renamed, unnamed, ended). ``path`` ``-`` is
    standard output. A file source's lines go to a partial file beside the target
    (``app.outputs.files.PendingFile``) that ``close()`` moves into place; ``live`` (a
    camera, a stream, serve) appends to the target itself as lines come, so it can be
    followed at a fixed path (``tail -F``) and a restarted service keeps what came before.
    Each line is written whole, so a killed run leaves whole lines behind. A write error
    (full disk) cuts the file back to its last whole line, sets ``failed`` and raises
    :class:`~app.outputs.files.WriteFailed`; the summary line then still says why the run
    stopped if the disk takes it."""

    def __init__(self, path: str | Path, on: str = "frame", live: bool = False,
                 ended_after: int = 10):
        if on not in EVENTS_ON:
            raise ValueError(f"--events-on must be one of {', '.join(EVENTS_ON)}, got {on!r}")
        to_stdout = str(path) == STDOUT
        self.pending = PendingFile(path, "--events", in_place=live or to_stdout)
        self.path = self.pending.target
        self.changes = TrackChanges(ended_after) if on == "change" else None
        self._fd: int | None = self._open(to_stdout, live)
        self._good = 0   # bytes of whole lines written
        self.frames = 0
        self.failed: WriteFailed | None = None

    def _open(self, to_stdout: bool, live: bool) -> int:
        if to_stdout:
            sys.stdout.flush()
            return os.dup(1)   # fd 1 itself: the run prints its own lines to stderr then
        in_place = os.O_CREAT | os.O_APPEND if live else 0   # else a FIFO, /dev/null
        flags = os.O_WRONLY | (in_place if self.pending.in_place else os.O_TRUNC)
        try:
            fd = (open_fifo(self.pending.path, flags) if _is_fifo(self.pending.path)
                  else os.open(self.pending.path, flags, 0o666))
        except OSError as exc:
            raise OutputError(f"cannot write --events {self.path}: {exc.strerror}") from exc
        self._good = os.fstat(fd).st_size if live else 0   # appending after earlier runs
        return fd

    def write(self, result: FrameResult, t_ms: float) -> None:
        if self.changes is None:
            self._line(frame_event(result, t_ms))
        else:
            for event in self.changes.see(result, t_ms):
                self._line(event)
        self.frames += 1

    def write_summary(self, summary: dict) -> None:
        """The last line (after the tracks still open, in ``change`` mode); after a
        failure, a best effort that must not raise again."""
        try:
            for event in self.changes.close() if self.changes is not None else ():
                self._line(event)
            self._line({"summary": summary})
        except WriteFailed:
            pass

    def close(self, commit: bool = True) -> None:
        """Close the file and, unless told not to or a write failed, move it into place."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if commit and self.failed is None:
                self.pending.commit()

    def _line(self, obj: dict) -> None:
        if self._fd is None or (self.failed is not None and "summary" not in obj):
            return
        data = (_json_line(obj) + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._good += len(data)
        except OSError as exc:
            self._cut_back()
            if self.failed is None:
                self.failed = WriteFailed("--events", self.path, self.pending.path, exc)
            raise self.failed from exc

    def _cut_back(self) -> None:
        """Drop a half-written line (also frees its bytes on a full disk)."""
        try:
            os.ftruncate(self._fd, self._good)
            os.lseek(self._fd, self._good, os.SEEK_SET)
        except OSError:
            pass


FIFO_WAIT_S = 30.0   # how long --events waits for a program to read its FIFO


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def open_fifo(path: Path, flags: int, wait_s: float | None = None) -> int:
    """Open a FIFO for writing without blocking forever: say that it waits for a reader,
    then give up after ``wait_s`` (default :data:`FIFO_WAIT_S`) with OutputError. The
    descriptor returned blocks on writes as usual (a slow reader slows the run)."""
    wait_s = FIFO_WAIT_S if wait_s is None else wait_s
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            fd = os.open(path, flags | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            if said:
                print(f"note: a reader opened {path}; going on", file=sys.stderr, flush=True)
            return fd
        except OSError as exc:
            if exc.errno != errno.ENXIO:   # ENXIO: a FIFO nobody reads yet
                raise
        if not said:
            print(f"note: --events {path} is a FIFO: waiting up to {wait_s:g} s for a program "
                  f"to read it (e.g. `cat {path}` in another terminal)", file=sys.stderr,
                  flush=True)
            said = True
        if time.monotonic() >= deadline:
            raise OutputError(f"--events {path} is a FIFO that no program opened for reading "
                              f"within {wait_s:g} s; start the reader first (e.g. `cat "
                              f"{path}`), or write the events to a file")
        time.sleep(0.1)


class TrackChanges:
    """``--events-on change``: what changed about the tracks this frame, as events.

    ``appeared`` (a new track), ``named`` (unknown -> a name), ``renamed`` (one name ->
    another), ``unnamed`` (a name -> unknown) and ``ended`` (not seen for more than
    ``ended_after`` frames: the tracker's ``max_missed``, after which it drops the track;
    or the run ended). Each event: frame, t_ms, event, track, name, similarity, box;
    ``previous`` for a change of name; ``last_t_ms`` for ``ended``."""

    def __init__(self, ended_after: int = 10):
        self.ended_after = ended_after
        self._open: dict[int, dict] = {}   # track -> its latest event fields
        self._now: tuple[int, float] = (0, 0.0)   # the latest frame and its t_ms

    def see(self, result: FrameResult, t_ms: float) -> list[dict]:
        index = result.frame.index
        self._now = (index, t_ms)
        events = []
        for face in result.faces:
            if face.track_id is None:
                continue
            now = _face_fields(face, index, t_ms)
            before = self._open.get(face.track_id)
            self._open[face.track_id] = now
            kind = _change(before, now)
            if kind is not None:
                previous = {"previous": before["name"]} if kind in ("renamed", "unnamed") else {}
                events.append({"event": kind, **now, **previous})
        for track, last in list(self._open.items()):
            if index - last["frame"] > self.ended_after:
                events.append(self._ended(track, index, t_ms))
        return events

    def close(self) -> list[dict]:
        """``ended`` for every track still open when the run ends."""
        return [self._ended(track, *self._now) for track in list(self._open)]

    def _ended(self, track: int, index: int, t_ms: float) -> dict:
        last = self._open.pop(track)
        return {"event": "ended", **last, "frame": index, "t_ms": round(float(t_ms), 3),
                "last_t_ms": last["t_ms"]}


def _face_fields(face, index: int, t_ms: float) -> dict:
    return {"frame": index, "t_ms": round(float(t_ms), 3), "track": face.track_id,
            "name": face.name, "similarity": _similarity(face.similarity),
            "box": [round(float(v), 1) for v in face.box]}


def _change(before: dict | None, now: dict) -> str | None:
    if before is None:
        return "appeared"
    if before["name"] == now["name"]:
        return None
    if before["name"] is None:
        return "named"
    return "unnamed" if now["name"] is None else "renamed"


def _similarity(value) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _json_line(obj: dict) -> str:
    """JSON, never with NaN or Infinity (not JSON: readers choke): those become null."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def frame_event(result: FrameResult, t_ms: float) -> dict:
    return {"frame": result.frame.index, "t_ms": round(float(t_ms), 3),
            "faces": [{"box": [round(float(v), 1) for v in face.box],
                       "track": face.track_id,
                       "name": face.name,
                       "similarity": _similarity(face.similarity),
                       "landmarks": None if face.landmarks is None
                       # numpy rounds 68 points 15x faster than a Python loop
                       else np.round(np.asarray(face.landmarks, np.float64), 1).tolist()}
                      for face in result.faces]}


def check_video_name(path: str | Path) -> Path:
    """``path`` if its suffix names a container we write, else OutputError (checked
    before anything slow starts)."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise OutputError(f"--output {path}: use a file name ending in "
                          f"{', '.join(CONTAINERS)} (.mp4: H.264, plays in browsers)")
    return path


class VideoSink:
    """Annotated frames to a video file at the source frame rate (``app.outputs.video``:
    H.264 in fragmented mp4, playable even after kill -9; Motion JPEG for .avi).

    Written to a partial file beside the target, moved into place by ``close()``. The
    size is fixed by the first frame (padded to even numbers, as H.264 needs); later
    frames of another size (the side-by-side view) are letterboxed into it. A write
    error sets ``failed`` and raises :class:`~app.outputs.files.WriteFailed`."""

    def __init__(self, path: str | Path, fps: float):
        path = check_video_name(path)
        import_av()
        self.pending = PendingFile(path, "--output")
        self.path = self.pending.target
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._encoder: VideoEncoder | None = None
        self._first: tuple[int, int] | None = None
        self._size: tuple[int, int] | None = None
        self._first_ms: float | None = None
        self.frames = 0
        self.failed: WriteFailed | None = None
        self._closed = False

    def write(self, image: np.ndarray, media_ms: float | None = None) -> None:
        """One frame; ``media_ms``: its time in the source (PTS), so the video keeps the
        source's timing (a variable frame rate too); without it, the nominal rate."""
        if self.failed is not None:
            raise self.failed
        try:
            if self._encoder is None:
                self._open(image.shape[1], image.shape[0])
                self._first_ms = media_ms
            at = None if media_ms is None or self._first_ms is None \
                else (media_ms - self._first_ms) / 1000.0
            self._encoder.write(self._fit(image), at)
        except (OSError, ValueError, RuntimeError) as exc:   # av errors subclass these
            self._fail(exc)
        self.frames += 1

    def close(self, commit: bool = True) -> None:
        """Finish the file and, unless told not to or a write failed, move it into place
        (a failure while finishing is recorded in ``failed``). Safe to repeat."""
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            try:
                encoder.close()
            except (OSError, ValueError, RuntimeError) as exc:
                if self.failed is None:
                    self.failed = WriteFailed("--output", self.path, self.pending.path, exc)
            if commit and self.failed is None:
                self.pending.commit()
        elif self.frames == 0 and not self._closed:
            self.pending.discard()   # no frame came: nothing to keep
        self._closed = True

    def _open(self, width: int, height: int) -> None:
        self._first = (width, height)
        self._size = (width + width % 2, height + height % 2)
        self._encoder = VideoEncoder(self.pending.path, *self._size, self.fps)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        size = (image.shape[1], image.shape[0])
        if size == self._size:
            return image
        if size == self._first:  # odd width or height: one black row/column
            return cv2.copyMakeBorder(image, 0, self._size[1] - size[1], 0,
                                      self._size[0] - size[0], cv2.BORDER_CONSTANT)
        return letterbox(image, self._size)

    def _fail(self, exc: BaseException) -> None:
        self.failed = WriteFailed("--output", self.path, self.pending.path, exc)
        raise self.failed from exc


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (w, h), centred on black."""
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    new = (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale)))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - new[0]) // 2, (h - new[1]) // 2
    out[y:y + new[1], x:x + new[0]] = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    return out


class Window:
    """An OpenCV window: ``show(image)`` then ``key()``; ``closed`` once the user closed it.

    Resizable, keeping the picture's proportions; each time the picture changes size
    (side by side, status bar) the window is fitted to the screen, scaled down when the
    picture is larger. Left clicks are queued in ``clicks`` as picture pixels."""

    def __init__(self, title: str = WINDOW_TITLE, screen: tuple[int, int] | None = None):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        self._screen = screen or screen_size()
        self._size: tuple[int, int] | None = None
        self._shown = False
        self.clicks: list[tuple[int, int]] = []
        try:
            cv2.setMouseCallback(title, self._on_mouse)
        except cv2.error:  # a backend without mouse events: clicks just never come
            pass

    def show(self, image: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            self._size = size
            scale = fit_scale(size, self._screen)
            cv2.resizeWindow(self.title, int(size[0] * scale), int(size[1] * scale))
        cv2.imshow(self.title, image)
        self._shown = True

    def key(self, wait_ms: int = 1) -> int:
        """The key pressed (low byte, -1 for none)."""
        code = cv2.waitKey(wait_ms)
        return -1 if code < 0 else code & 0xFF

    @property
    def closed(self) -> bool:
        if not self._shown:
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def _on_mouse(self, event, x, y, flags, param) -> None:
        if event == cv2.EVENT_LBUTTONDOWN:
            self.clicks.append((int(x), int(y)))


def fit_scale(size: tuple[int, int], screen: tuple[int, int] | None) -> float:
    """Scale (<= 1) at which a ``size`` picture fits the screen with room for the
    window's frame and a panel."""
    if not screen:
        return 1.0
    return min(1.0, 0.95 * screen[0] / size[0], 0.88 * screen[1] / size[1])


def screen_size() -> tuple[int, int] | None:
    """(width, height) of the X screen, None where it cannot be asked (no X11)."""
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if not name:
        return None
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in (x11.XDefaultScreen, x11.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    display = x11.XOpenDisplay(None)
    if not display:
        return None
    try:
        screen = x11.XDefaultScreen(display)
        return x11.XDisplayWidth(display, screen), x11.XDisplayHeight(display, screen)
    finally:
        x11.XCloseDisplay(display)
