"""Temporal smoothing of landmarks per tracked face: the One Euro filter.

The One Euro filter (G. Casiez, N. Roussel, D. Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012,
https://gery.casiez.net/1euro/) is an exponential low-pass filter whose cutoff rises
with the signal's speed: ``cutoff = min_cutoff + beta * |speed|``. A still face gets a
low cutoff (jitter is averaged away); a moving face a high one (little lag).

Here each of the 68 points is filtered in 2-D with its own cutoff from its own speed,
and the speed is measured in face sizes per second (pixels / box size), so one set of
parameters serves a face 50 px wide and one 500 px wide. Time advances by one frame
period per processed frame (``fps``), so a file processed faster or slower than real
time is smoothed the same way.

:class:`LandmarkSmoother` keeps one filter per (track id, landmark model) and starts a
track's filters afresh when the tracker says the face is new or jumped (a cut), so
points never glide from one person to another.
"""
from __future__ import annotations

import math

import numpy as np

# Tuned with ``python -m app eval smoothing`` (see README "Landmark smoothing"): still-face
# jitter <= 1/3 of raw while a face moving ~0.5 face sizes per second lags <= 2 frames.
DEFAULT_MIN_CUTOFF = 1.0    # Hz, cutoff of a still face
DEFAULT_BETA = 4.0          # Hz per (face size / s) of speed
DEFAULT_D_CUTOFF = 1.0      # Hz, cutoff of the speed estimate itself
DEFAULT_FPS = 30.0


def _alpha(cutoff, dt: float):
    """Smoothing factor of an exponential filter with this cutoff (Hz) at step dt (s)."""
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter of an (N, 2) array of points, one cutoff per point.

    ``scale`` (per call) divides the speed before it raises the cutoff, e.g. the face
    size in pixels, so ``beta`` is in Hz per (scale units per second).
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0, got "
                             f"{min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x = None      # last filtered value
        self._dx = None     # last filtered velocity

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if dt <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.astype(np.float32)
        dx = (x - self._x) / dt
        self._dx += _alpha(self.d_cutoff, dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-9)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self._x = self._x + a * (x - self._x)
        return self._x.astype(np.float32)


class LandmarkSmoother:
    """Smooths ``face.landmarks`` (and ``face.landmark_sets`` in side by side) per track.

    Call :meth:`apply` after the tracker has set ``face.track_id``. Filters of tracks
    not seen for ``max_idle`` frames are dropped.
    """

    def __init__(self, fps: float = DEFAULT_FPS, min_cutoff: float = DEFAULT_MIN_CUTOFF,
                 beta: float = DEFAULT_BETA, d_cutoff: float = DEFAULT_D_CUTOFF,
                 max_idle: int = 30):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # validates the parameters now
        self.dt = 1.0 / fps
        self.params = (min_cutoff, beta, d_cutoff)
        self.max_idle = max_idle
        self._filters: dict[tuple[int, str], OneEuroFilter] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def apply(self, faces) -> None:
        self._frame += 1
        for face in faces:
            if face.landmarks is None or face.track_id is None:
                continue
            restart = face.track.event in ("new", "jump")
            size = float(np.mean(np.asarray(face.box[2:]) - np.asarray(face.box[:2])))
            # Keyed by model too: switching cnn <-> dlib must not blend one into the other.
            model = face.landmark_model or "main"
            face.landmarks = self._smooth(face.track_id, model, face.landmarks, size, restart)
            per_model = face.landmark_sets
            if per_model:  # side by side: each model's points, the first one's already done
                face.landmark_sets = {
                    name: face.landmarks if name == model else
                    self._smooth(face.track_id, name, points, size, restart)
                    for name, points in per_model.items()}
            self._last_seen[face.track_id] = self._frame
        self._forget_idle()

    def _smooth(self, track_id: int, key: str, points, size: float, restart: bool):
        filt = self._filters.get((track_id, key))
        if filt is None:
            filt = self._filters[(track_id, key)] = OneEuroFilter(*self.params)
        if restart:
            filt.reset()
        return filt(points, self.dt, scale=size)

    def _forget_idle(self) -> None:
        idle = [t for t, seen in self._last_seen.items() if self._frame - seen > self.max_idle]
        for track_id in idle:
            del self._last_seen[track_id]
            for key in [k for k in self._filters if k[0] == track_id]:
                del self._filters[key]
