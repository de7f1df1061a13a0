"""Frame sources: a live camera, a video file, a single image.

Every source speaks the same small protocol::

    with open_source("0") as source:          # start() on enter, stop() on exit
        while (frame := source.read()) is not None:
            ...

``read()`` returns the next :class:`~app.types.Frame`, or ``None`` when the source has
ended (check ``source.ended`` / ``source.error`` to tell why). Iterating a source
yields frames until it ends.

* :class:`CameraSource` reads the device on its own thread into a one-slot "latest
  frame" buffer. A slow consumer always gets the newest frame, never the same frame
  twice; frames overwritten before anyone read them are counted in ``dropped``.
* :class:`VideoFileSource` decodes every frame, in order, on a reader thread that
  stays at most ``queue_size`` frames ahead, with a progress bar on stderr.
* :class:`ImageSource` serves one photo once.
* :func:`realtime_video` plays a video file through the camera path: a
  :class:`CameraSource` over :class:`PacedVideoCapture`, which hands frames over at the
  file's own frame rate, so a slow consumer loses frames as it would with a camera
  (``python -m app bench --realtime``).

``Frame.timestamp_ms`` is on the :func:`now_ms` clock (``time.monotonic``), so a caller
measures capture->display latency as ``now_ms() - frame.timestamp_ms``. For a camera it
is the moment the device handed the frame over; for files it is the moment ``read()``
handed the frame to the caller (decoding ahead is not latency anyone sees). The media
position of a video frame is ``frame.index / source.fps``.
"""
from __future__ import annotations

import os
import queue
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..stages.images import read_image
from ..types import Frame
from .decode import FileDecoder
from .redact import mask_urls, masked_native_stderr

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ts", ".mts", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pnm", ".jp2"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

LIST_DEVICES_HINT = ("list cameras with `v4l2-ctl --list-devices` or `ls /dev/video*` (Linux), "
                     "`ffmpeg -f avfoundation -list_devices true -i \"\"` (macOS), "
                     "or try another index such as 1")

STOP_TIMEOUT_S = 0.75  # stop() gives the capture thread this long to finish (< 1 s promised)
RECONNECT_ATTEMPTS = 3      # a lost camera's reopen attempts before the run ends (run)
RECONNECT_DELAY_S = 0.5     # the first wait before reopening; doubled after each failure
RECONNECT_MAX_DELAY_S = 30.0   # ... up to this (a service's camera may be gone for hours)


def now_ms() -> float:
    """The clock every ``Frame.timestamp_ms`` is on (monotonic, milliseconds)."""
    return time.monotonic() * 1000.0


class CameraError(RuntimeError):
    """A camera (index, device path or stream URL) could not be opened."""


def describe_source(source: int | str) -> str:
    """Human-readable name of a camera source, with every URL credential hidden (the
    password however it is spelled, secret query values: :mod:`app.sources.redact`)."""
    if isinstance(source, int):
        return f"camera index {source}"
    return "camera " + mask_urls(str(source))


def _is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def open_capture(source: int | str):
    """``cv2.VideoCapture`` for a camera index, device or stream URL. A URL goes straight
    to FFmpeg (not through OpenCV's image-sequence reader, whose error repeats the URL),
    with FFmpeg's and OpenCV's own lines about it caught and masked."""
    if not _is_url(source):
        return cv2.VideoCapture(source)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # quiet, if FFmpeg is not up yet
    with masked_native_stderr(source):
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG)


class _SourceBase:
    """The protocol every source shares (``app.protocols.Source``): ``with source:``
    starts and stops it, ``close`` is ``stop``, iterating yields frames until ``read()``
    returns None. Subclasses provide ``start``, ``stop`` and ``read``; a live source
    overrides ``is_live``; the attributes below are the defaults of what a source
    does not have (a camera's frame rate and path, a file's dropped frames)."""

    is_live = False
    fps: float | None = None
    frame_count: int | None = None
    path: Path | None = None
    dropped = 0
    ended = False
    error: str | None = None

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


