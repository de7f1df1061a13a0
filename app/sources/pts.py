"""A video file's frames as :class:`~app.types.Frame` s timed by their PTS, for ``index``.

:class:`PtsVideo` reads one file with ``run``'s decoder (:class:`~app.sources.decode.
FileDecoder`: PyAV, damaged packets skipped, rotation, the pixel limit) on one thread,
and gives each frame its **media time**: ``timestamp_ms`` is the frame's PTS from the
stream's start, so a variable frame rate clip, or one whose nominal rate is wrong, is
timed as a player shows it, never as frame count / nominal rate. (A frame with no PTS
gets the previous one's time plus one nominal frame.)

``fps`` samples: only frames at least ``1/fps`` s after the last one kept (on the PTS
clock) are yielded; every frame is still decoded, as a codec must. ``index`` counts a
file whose frames end early (cut short, or unreadable past some frame) as failed:
:meth:`PtsVideo.frames` raises ValueError saying where, after the frames it could read.

    with PtsVideo("talk.mp4", fps=5) as video:
        for frame in video.frames():
            print(frame.index, frame.timestamp_ms / 1000)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..types import Frame
from .decode import FileDecoder


class PtsVideo:
    """One video file, frames in order with PTS media times (module docstring)."""

    def __init__(self, path: str | Path, fps: float | None = None):
        if fps is not None and not fps > 0:
            raise ValueError(f"--fps must be positive, got {fps}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self.fps = fps
        self._decoder = FileDecoder(self.path, threads=1)
        self.last_time_s = 0.0

    @property
    def frames_decoded(self) -> int:
        return self._decoder.decoded

    @property
    def nominal_fps(self) -> float | None:
        return self._decoder.fps

    @property
    def damaged(self) -> list[int]:
        """Frame numbers where a damaged packet was skipped (the file still counts)."""
        return self._decoder.damaged

    def frames(self) -> Iterator[Frame]:
        """Decoded frames (every one, or ``fps`` samples), BGR uint8, PTS media times."""
        period = 1.0 / self.fps if self.fps else 0.0
        step = 1.0 / (self.nominal_fps or 30.0)
        next_s = None
        index = 0
        for image, time_s in self._decoder.frames():
            if time_s is None:   # no PTS: one nominal frame after the last
                time_s = self.last_time_s + step if self.frames_decoded > 1 else 0.0
            self.last_time_s = max(self.last_time_s, time_s)
            if next_s is not None and time_s < next_s - 1e-6:
                continue
            next_s = time_s + period
            yield Frame(index, image, time_s * 1000.0)
            index += 1
        decoder = self._decoder
        if decoder.stopped or decoder.cut_short:
            raise ValueError(decoder.stopped or f"{self.path} ends at "
                             f"{self.last_time_s:.2f} s of its stated {decoder.duration_s:.2f} s "
                             f"({decoder.missing} frame(s) missing: cut short?)")

    def close(self) -> None:
        self._decoder.close()

    def __enter__(self) -> "PtsVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_frames(path: str | Path) -> int:
    """The frame count a video's header states (or duration x nominal rate), for a
    progress bar; 0 when it states neither or cannot be opened. Reads no frame."""
    try:
        decoder = FileDecoder(path, threads=1)
    except (ValueError, OSError):
        return 0
    try:
        return decoder.frame_count or 0
    finally:
        decoder.close()
