"""Playing a file in the window as a video player would: at its own frame rate (or
``--speed`` times it), over and over with ``--loop``; headless runs stay as fast as the
machine allows.

:class:`Pacer` says how long to wait before showing a frame: frame ``i`` is due
``(i - i0) / (fps * speed)`` seconds after the anchor (frame ``i0``'s time), so a slow
frame is caught up by the next ones instead of shifting everything after it. After a
pause or a step the pacer re-anchors on the next frame, so paused time is never
"caught up" by racing.

:class:`LoopingSource` plays a video file again from the start each time it ends; frame
indices keep increasing, so pacing, enrolment and events stay in order.
"""
from __future__ import annotations

import time
from typing import Callable

from ..protocols import Source
from ..types import Frame


class Pacer:
    """Frame ``index`` is due ``(index - anchor_index) / (fps * speed)`` s after the anchor,
    or, given the frames' media times (PTS, a variable frame rate), ``(at - anchor's at) /
    speed``."""

    def __init__(self, fps: float, speed: float = 1.0, clock: Callable[[], float] = time.perf_counter):
        if not fps or fps <= 0:
            raise ValueError(f"frame rate must be positive, got {fps!r}")
        if not speed or speed <= 0:
            raise ValueError(f"--speed must be positive, got {speed!r}")
        self.period = 1.0 / (fps * speed)
        self.speed = speed
        self._clock = clock
        self._anchor: tuple[int, float, float | None] | None = None

    def delay(self, index: int, at_ms: float | None = None) -> float:
        """Seconds to wait before showing frame ``index`` (0 when it is due or late);
        ``at_ms``: its media time, which paces it where the anchor has one too."""
        now = self._clock()
        if self._anchor is None or index < self._anchor[0]:
            self._anchor = (index, now, at_ms)
        first, start, first_ms = self._anchor
        if at_ms is not None and first_ms is not None:
            due = start + (at_ms - first_ms) / 1000.0 / self.speed
        else:
            due = start + (index - first) * self.period
        if now - due > 0.5:  # far behind (a slow machine, a stall): start afresh from here
            self._anchor = (index, now, at_ms)
            return 0.0
        return max(0.0, due - now)

    def reanchor(self) -> None:
        """The next frame asked for is shown at once and becomes the new anchor."""
        self._anchor = None


class LoopingSource:
    """A video file played again from the start whenever it ends (``--loop``).

    ``open_file()`` returns a fresh, not yet started source over the file: a
    :class:`~app.sources.capture.VideoFileSource`, or the camera path's
    :func:`~app.sources.capture.realtime_video` (then this source is live too)."""

    def __init__(self, open_file: Callable[[], Source]):
        self._open = open_file
        self._current = open_file()
        self.is_live = self._current.is_live
        self.fps = self._current.fps
        self.frame_count = self._current.frame_count
        self.path = self._current.path
        self._dropped_before = 0   # frames earlier plays dropped (a live play)
        self.ended = False
        self.plays = 1
        self._offset = 0
        self._read = 0
        self._media_offset = 0.0   # ms: the plays before this one, end to end
        self._media_end = 0.0      # ms: the end of this play so far (last frame + its gap)
        self._last_media: float | None = None
        self._lost: str | None = None   # the file could not be opened again

    @property
    def error(self) -> str | None:
        """Why the source ended early: the file lost between plays (deleted, moved,
        damaged), or the current play's error. The run then exits 1 with its summary."""
        return self._lost or self._current.error

    @property
    def dropped(self) -> int:
        return self._dropped_before + self._current.dropped

    def start(self) -> "LoopingSource":
        self._current.start()
        return self

    def stop(self) -> None:
        self.ended = True
        self._current.stop()

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.ended:
            return None
        frame = self._current.read(timeout=timeout)
        if frame is None:
            if self._current.ended:
                if self.error or self._read == 0:   # failed, or a play with no frame
                    self.ended = True
                else:
                    self._restart()
            return None
        self._read = frame.index + 1   # a live play may skip (drop) indices
        return Frame(frame.index + self._offset, frame.image, frame.timestamp_ms,
                     self._media(frame.media_ms))

    def _media(self, media_ms: float | None) -> float | None:
        """A frame's media time across plays: each play starts where the last one ended
        (its last frame's time plus the gap before it, or one nominal frame period)."""
        if media_ms is None:
            return None
        gap = (media_ms - self._last_media if self._last_media is not None
               and media_ms > self._last_media else 1000.0 / (self.fps or 30.0))
        self._last_media = media_ms
        self._media_end = max(self._media_end, media_ms + gap)
        return media_ms + self._media_offset

    def _restart(self) -> None:
        self._current.stop()
        self._dropped_before += self._current.dropped
        self._offset += self._read
        self._read = 0
        self._media_offset += self._media_end
        self._media_end, self._last_media = 0.0, None
        try:
            self._current = self._open().start()
        except Exception as exc:   # FileNotFoundError, a damaged file, CameraError
            self._lost = f"--loop: cannot play {self.path} again after {self.plays} play(s): {exc}"
            self.ended = True
            return
        self.plays += 1
