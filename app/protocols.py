"""What the runtime asks of a frame source, a face detector and an embedder.

Small :class:`typing.Protocol` classes: the concrete ones (``app.sources``,
``app.stages.detect``, ``app.stages.embed``) and the tests' doubles match them by shape,
so the loop reads ``source.fps`` or ``embedder.crop`` directly instead of guessing with
``getattr``. Every source has every attribute below (a camera's ``fps`` and
``frame_count`` are None, a file's ``dropped`` is 0).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .types import Detection, Frame


class Source(Protocol):
    """Frames one at a time (``app.sources.capture``): ``read()`` is None at the end
    (``ended``; ``error`` says why, when it was a failure) or on a timeout."""

    is_live: bool              # a camera: latency counts, frames may be dropped
    fps: float | None          # the file's frame rate (None: a camera, an image)
    frame_count: int | None    # frames in the file (None: unknown or a camera)
    path: Path | None          # the file played (None: a camera)
    dropped: int               # frames overwritten before anyone read them (a camera)
    ended: bool
    error: str | None

    def start(self) -> "Source": ...

    def stop(self) -> None: ...

    def read(self, timeout: float | None = None) -> Frame | None: ...


class Detector(Protocol):
    """Faces of a BGR uint8 frame, best score first (``app.stages.detect``)."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class Embedder(Protocol):
    """(N, 160, 160, 3) aligned crops -> (N, D) unit vectors (``app.stages.embed``)."""

    model_id: str   # what the gallery files its vectors under
    crop: str       # the app.stages.align crop rule its crops are cut by

    def embed(self, crops: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
