"""Decoding a video file for ``run``: every frame, its media time, past damaged packets.

:class:`FileDecoder` reads one file with PyAV (FFmpeg) and yields ``(image, time_s)``:
BGR uint8 pixels (turned upright when the file says it was filmed rotated) and the
frame's presentation time (PTS) in seconds from the stream's start, so a variable frame
rate clip is timed as a player shows it (``None`` where a frame has no PTS).

* **Size**: the frame size in the stream's header is checked against the image pixel
  limit (``app.stages.images.MAX_PIXELS``) before anything is decoded; a stream that
  states no size is checked on its first frame, before it is converted.
* **Damage**: a packet the decoder refuses is skipped and decoding goes on at the next
  one it accepts (``damaged``: the frame numbers where that happened); a container
  that cannot be read on ends the frames early with ``stopped`` saying where. After
  the last frame, ``missing`` is how many frames the header promised and did not come.
* **File names**: a name that is not UTF-8 (a Latin-1 name from an old disk) is opened
  through a Python file object, since FFmpeg takes names as UTF-8 text.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..stages.images import MAX_PIXELS


class VideoTooLarge(ValueError):
    """A video whose frames are over the pixel limit."""


def utf8_name(path: Path) -> bool:
    """Whether ``path`` can be handed to a C library as UTF-8 text."""
    try:
        os.fsencode(path).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class FileDecoder:
    """One video file's frames with media times (module docstring). Raises
    FileNotFoundError, :class:`VideoTooLarge` or ValueError (naming the file) up front.
    ``threads``: decoder threads (0: FFmpeg's choice; ``index`` workers use 1)."""

    def __init__(self, path: str | Path, max_pixels: int = MAX_PIXELS, threads: int = 0):
        import av

        self.path = Path(path)
        self.max_pixels = max_pixels
        self._file = None if utf8_name(self.path) else open(self.path, "rb")
        try:
            self._container = av.open(self._file or str(self.path))
        except (av.error.FFmpegError, OSError, UnicodeError) as exc:
            self._close_file()
            raise ValueError(f"cannot open video {self.path}: not a video this app can read "
                             f"(corrupt, or an unsupported codec: {_reason(exc)})") from None
        if not self._container.streams.video:
            self.close()
            raise ValueError(f"cannot open video {self.path}: it holds no video stream")
        self._stream = stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        self._check_size(stream.codec_context.width, stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate
        self.fps: float | None = float(rate) if rate and rate > 0 else None
        base = stream.time_base
        self._start_s = float(stream.start_time * base) if stream.start_time is not None \
            and base is not None else 0.0
        duration = stream.duration * base if stream.duration and base else (
            self._container.duration / 1_000_000 if self._container.duration else None)
        self.duration_s: float | None = float(duration) if duration else None
        # the header's count (mp4, avi), else (mkv, webm) its duration at the nominal rate
        self.frame_count: int | None = stream.frames or (
            round(self.duration_s * self.fps) if self.duration_s and self.fps else None)
        self.decoded = 0
        self.last_time_s: float | None = None
        self.damaged: list[int] = []   # frame numbers where a damaged packet was skipped
        self.stopped: str | None = None

    @property
    def cut_short(self) -> bool:
        """Whether the frames ended well before the stream's stated duration (the last
        frame's time more than half a second and three frames short of it)."""
        if self.duration_s is None or self.last_time_s is None:
            return False
        period = 1.0 / self.fps if self.fps else 0.04
        return self.last_time_s + period < self.duration_s - max(0.5, 3 * period)

    @property
    def missing(self) -> int:
        """Frames the file holds (its header's count, else its duration at the nominal
        rate) that were not decoded; 0 unless the frames ended short of the duration."""
        if not self.cut_short:
            return max(0, (self.frame_count or 0) - self.decoded) if self.damaged else 0
        expected = self.frame_count or round(self.duration_s * (self.fps or 0))
        return max(0, expected - self.decoded)

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """Every decodable frame, in order: ``(BGR image, media time in s or None)``."""
        import av

        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as exc:   # the container cannot go on
                self.stopped = (f"{self.path} cannot be read past frame {self.decoded + 1}: "
                                f"{_reason(exc)}")
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:   # a damaged packet: skip it, go on at the next
                if not self.damaged or self.damaged[-1] != self.decoded + 1:
                    self.damaged.append(self.decoded + 1)
                continue
            for frame in decoded:
                self.decoded += 1
                time_s = self._time_s(frame)
                if time_s is not None:
                    self.last_time_s = max(time_s, self.last_time_s or time_s)
                yield self._image(frame), time_s

    def _image(self, frame) -> np.ndarray:
        self._check_size(frame.width, frame.height)
        image = frame.to_ndarray(format="bgr24")
        turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(image, turns)) if turns else image

    def _time_s(self, frame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        return float(frame.pts * Fraction(frame.time_base)) - self._start_s

    def _check_size(self, width: int, height: int) -> None:
        if width and height and width * height > self.max_pixels:
            self.close()
            raise VideoTooLarge(
                f"{self.path}: its frames are {width}x{height}, {width * height / 1e6:.1f} "
                f"megapixels, over the limit of {self.max_pixels / 1e6:g} megapixels; scale "
                f"it down first (e.g. ffmpeg -i IN -vf scale=1920:-2 OUT)")

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
