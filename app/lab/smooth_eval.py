"""``python -m app eval smoothing``: landmark jitter on a still face and lag on a moving one.

For each annotated photo in DIR (``.jpg`` + ``.pts``), two synthetic clips are made
from the photo itself and run through the detector, the landmark model and the app's
:class:`~app.stages.smooth.LandmarkSmoother`:

* **still**: the photo repeated ``--frames`` times with camera sensor noise (Gaussian,
  sigma ``--sensor-noise`` grey levels), so the detector's box wobbles the way it does
  from frame to frame on a still face. Jitter = mean frame-to-frame motion of the 68
  points, divided by the outer-eye-corner distance (NME units), raw and smoothed.
* **moving**: the photo on a larger canvas, still for 10 frames, then shifted
  sideways at ``--speed`` face sizes per second (at 30 FPS) for ``--frames`` frames,
  then still for 20. Lag = the delay (frames, 0.05 steps) that best lines the smoothed
  points' centroid up with the raw one's.

Prints one JSON line per landmark model (``--landmarks``, default CNN and dlib, every
model on the very same clips): the detector's box jitter on the still clip (centre motion
per frame / box size), landmark jitter raw/smoothed and their ratio, lag in frames
(median over photos), and the filter parameters.
"""
from __future__ import annotations

import json

import cv2
import numpy as np

from ..factory import build_landmark_model
from ..stages.smooth import DEFAULT_FPS, LandmarkSmoother
from ..types import OUTER_EYE_CORNERS, Face
from .landmark_eval import matching_box, read_faces

HOLD_BEFORE, HOLD_AFTER = 10, 20


def run_clip(frames, detector, landmarker, smoother, track_points):
    """(raw, smoothed) (T, 68, 2) points of the face overlapping ``track_points[t]`` best
    (the annotated points moved with the photo), and the (T, 4) boxes; a frame where it
    is missed repeats the previous points."""
    raw, smooth, boxes = [], [], []
    for image, points in zip(frames, track_points):
        box = matching_box(points, [d.box for d in detector.detect(image)])
        if box is None:
            if not raw:
                continue
            raw.append(raw[-1])
            smooth.append(smooth[-1])
            boxes.append(boxes[-1])
            continue
        boxes.append(box)
        face = Face(box=box, score=1.0, track_id=1)
        face.landmarks = landmarker.predict(image, box)
        face.track.event = "new" if not raw else None
        raw.append(face.landmarks.copy())
        smoother.apply([face])
        smooth.append(face.landmarks)
    return np.array(raw), np.array(smooth), np.array(boxes)


def still_frames(image: np.ndarray, count: int, sigma: float, rng) -> list[np.ndarray]:
    noisy = image.astype(np.float32)[None] + rng.normal(0, sigma, (count, *image.shape))
    return list(np.clip(noisy, 0, 255).astype(np.uint8))


def moving_frames(image: np.ndarray, points: np.ndarray, count: int, pixels_per_frame: float):
    """Frames of the photo sliding right on a grey canvas, and the points moved with it."""
    h, w = image.shape[:2]
    travel = pixels_per_frame * count
    canvas_w = int(np.ceil(w + travel)) + 2
    offsets = np.concatenate([np.zeros(HOLD_BEFORE), pixels_per_frame * np.arange(1, count + 1),
                              np.full(HOLD_AFTER, travel)])
    frames, moved = [], []
    for dx in offsets:
        shift = np.float32([[1, 0, dx], [0, 1, 0]])
        frames.append(cv2.warpAffine(image, shift, (canvas_w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128)))
        moved.append(points + np.float32([dx, 0]))
    return frames, moved


def jitter(points: np.ndarray, iod: float) -> float:
    """Mean frame-to-frame point motion over the outer-eye-corner distance."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).mean() / iod)


def box_jitter(boxes: np.ndarray) -> float:
    """Mean frame-to-frame motion of the box centre over the box size."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = (boxes[:, 2:] - boxes[:, :2]).mean(axis=1)
    return float((np.linalg.norm(np.diff(centres, axis=0), axis=1) / sizes[1:]).mean())


def lag_frames(raw: np.ndarray, smooth: np.ndarray, max_lag: float = 10.0) -> float:
    """Delay d (frames) minimising |smooth(t) - raw(t - d)| of the points' centroid x."""
    r, s = raw[..., 0].mean(axis=-1), smooth[..., 0].mean(axis=-1)
    t = np.arange(len(r), dtype=np.float64)
    delays = np.arange(0.0, max_lag + 1e-9, 0.05)
    costs = [np.mean((s - np.interp(t - d, t, r)) ** 2) for d in delays]
    return float(delays[int(np.argmin(costs))])