class CameraSource(_SourceBase):
    """Live camera read on its own thread; ``read()`` always serves the newest frame.

    ``source`` is a device index (``0``), a device path (``/dev/video2``) or a stream
    URL (``rtsp://...``). ``open_fn(source)`` must return an object with ``read()``,
    ``release()`` and ``isOpened()`` like ``cv2.VideoCapture`` (tests pass a fake).
    When the camera stops delivering frames the thread reopens it up to
    ``reconnect_attempts`` times (None: until it is back or the source is stopped),
    waiting ``reconnect_delay_s`` before the first attempt and twice as long after each
    failed one, up to ``max_delay_s``; ``reconnecting`` is True meanwhile. If the
    attempts run out the source ends: ``read()`` returns ``None``, ``ended`` is True and
    ``error`` says why.
    """

    def __init__(self, source: int | str, open_fn: Callable = open_capture,
                 reconnect_attempts: int | None = RECONNECT_ATTEMPTS,
                 reconnect_delay_s: float = RECONNECT_DELAY_S,
                 width: int | None = None, height: int | None = None,
                 max_delay_s: float = RECONNECT_MAX_DELAY_S):
        if isinstance(source, str) and source.strip().isdigit():
            source = int(source.strip())
        self.source = source
        self.name = describe_source(source)
        self._open_fn = open_fn
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay_s = float(reconnect_delay_s)
        self.max_delay_s = float(max_delay_s)
        self.reconnecting = False
        self._size = (width, height)
        self._cond = threading.Condition()
        self._slot: Frame | None = None  # newest frame not yet read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap = None
        self._cap_lock = threading.Lock()
        self.captured = 0  # frames the device delivered
        self.dropped = 0   # frames overwritten in the slot before anyone read them
        self.reconnects = 0
        self.ended = False
        self.error: str | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "CameraSource":
        """Open the device and start the capture thread. Raises CameraError if it will not open."""
        if self._thread is not None:
            return self
        if self._stop.is_set():
            raise RuntimeError(f"{self.name} was stopped; make a new CameraSource to reopen it")
        self._cap = self._open()
        if self._cap is None:
            if isinstance(self.source, str) and "://" in self.source:
                hint = "check the URL, the network and any user name/password"
            else:
                hint = f"check that it is connected and not in use by another program; " \
                       f"{LIST_DEVICES_HINT}"
            raise CameraError(f"cannot open {self.name}: {hint}")
        self._thread = threading.Thread(target=self._run, name=f"capture[{self.name}]",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (joined within about 1 s) and release the device. Safe to repeat."""
        self._stop.set()
        with self._cond:
            self.ended = True
            self._slot = None  # a stopped source serves nothing more
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                # The device is blocked inside read(); the thread releases it when read returns.
                return
        self._release()


    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                if self.ended:
                    return
                continue
            yield frame

    # -- consumer side -------------------------------------------------------------
    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """Newest frame not served before; waits up to ``timeout`` s for one (None = forever).

        Returns ``None`` on timeout, after ``stop()``, or once the camera has ended and its
        last frame was served (see ``ended``/``error``). Starts the source if ``start()``
        was not called.
        """
        if self._thread is None and not self.ended:
            self.start()
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self.ended, timeout)
            frame, self._slot = self._slot, None
            return frame

    is_live = True

    # -- capture thread ------------------------------------------------------------
    def _open(self):
        """Open the device; the capture object, or None if it did not open."""
        try:
            cap = self._open_fn(self.source)
        except Exception:  # noqa: BLE001 - a backend error means "did not open"
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        if hasattr(cap, "set"):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # do not queue stale frames in the driver
            width, height = self._size
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        return cap

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self._cap.read()
                if self._stop.is_set():
                    break
                if not ok or image is None:
                    # A file played as a camera has simply ended; nothing to reconnect.
                    if getattr(self._cap, "finished", False) or not self._reconnect():
                        break
                    continue
                self._publish(image)
        except Exception as exc:  # noqa: BLE001 - end cleanly and say why
            self._finish(f"{self.name} failed: {exc!r}")
        finally:
            self._release()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(index=self.captured, image=image, timestamp_ms=now_ms())
        with self._cond:
            if self._stop.is_set():
                return
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
            self.captured += 1
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        """Reopen the lost device with backoff; False (and the source ends) after the last
        failed attempt or a stop."""
        lost_at, delay, attempt = time.monotonic(), self.reconnect_delay_s, 0
        self.reconnecting = self.reconnect_attempts != 0
        if self.reconnecting:
            print(f"warning: {self.name} stopped delivering frames after {self.captured} "
                  f"frames; reopening it", file=sys.stderr, flush=True)
        try:
            while self.reconnect_attempts is None or attempt < self.reconnect_attempts:
                attempt += 1
                if self._stop.wait(delay):
                    return False
                self._release()
                cap = self._open()
                if cap is not None:
                    with self._cap_lock:
                        self._cap = cap
                    self.reconnects += 1
                    print(f"note: {self.name} reopened after {time.monotonic() - lost_at:.1f} s "
                          f"({attempt} attempt(s))", file=sys.stderr, flush=True)
                    return True
                delay = min(delay * 2, self.max_delay_s)
        finally:
            self.reconnecting = False
        self._finish(f"{self.name} stopped delivering frames after {self.captured} frames; "
                     f"{self.reconnect_attempts} reconnect attempts failed")
        return False

    def _finish(self, error: str) -> None:
        with self._cond:
            self.error = error
            self.ended = True
            self._cond.notify_all()

    def _release(self) -> None:
        with self._cap_lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class FrameClock:
    """A camera's shutter: :meth:`wait` returns once per ``1/fps`` s. A caller that falls
    more than a period behind restarts the schedule rather than getting a burst of ticks."""

    def __init__(self, fps: float):
        if not fps or fps <= 0:
            raise ValueError(f"frame rate must be positive, got {fps!r}")
        self.period = 1.0 / fps
        self._next = time.monotonic()

    def wait(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self.period, time.monotonic() - self.period)


class PacedVideoCapture:
    """A video file that behaves like a camera device for :class:`CameraSource`:
    ``read()`` hands each frame over on the file's frame rate (``fps`` overrides it).
    ``finished`` turns True at the end of the file, so the source ends instead of
    reconnecting. Raises FileNotFoundError / ValueError (naming the path) up front.
    Decoded like :class:`VideoFileSource` (PyAV: any file name, the pixel limit, past
    damaged packets)."""

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._decoder = FileDecoder(self.path)
        self.fps = fps or self._decoder.fps
        if not self.fps or self.fps <= 0:
            self._decoder.close()
            raise ValueError(f"cannot play video {self.path} in real time: it has no frame "
                             f"rate")
        self._frames = self._decoder.frames()
        self._clock = FrameClock(self.fps)
        self.finished = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._decoder is not None and not self.finished

    def read(self):
        item = next(self._frames, None) if self._decoder is not None else None
        if item is None:
            self.finished = True
            return False, None
        self._clock.wait()
        return True, item[0]

    def release(self) -> None:
        if self._decoder is not None:
            self._frames.close()
            self._decoder.close()
            self._decoder = None


def realtime_video(path: str | Path, fps: float | None = None) -> CameraSource:
    """A video file through the camera path (not started): frames arrive at the file's
    frame rate whether or not anyone takes them; ``dropped`` counts those nobody did."""
    capture = PacedVideoCapture(path, fps)
    source = CameraSource(str(capture.path), open_fn=lambda _: capture, reconnect_attempts=0)
    source.fps = capture.fps
    return source


class VideoFileSource(_SourceBase):
    """Every frame of a video file, in order, then ``None``.

    Decoded with PyAV (:class:`~app.sources.decode.FileDecoder`): each frame carries its
    presentation time (``Frame.media_ms``, so a variable frame rate is timed as a player
    shows it); frames over the image pixel limit are refused from the header; a damaged
    packet is skipped with a warning naming the frame, and a file that cannot be read to
    the end (cut short, damaged container) ends with ``error`` saying at which frame and
    how many frames the file promised were not read (the run then exits 1).

    Raises FileNotFoundError if ``path`` does not exist and ValueError (naming the
    path) if it cannot be opened or its first frame cannot be decoded. A reader thread
    decodes up to ``queue_size`` frames ahead; a tqdm progress bar on stderr counts the
    frames handed out when ``progress`` is true.
    """

    def __init__(self, path: str | Path, progress: bool = True, queue_size: int = 8):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._decoder = FileDecoder(self.path)
        self._frames = self._decoder.frames()
        first = next(self._frames, None)
        if first is None:
            self._decoder.close()
            why = f" {self._decoder.stopped}" if self._decoder.stopped else ""
            raise ValueError(f"cannot decode any frame of video {self.path} (corrupt or "
                             f"empty?{why})")
        self.fps: float | None = self._decoder.fps
        self.frame_count: int | None = self._decoder.frame_count
        self._first = first
        self._progress = progress
        self._bar = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_index = 0
        self.ended = False
        self.error: str | None = None

    def start(self) -> "VideoFileSource":
        if self._thread is None and not self.ended:
            self._bar = _progress_bar(self.frame_count, self.path.name, self._progress)
            self._thread = threading.Thread(target=self._run, name=f"video[{self.path.name}]",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop decoding, join the reader thread and release the file. Safe to repeat."""
        self._stop.set()
        self.ended = True
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a reader waiting on a full queue
                _drain(self._queue)
                self._thread.join(0.05)
        if self._decoder is not None:
            self._frames.close()
            self._decoder.close()
            self._decoder = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame in order; ``None`` at the end (or on timeout, with ``ended`` False)."""
        if self._stop.is_set() or (self.ended and self._thread is None):
            return None
        self.start()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:  # end marker
            self.ended = True
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._queue.put(None)  # later reads also see the end
            return None
        image, time_s = item
        frame = Frame(index=self._next_index, image=image, timestamp_ms=now_ms(),
                      media_ms=None if time_s is None else time_s * 1000.0)
        self._next_index += 1
        if self._bar is not None:
            self._bar.update(1)
        return frame

    def _run(self) -> None:
        item, self._first = self._first, None
        damaged = 0
        try:
            while item is not None and not self._stop.is_set():
                if not self._put(item):
                    return
                if len(self._decoder.damaged) > damaged:
                    damaged = len(self._decoder.damaged)
                    print(f"\nwarning: {self.path} is damaged at frame "
                          f"{self._decoder.damaged[-1]}: skipped what cannot be decoded and "
                          f"went on", file=sys.stderr, flush=True)
                item = next(self._frames, None)
            if not self._stop.is_set():
                self.error = self._ended_early()
        except Exception as exc:  # noqa: BLE001
            self.error = f"error decoding {self.path} after frame {self._decoder.decoded}: {exc}"
        self._put(None)

    def _ended_early(self) -> str | None:
        """Why the file ended before the frames its header promised (None: it did not, or
        only damaged packets were skipped on the way, which the warnings said)."""
        decoder = self._decoder
        promised = f" of the {decoder.frame_count} frames the file holds" \
            if decoder.frame_count else ""
        if decoder.stopped is not None:
            return (f"{decoder.stopped}; {decoder.missing}{promised} were not read"
                    if decoder.missing else decoder.stopped)
        if decoder.damaged:
            if decoder.missing:
                print(f"warning: {self.path}: {decoder.missing}{promised} could not be "
                      f"decoded (damaged at frame(s) "
                      f"{', '.join(map(str, decoder.damaged[:10]))})", file=sys.stderr)
            return None
        if decoder.cut_short:
            return (f"decoding of {self.path} ended at frame {decoder.decoded} (the file is "
                    f"cut short or damaged); {decoder.missing}{promised} were not read")
        return None

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class ImageSource(_SourceBase):
    """One photo served once as frame 0, then ``None``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file not found: {self.path}")
        self.image = read_image(self.path)  # same checks as enrolment photos (app.stages.images)
        self.fps = None
        self.frame_count = 1
        self.ended = False
        self.error: str | None = None

    def start(self) -> "ImageSource":
        return self

    def stop(self) -> None:
        self.ended = True

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.ended:
            return None
        self.ended = True
        return Frame(index=0, image=self.image, timestamp_ms=now_ms())


Source = CameraSource | VideoFileSource | ImageSource


def open_source(spec: int | str | Path, progress: bool = True, **camera_kwargs) -> Source:
    """Turn a command-line source into a (not yet started) source.

    ``0`` / ``"0"`` / ``/dev/video0`` / a stream URL -> :class:`CameraSource`;
    an existing file with a video extension -> :class:`VideoFileSource`; with an
    image extension -> :class:`ImageSource`. A missing file raises FileNotFoundError,
    an unknown extension ValueError.
    """
    if isinstance(spec, int):
        return CameraSource(spec, **camera_kwargs)
    text = str(spec).strip()
    if text.isdigit():
        return CameraSource(int(text), **camera_kwargs)
    if text.lower().startswith(STREAM_SCHEMES) or re.fullmatch(r"/dev/video\d+", text):
        return CameraSource(text, **camera_kwargs)
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"--source {path} is a folder, not a video or image file; give a file "
                         f"inside it")
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path} (expected a camera index such as 0, "
                                f"a stream URL, a video or an image file)")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return VideoFileSource(path, progress=progress)
    if suffix in IMAGE_EXTENSIONS:
        return ImageSource(path)
    raise ValueError(f"cannot tell what {path} is from its extension {suffix!r}; expected a "
                     f"video ({', '.join(sorted(VIDEO_EXTENSIONS))}) or an image "
                     f"({', '.join(sorted(IMAGE_EXTENSIONS))})")


def _progress_bar(total: int | None, label: str, enabled: bool):
    """A tqdm bar on stderr, or None when disabled or tqdm is not installed."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=label, unit="frame", file=sys.stderr, dynamic_ncols=True,
                leave=True)


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
