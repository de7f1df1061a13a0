"""A video file's frames with their presentation times (PTS), for indexing archives.

:class:`PtsVideo` decodes every frame in order with PyAV (FFmpeg) on one thread and
gives each :class:`~app.types.Frame` its **media time**: ``timestamp_ms`` is the frame's
PTS (times the stream's time base) minus the stream's start time, so a variable frame
rate clip, or one whose nominal rate is wrong, is timed as a player shows it, never as
frame count / nominal rate. (Elsewhere a file's ``timestamp_ms`` is the moment ``read()``
handed the frame over: latency, not media time. This reader is for ``index``.)

``fps`` samples: only frames at least ``1/fps`` s after the last one kept (on the PTS
clock) are yielded; every frame is still decoded, as a codec must.

    with PtsVideo("talk.mp4", fps=5) as video:
        for frame in video.frames():
            print(frame.index, frame.timestamp_ms / 1000)

A file FFmpeg cannot open raises ValueError naming the path; a file damaged part way
raises ValueError from :meth:`PtsVideo.frames` when decoding reaches the damage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..types import Frame


class PtsVideo:
    """One video file, frames in decoding order with PTS media times (module docstring)."""

    def __init__(self, path: str | Path, fps: float | None = None):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        if fps is not None and not fps > 0:
            raise ValueError(f"--fps must be positive, got {fps}")
        self.fps = fps
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot open video {self.path}: not a video FFmpeg can read "
                             f"({exc})") from None
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{self.path} holds no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "SLICE"
        self._stream.codec_context.thread_count = 1   # one core per worker
        self.frames_decoded = 0
        self.last_time_s = 0.0

    @property
    def duration_s(self) -> float | None:
        """The container's stated duration (None when it states none)."""
        duration = self._container.duration
        return None if duration is None else duration / 1_000_000

    @property
    def nominal_fps(self) -> float | None:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    def frames(self) -> Iterator[Frame]:
        """Decoded frames (every one, or ``fps`` samples), BGR uint8, PTS media times."""
        import av

        start = self._start_s()
        period = 1.0 / self.fps if self.fps else 0.0
        next_s = None
        index = 0
        try:
            for decoded in self._container.decode(self._stream):
                time_s = self._time_s(decoded, start)
                self.frames_decoded += 1
                self.last_time_s = max(self.last_time_s, time_s)
                if next_s is not None and time_s < next_s - 1e-6:
                    continue
                next_s = time_s + period
                yield Frame(index, decoded.to_ndarray(format="bgr24"), time_s * 1000.0)
                index += 1
        except av.error.FFmpegError as exc:
            raise ValueError(f"error decoding {self.path} after {self.frames_decoded} "
                             f"frame(s): {exc}") from None

    def _start_s(self) -> float:
        stream = self._stream
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base)

    def _time_s(self, decoded, start: float) -> float:
        if decoded.pts is None or decoded.time_base is None:   # no PTS: count frames
            rate = self.nominal_fps or 30.0
            return self.frames_decoded / rate
        return float(decoded.pts * decoded.time_base) - start

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "PtsVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_frames(path: str | Path) -> int:
    """The frame count a video's header states (or duration x average rate), for a
    progress bar; 0 when it states neither or cannot be opened. Reads no frame."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            seconds = container.duration / 1_000_000 if container.duration else 0.0
            return int(seconds * float(stream.average_rate or 0))
    except (av.error.FFmpegError, IndexError, UnicodeDecodeError, OSError):
        return 0