def evaluate(data_dir, photos: int = 10, frames: int = 60, speed: float = 0.5,
             sensor_noise: float = 3.0, detector: str = "blazeface", landmarks: str = "cnn",
             smoother_args: dict | None = None, seed: int = 0) -> dict:
    """The row of one landmark model (see :func:`evaluate_models`)."""
    return evaluate_models(data_dir, [landmarks], photos, frames, speed, sensor_noise,
                           detector, smoother_args, seed)[0]


def evaluate_models(data_dir, landmarks: list[str], photos: int = 10, frames: int = 60,
                    speed: float = 0.5, sensor_noise: float = 3.0, detector: str = "blazeface",
                    smoother_args: dict | None = None, seed: int = 0) -> list[dict]:
    """One row per landmark model, every model measured on the very same clips (the
    still clips' noise is drawn once per photo)."""
    from ..factory import build_detector

    rng = np.random.default_rng(seed)
    det = build_detector(detector)
    models = {name: build_landmark_model(name, detector, threads=2) for name in landmarks}
    smoother_args = smoother_args or {}
    rows: dict[str, list] = {name: [] for name in landmarks}
    for face in read_faces(data_dir, photos):
        clips = _clips(face, frames, speed, sensor_noise, rng)
        for name, landmarker in models.items():
            row = _measure(clips, det, landmarker, smoother_args)
            if row is not None:
                rows[name].append(row)
    for landmarker in models.values():
        getattr(landmarker, "close", lambda: None)()
    return [_summary(rows[name], name, detector, speed, smoother_args, data_dir)
            for name in landmarks]


def _clips(face, frames: int, speed: float, sensor_noise: float, rng) -> dict:
    """A still clip with sensor noise and a moving clip of one annotated photo."""
    right, left = OUTER_EYE_CORNERS
    size = float(np.ptp(face.points[:, 0]))
    moving, moved = moving_frames(face.image, face.points, frames, speed * size / DEFAULT_FPS)
    still = still_frames(face.image, frames, sensor_noise, rng)
    return {"iod": float(np.linalg.norm(face.points[right] - face.points[left])),
            "still": (still, [face.points] * len(still)), "moving": (moving, moved)}


def _measure(clips: dict, det, landmarker, smoother_args: dict) -> tuple | None:
    """(raw jitter, smoothed jitter, lag, box jitter) of one model on one photo's clips."""
    raw_s, smooth_s, boxes_s = run_clip(clips["still"][0], det, landmarker,
                                        LandmarkSmoother(**smoother_args), clips["still"][1])
    raw_m, smooth_m, _ = run_clip(clips["moving"][0], det, landmarker,
                                  LandmarkSmoother(**smoother_args), clips["moving"][1])
    if len(raw_s) < 2 or len(raw_m) < 2:
        return None
    iod = clips["iod"]
    return (jitter(raw_s, iod), jitter(smooth_s, iod), lag_frames(raw_m, smooth_m),
            box_jitter(boxes_s))


def _summary(rows: list, landmarks: str, detector: str, speed: float, smoother_args: dict,
             data_dir) -> dict:
    if not rows:
        raise ValueError(f"{data_dir}: the {detector} detector found no face to measure")
    raw_j, smooth_j, lags, box_j = (np.array(c) for c in zip(*rows))
    return {"photos": len(rows), "detector": detector, "landmarks": landmarks,
            "box_jitter": round(float(np.mean(box_j)), 5),
            "jitter_raw": round(float(np.mean(raw_j)), 5),
            "jitter_smoothed": round(float(np.mean(smooth_j)), 5),
            "jitter_ratio": round(float(np.mean(smooth_j) / np.mean(raw_j)), 3),
            "lag_frames": round(float(np.median(lags)), 2),
            "lag_frames_max": round(float(np.max(lags)), 2),
            "speed_face_sizes_per_s": speed, "filter": _filter_params(smoother_args)}


def _filter_params(smoother_args: dict) -> dict:
    s = LandmarkSmoother(**smoother_args)
    return dict(zip(("min_cutoff", "beta", "d_cutoff"), s.params), fps=round(1 / s.dt, 2))


def main(args) -> int:
    smoother_args = {k: v for k, v in (("min_cutoff", args.min_cutoff), ("beta", args.beta))
                     if v is not None}
    for row in evaluate_models(args.data, args.landmarks, args.photos, args.frames, args.speed,
                               args.sensor_noise, args.detector, smoother_args):
        print(json.dumps(row))
    return 0
