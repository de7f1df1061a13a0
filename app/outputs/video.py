"""Annotated video through PyAV (FFmpeg): H.264 in fragmented MP4, or Motion JPEG in AVI.

Why not ``cv2.VideoWriter``: its mp4 (``mp4v``, MPEG-4 part 2) does not play in browsers,
its index is written only at ``release()`` so a killed run leaves an unplayable file, and
it reports write errors (full disk) as warnings on stderr, never to the caller.

Here ``.mp4``/``.m4v``/``.mov`` get H.264 (libx264, bundled in PyAV's wheels; yuv420p so
every player and browser opens it) in *fragmented* MP4: an empty ``moov`` first, then one
``moof``+``mdat`` fragment per frame, handed to the OS as soon as it is muxed, and a
keyframe every second. A file cut anywhere (kill -9) plays up to its last whole fragment;
measured: every frame but the last one. ``tune=zerolatency`` keeps no frames back in the
encoder (no B-frames, no look-ahead). ``.avi`` gets Motion JPEG (every frame is whole on
its own). Every FFmpeg or OS error raises :class:`OSError` subclasses or
``av.FFmpegError``; :class:`~app.outputs.sinks.VideoSink` turns them into ``WriteFailed``.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# One fragment per frame, each written out at once (flush_packets): a file cut anywhere
# holds every frame but the last one or two. Costs about 4 % in size (a small moof each).
FRAGMENTED_MP4 = "frag_every_frame+empty_moov+default_base_moof+skip_trailer"
H264_OPTIONS = {"preset": "superfast", "tune": "zerolatency", "crf": "23"}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi"}
TIME_BASE = Fraction(1, 90000)   # the MPEG clock: any frame time to 11 microseconds


def import_av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ValueError("PyAV is not installed (needed for --output); run: make setup "
                         "(or .venv/bin/pip install -r requirements.txt)") from exc
    return av


class VideoEncoder:
    """Writes BGR frames of one fixed even size to ``path`` (container from its suffix)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float):
        av = import_av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        container_format = CONTAINERS[suffix]
        options = {"movflags": FRAGMENTED_MP4} if container_format in ("mp4", "mov") else {}
        options["flush_packets"] = "1"
        self._container = av.open(str(self.path), mode="w", format=container_format,
                                  options=options)
        rate = Fraction(float(fps)).limit_denominator(1001)
        if container_format == "avi":
            stream = self._container.add_stream("mjpeg", rate=rate)
            stream.pix_fmt = "yuvj420p"
            stream.options = {"q:v": "3"}
        else:
            stream = self._container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {**H264_OPTIONS, "g": str(max(1, round(float(fps))))}
        stream.width, stream.height = width, height
        # frames are timed on a 1/90000 s clock (AVI: one tick a nominal frame; a longer
        # gap is empty frames): a frame's own time (a variable frame rate source) or,
        # without one, its number at the nominal rate
        self._time_base = 1 / rate if container_format == "avi" else TIME_BASE
        stream.codec_context.time_base = self._time_base
        self._stream = stream
        self._av = av
        self._period = 1.0 / float(fps)
        self._count = 0
        self._last_pts = -1

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        """One frame, shown from ``time_s`` (s from the start) or, without a time, one
        nominal frame period after the previous one."""
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        at = self._count * self._period if time_s is None else time_s
        pts = max(round(at / self._time_base), self._last_pts + 1)   # strictly increasing
        frame.pts, frame.time_base = pts, self._time_base
        self._last_pts = pts
        self._count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to repeat."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        finally:
            container.close()
