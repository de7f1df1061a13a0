"""Where processed frames go: JSON lines, an annotated video file, an OpenCV window."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from app.types import FrameResult

WINDOW_TITLE = "facelandmarks"


def display_available() -> bool:
    """False where an OpenCV window cannot open (no X11/Wayland display on Linux)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class EventsWriter:
    """One JSON object per processed frame, then a summary line (see README, "Events").

    Each line is flushed as it is written, so a killed run leaves whole lines behind."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot write events to {self.path}: {exc}") from exc
        self.frames = 0

    def write(self, result: FrameResult, t_ms: float) -> None:
        self._line(frame_event(result, t_ms))
        self.frames += 1

    def write_summary(self, summary: dict) -> None:
        self._line({"summary": summary})

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def _line(self, obj: dict) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()


def frame_event(result: FrameResult, t_ms: float) -> dict:
    return {"frame": result.frame.index, "t_ms": round(float(t_ms), 3),
            "faces": [{"box": [round(float(v), 1) for v in face.box],
                       "track": face.track_id,
                       "name": face.name,
                       "similarity": None if face.similarity is None
                       else round(float(face.similarity), 4),
                       "landmarks": None if face.landmarks is None
                       else [[round(float(x), 1), round(float(y), 1)]
                             for x, y in face.landmarks]}
                      for face in result.faces]}


class VideoSink:
    """Annotated frames to an mp4 at the source frame rate.

    The size is fixed by the first frame; later frames of another size (the side-by-side
    view) are letterboxed into it. ``close()`` finalises the file so it stays playable."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov", ".avi"):
            raise ValueError(f"--output {self.path}: use a .mp4 (or .avi) file name")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._open(image.shape[1], image.shape[0])
        if (image.shape[1], image.shape[0]) != self._size:
            image = letterbox(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi"
                                          else "mp4v"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise ValueError(f"cannot write video {self.path} (folder writable? codec "
                             f"available?)")
        self._writer, self._size = writer, (width, height)


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
    """An OpenCV window: ``show(image)`` then ``key()``; ``closed`` once the user closed it."""

    def __init__(self, title: str = WINDOW_TITLE):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        self._shown = False

    def show(self, image: np.ndarray) -> None:
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
