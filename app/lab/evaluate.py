"""``python -m app eval verify --data DIR``: face verification accuracy on labelled photos.

DIR holds one folder per person. Every photo is detected (best-scoring face), landmarked
and aligned once; each embedder then embeds the same crops. All pairs give ROC AUC, the
best accuracy and its threshold, and TAR at FAR 1e-2 and 1e-3; rank-1 identification
enrols the first half of each person's photos (sorted by name) and queries the rest.
``--pairs CSV`` (``file_a,file_b,same`` relative to DIR) scores only the listed pairs.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from app.config import FAMILY_EMBEDDERS
from app.lab.tables import markdown_table
from app.lab.metrics import best_accuracy, pair_scores, rank1, roc_auc, tar_at_far

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def main(args) -> int:
    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: not a folder of per-person folders")
    photos = [(folder.name, photo) for folder in sorted(p for p in data.iterdir() if p.is_dir())
              for photo in sorted(folder.iterdir()) if photo.suffix.lower() in PHOTO_SUFFIXES]
    if not photos:
        raise ValueError(f"--data {data}: no photos in per-person folders")
    crops, labels, files, missed = align_photos(photos, data)
    for path in missed:
        print(f"no face: {path}")
    pairs = read_pairs(Path(args.pairs), files) if args.pairs else None
    variants = list(FAMILY_EMBEDDERS) if args.embedder == "all" else [args.embedder]  # both families
    rows = [evaluate(variant, crops, labels, files, pairs) for variant in variants]
    print(format_table(rows, len(files), len(missed)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def align_photos(photos: list[tuple[str, Path]], root: Path):
    """(crops (N,160,160,3), labels, relative paths, photos without a face); the best-
    scoring face of each photo, with the app's default detector and the CNN."""
    from app.config import RunConfig
    from app.enroll import photo_face, read_photo
    from app.factory import build_detector, build_landmark_model

    detector = build_detector(RunConfig().detector)
    landmarks = build_landmark_model("cnn", RunConfig().detector)
    crops, labels, files, missed = [], [], [], []
    try:
        for label, path in photos:
            face = photo_face(read_photo(path), detector, landmarks, path, pick="best")
            if face is None:
                missed.append(path)
                continue
            crops.append(face.aligned)
            labels.append(label)
            files.append(str(path.relative_to(root)))
    finally:
        landmarks.close()
    return np.stack(crops), np.array(labels), files, missed


def read_pairs(path: Path, files: list[str]) -> list[tuple[int, int, bool]]:
    index = {name: i for i, name in enumerate(files)}
    pairs = []
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or row[0] == "file_a":
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected file_a,file_b,same")
            a, b, same = row
            if a in index and b in index:  # pairs with a faceless photo are skipped
                pairs.append((index[a], index[b], same.strip().lower() in ("1", "true", "yes")))
    if not pairs:
        raise ValueError(f"{path}: no usable pairs")
    return pairs


def evaluate(variant: str, crops, labels, files, pairs) -> dict:
    from app.factory import build_embedder

    embedder = build_embedder(variant, threads=2)
    embeddings = embedder.embed(crops)
    if hasattr(embedder, "close"):
        embedder.close()
    if pairs is None:
        scores, same = pair_scores(embeddings, labels)
    else:
        scores = np.array([float(embeddings[a] @ embeddings[b]) for a, b, _ in pairs])
        same = np.array([s for _, _, s in pairs])
    accuracy, threshold = best_accuracy(scores, same)
    row = {"embedder": variant, "pairs": int(len(scores)), "auc": round(roc_auc(scores, same), 4),
           "best_accuracy": round(accuracy, 4), "threshold": round(threshold, 3)}
    for far in (1e-2, 1e-3):
        tar, _ = tar_at_far(scores, same, far)
        row[f"tar@far{far:g}"] = round(tar, 4)
    row["rank1"] = round(rank1(embeddings, labels, first_half(labels)), 4)
    return row


def first_half(labels: np.ndarray) -> np.ndarray:
    """Mask of the first ceil(n/2) photos of each person (rows are in file order)."""
    mask = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        mask[rows[:(len(rows) + 1) // 2]] = True
    return mask


def format_table(rows: list[dict], photos: int, missed: int) -> str:
    keys = list(rows[0])
    table = markdown_table(keys, [[r[k] for k in keys] for r in rows])
    return f"{photos} photos with a face ({missed} without)\n{table}"
