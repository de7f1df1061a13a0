"""``python -m app eval landmarks``: landmark accuracy (NME) and speed on annotated photos.

DIR holds ``.jpg`` photos with iBUG ``.pts`` files beside them (e.g.
../shared/data/landmarks300w/test). Each photo's face box comes from a detector
(``hog``: dlib HOG, ``blazeface``: BlazeFace full-range; the detection overlapping the
annotated face best) or from the annotation itself (``gt``: the points' bounding box).
Faces the detector misses are counted in ``n`` and as failures, never dropped: NME
statistics cover the ``detected`` faces, ``fail_rate`` is the share of all ``n`` faces
that were missed or have NME > 0.1. One JSON line per landmark model::

    {"landmarks", "boxes", "n", "detected", "nme_mean", "nme_median", "fail_rate",
     "ms_per_face"}

``ms_per_face`` is the median time of one ``predict`` call (crop + network + mapping
back) with ``--threads`` threads, the first call left out. ``--plot FILE.png`` draws
the cumulative error distribution (share of faces with NME <= x) of every model given.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..factory import build_landmark_model
from ..stages.geometry import box_iou, landmark_box, nme

BOX_SOURCES = ("hog", "blazeface", "gt")
FAIL_NME = 0.1          # a face whose NME exceeds this counts as a failure
MIN_MATCH_IOU = 0.2     # a detection overlapping the annotated face less than this is a miss


def read_pts(path: str | Path) -> np.ndarray:
    """(68, 2) float32 points of an iBUG ``.pts`` file, coordinates as written in the file."""
    path = Path(path)
    lines = path.read_text().splitlines()
    try:
        start, end = lines.index("{") + 1, lines.index("}")
        points = np.array([line.split() for line in lines[start:end]], dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{path}: not an iBUG .pts file ({err})") from None
    if points.shape != (68, 2):
        raise ValueError(f"{path}: expected 68 points of (x, y), got shape {points.shape}")
    return points


@dataclass
class AnnotatedFace:
    name: str
    image: np.ndarray           # BGR photo
    points: np.ndarray          # (68, 2) ground truth
    box: np.ndarray | None      # x1 y1 x2 y2 the landmark model is given; None = missed


def read_faces(data_dir: str | Path, limit: int | None = None) -> list[AnnotatedFace]:
    """Every ``.jpg`` with a ``.pts`` in ``data_dir`` (sorted by name), box not yet set."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: not a folder of .jpg + .pts faces")
    paths = [p for p in sorted(data_dir.glob("*.jpg")) if p.with_suffix(".pts").exists()]
    if not paths:
        raise ValueError(f"--data {data_dir}: no .jpg photo with a .pts file beside it")
    faces = []
    for path in paths[:limit]:
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"cannot read photo {path}")
        faces.append(AnnotatedFace(path.stem, image, read_pts(path.with_suffix(".pts")), None))
    return faces


def box_finder(source: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
    """``find(image, points) -> box or None`` for a box source in BOX_SOURCES."""
    if source == "gt":
        return lambda image, points: landmark_box(points)
    if source not in BOX_SOURCES:
        raise ValueError(f"unknown box source {source!r}; expected one of {BOX_SOURCES}")
    from ..factory import build_detector

    detector = build_detector(source)
    return lambda image, points: matching_box(points, [d.box for d in detector.detect(image)])


def matching_box(points: np.ndarray, boxes) -> np.ndarray | None:
    """The box overlapping the annotated face best, or None when none reaches MIN_MATCH_IOU."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    ious = box_iou(landmark_box(points), boxes)
    if ious.size == 0 or ious.max() < MIN_MATCH_IOU:
        return None
    return boxes[int(ious.argmax())]


def with_boxes(faces: list[AnnotatedFace], source: str) -> list[AnnotatedFace]:
    find = box_finder(source)
    return [AnnotatedFace(f.name, f.image, f.points, find(f.image, f.points)) for f in faces]


def face_errors(landmarker, faces: list[AnnotatedFace]) -> tuple[np.ndarray, np.ndarray]:
    """Per-face NME (NaN where the box was missed) and per-call seconds of
    ``landmarker.predict``, after one warm-up call."""
    detected = [f for f in faces if f.box is not None]
    if detected:
        landmarker.predict(detected[0].image, detected[0].box)
    errors, seconds = np.full(len(faces), np.nan), []
    for i, face in enumerate(faces):
        if face.box is None:
            continue
        start = time.perf_counter()
        pred = landmarker.predict(face.image, face.box)
        seconds.append(time.perf_counter() - start)
        errors[i] = nme(pred, face.points)
    return errors, np.array(seconds)


def summarise(errors: np.ndarray, seconds: np.ndarray) -> dict:
    found = errors[np.isfinite(errors)]
    failures = np.count_nonzero(~np.isfinite(errors)) + np.count_nonzero(found > FAIL_NME)
    return {"n": int(len(errors)), "detected": int(len(found)),
            "nme_mean": round(float(found.mean()), 5) if len(found) else None,
            "nme_median": round(float(np.median(found)), 5) if len(found) else None,
            "fail_rate": round(failures / max(len(errors), 1), 4),
            "ms_per_face": round(1000 * float(np.median(seconds)), 2) if len(seconds) else None}


def evaluate(data_dir, models: list[str], boxes: str, threads: int = 2, limit: int | None = None,
             model_dir=None, backend: str = "tflite") -> list[dict]:
    """One summary row per model (with its per-face ``errors`` kept for plotting)."""
    faces = with_boxes(read_faces(data_dir, limit), boxes)
    rows = []
    for name in models:
        landmarker = build_landmark_model(name, boxes, backend, threads, model_dir)
        try:
            errors, seconds = face_errors(landmarker, faces)
        finally:
            getattr(landmarker, "close", lambda: None)()
        rows.append({"landmarks": name, "boxes": boxes, **summarise(errors, seconds),
                     "errors": errors})
    return rows


def plot_ced(rows: list[dict], path: str | Path, max_nme: float = 0.12, title: str = "") -> Path:
    """Cumulative error distribution: share of all faces (misses never count) with
    NME <= x, one line per row ({"landmarks", "boxes", "errors"})."""
    from .plots import pyplot, save_figure

    plt = pyplot()
    xs = np.linspace(0, max_nme, 241)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for row in rows:
        errors = np.asarray(row["errors"], float)
        found = np.sort(errors[np.isfinite(errors)])
        share = np.searchsorted(found, xs, side="right") / max(len(errors), 1)
        label = (f"{row['landmarks']} ({row['boxes']} boxes): mean {row['nme_mean']:.4f}, "
                 f"{row['detected']}/{row['n']} found")
        ax.plot(xs, share, label=label)
    ax.axvline(FAIL_NME, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, max_nme)
    ax.set_ylim(0, 1)
    ax.set_xlabel("NME (mean point error / outer-eye-corner distance)")
    ax.set_ylabel("share of faces with NME <= x")
    ax.set_title(title or "Cumulative error distribution")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, plt, Path(path))


PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def main(args) -> int:
    from ..outputs.files import check_writable
    check_writable("--plot", args.plot, suffixes=PLOT_SUFFIXES)   # before the measurement
    rows = []
    for boxes in args.boxes:
        rows += evaluate(args.data, args.landmarks, boxes, args.threads, args.limit,
                         backend=getattr(args, "landmark_backend", "tflite"))
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "errors"}))
    if args.plot:
        title = f"{Path(args.data).name}: {rows[0]['n']} faces"
        print(f"wrote {plot_ced(rows, args.plot, title=title)}", file=sys.stderr)
    return 0
