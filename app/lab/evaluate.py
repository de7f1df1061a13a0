"""``python -m app eval verify --data DIR``: face verification accuracy, the way the field
measures it (LFW's protocol).

With ``--pairs CSV`` (``file_a,file_b,same[,fold]``, paths relative to DIR) only the photos
the pairs name are processed. Accuracy is never chosen on the pairs it scores:

- a ``fold`` column: k-fold accuracy (LFW: 10 folds), each fold decided by the threshold
  that is best on the other folds; the mean and standard deviation over folds;
- else with ``--tune-pairs CSV``: the threshold best on those pairs decides the scored ones;
- else: the embedder family's own threshold (``app.stages.embed.FAMILIES``).

A pair whose photo yields no face counts as wrong (a same pair rejected, a different pair
accepted) in every figure, and the count is printed. ROC AUC and TAR at FAR 1e-2 / 1e-3
are threshold-free. Without ``--pairs`` every pair of photos under DIR is scored and
rank-1 identification is added (the first half of each person's photos enrolled).

``--vs face_recognition`` adds the peer's own pipeline (HOG upsample 1, its encodings,
largest face; score = -distance, own threshold -0.6) on the same pairs, in the same table.
"""
from __future__ import annotations

import csv
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import (
    accuracy_at,
    best_threshold,
    fold_accuracy,
    rank1,
    roc_auc,
    tar_at_far,
    worst_for_missing,
)
from .tables import markdown_table

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PEER = "face_recognition"
PEER_TOLERANCE = 0.6  # face_recognition's compare_faces default (a distance)


@dataclass
class Pairs:
    file_a: list[str]
    file_b: list[str]
    same: np.ndarray               # bool
    folds: np.ndarray | None       # fold label per pair, or None
    source: str

    @property
    def files(self) -> set[str]:
        return set(self.file_a) | set(self.file_b)


def main(args) -> int:
    from ..outputs.files import check_outputs, check_writable
    for label in ("json", "scores", "cache"):   # before the measurement, not after it
        check_writable(f"--{label}", getattr(args, label, None))
    check_outputs({f"--{label}": getattr(args, label, None) for label in ("json", "scores")},
                  {"--pairs": args.pairs, "--tune-pairs": getattr(args, "tune_pairs", None)})
    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: not a folder of per-person folders")
    embedders = parse_embedders(args.embedder)
    pairs = read_pairs(Path(args.pairs), data) if args.pairs else None
    tune = read_pairs(Path(args.tune_pairs), data) if args.tune_pairs else None
    if pairs is None:
        pairs, labels = all_pairs(data)
    else:
        labels = None
    files = sorted(pairs.files | (tune.files if tune else set()))
    crop_of = {variant: getattr(args, "crop", None) or crop_name(variant) for variant in embedders}
    crops = find_crops(data, files, sorted(set(crop_of.values())), getattr(args, "cache", None))
    missed = [f for f in files if crops[next(iter(crops))][f] is None]
    for name in missed:
        print(f"no face: {name}")
    rows, columns = [], {}
    for variant in embedders:
        vectors = embed_crops(variant, crops[crop_of[variant]])
        row, columns[variant] = score_rows(variant, vectors, pairs, tune, labels)
        rows.append({**row, "crop": crop_of[variant]})
    if getattr(args, "vs", None) == PEER:
        row, columns[PEER] = score_rows(PEER, peer_encodings(data, files), pairs, tune, labels)
        rows.append(row)
    print(format_table(rows, len(files), len(missed)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if getattr(args, "scores", None):
        write_scores(Path(args.scores), pairs, columns)
    return 0


def parse_embedders(text: str) -> list[str]:
    """``keras-int8,casia-int8`` or ``all`` -> embedder names, each checked now."""
    from ..config import FAMILY_EMBEDDERS
    from ..stages.embed import resolve_embedder

    names = list(FAMILY_EMBEDDERS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--embedder: give one name or a comma list (e.g. keras-int8,casia-int8)")
    for name in names:
        resolve_embedder(name)  # ValueError naming the choices
    return names


# -- pairs ---------------------------------------------------------------------------------
def read_pairs(path: Path, root: Path) -> Pairs:
    """``file_a,file_b,same[,fold]`` with a header row; every photo must exist under root."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pairs file")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file_a", "file_b", "same"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a header row file_a,file_b,same[,fold] and pairs")
    missing = sorted({r[k] for r in rows for k in ("file_a", "file_b") if not (root / r[k]).is_file()})
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} photos not under {root}, e.g. "
                                f"{missing[0]}; check --data")
    same = np.array([r["same"].strip().lower() in ("1", "true", "yes") for r in rows])
    folds = np.array([r["fold"] for r in rows]) if "fold" in rows[0] else None
    return Pairs([r["file_a"] for r in rows], [r["file_b"] for r in rows], same, folds,
                 str(path))


def all_pairs(data: Path) -> tuple[Pairs, dict[str, str]]:
    """Every unordered pair of the photos in DIR's per-person folders, and file -> person."""
    photos = [(folder.name, f"{folder.name}/{photo.name}")
              for folder in sorted(p for p in data.iterdir() if p.is_dir())
              for photo in sorted(folder.iterdir()) if photo.suffix.lower() in PHOTO_SUFFIXES]
    if len(photos) < 2:
        raise ValueError(f"--data {data}: fewer than two photos in per-person folders")
    i, j = np.triu_indices(len(photos), k=1)
    same = np.array([photos[a][0] == photos[b][0] for a, b in zip(i, j)])
    return (Pairs([photos[a][1] for a in i], [photos[b][1] for b in j], same, None, "all pairs"),
            {file: label for label, file in photos})


# -- faces and embeddings --------------------------------------------------------------------
def crop_name(variant: str) -> str:
    from ..stages.embed import resolve_embedder
    return resolve_embedder(variant)[0].crop


def find_crops(data: Path, files: list[str], crop_names: list[str],
               cache: str | None = None) -> dict[str, dict]:
    """crop name -> file -> its crop, or None (no face). The app's photo path
    (``app.people.enroll.photo_face``: second-chance detection, the main face, CNN landmarks);
    each photo is read, detected and landmarked once for all crops, its landmarks kept in
    ``cache`` (a pickle) when given, so crop variants are compared quickly."""
    from ..config import RunConfig
    from ..factory import build_detector, build_landmark_model, second_chance
    from ..people.enroll import photo_face, read_photo
    from ..stages.align import crop_face

    points = read_cache(cache)
    before = len(points)
    detector = build_detector(RunConfig().detector)
    landmarks = build_landmark_model("cnn", RunConfig().detector)
    out: dict[str, dict] = {name: {} for name in crop_names}
    try:
        for file in files:
            image = read_photo(data / file)
            if file not in points:
                face = photo_face(image, detector, landmarks, file, pick="main",
                                  second=second_chance(detector))
                points[file] = None if face is None else face.landmarks
            for name in crop_names:
                out[name][file] = None if points[file] is None else \
                    crop_face(image, points[file], name)
    finally:
        landmarks.close()
    if cache and len(points) > before:
        Path(cache).write_bytes(pickle.dumps(points))
    return out


def read_cache(cache: str | None) -> dict:
    """file -> landmarks (or None) from an ``--cache`` pickle; {} when there is none."""
    if not cache or not Path(cache).is_file():
        return {}
    try:
        points = pickle.loads(Path(cache).read_bytes())
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is the same problem
        raise ValueError(f"--cache {cache}: not a landmark cache ({exc}); delete it") from exc
    if not isinstance(points, dict):
        raise ValueError(f"--cache {cache}: not a landmark cache; delete it")
    return points


def embed_crops(variant: str, crops: dict, batch: int = 64) -> dict:
    """file -> unit embedding (None where there is no crop)."""
    from ..factory import build_embedder

    embedder = build_embedder(variant, threads=2)
    names = [name for name, crop in crops.items() if crop is not None]
    try:
        vectors = [embedder.embed(np.stack([crops[n] for n in names[k:k + batch]]))
                   for k in range(0, len(names), batch)]
    finally:
        if hasattr(embedder, "close"):
            embedder.close()
    out = dict.fromkeys(crops)
    out.update(zip(names, np.concatenate(vectors) if vectors else []))
    return out


def peer_encodings(data: Path, files: list[str]) -> dict:
    """file -> face_recognition's encoding of the largest HOG face (upsample 1), or None."""
    try:
        import face_recognition as fr
    except ImportError as exc:
        raise ValueError(f"--vs {PEER} needs the peer installed: make bench-deps") from exc
    out = {}
    for name in files:
        image = fr.load_image_file(str(data / name))
        boxes = fr.face_locations(image, number_of_times_to_upsample=1)  # (top, right, bottom, left)
        if not boxes:
            out[name] = None
            continue
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        out[name] = fr.face_encodings(image, [largest])[0]
    return out


# -- scores and the protocol ----------------------------------------------------------------
def pair_scores(name: str, vectors: dict, pairs: Pairs) -> np.ndarray:
    """Cosine similarity per pair (for the peer: minus the encoding distance); NaN when a
    photo of the pair has no face."""
    scores = np.full(len(pairs.same), np.nan)
    for k, (a, b) in enumerate(zip(pairs.file_a, pairs.file_b)):
        va, vb = vectors[a], vectors[b]
        if va is not None and vb is not None:
            scores[k] = (-float(np.linalg.norm(va - vb)) if name == PEER else float(va @ vb))
    return scores


def own_threshold(name: str) -> float:
    if name == PEER:
        return -PEER_TOLERANCE
    from ..stages.embed import resolve_embedder
    return resolve_embedder(name)[0].threshold


def score_rows(name: str, vectors: dict, pairs: Pairs, tune: Pairs | None,
               labels: dict | None) -> tuple[dict, np.ndarray]:
    """One table row for one embedder (or the peer), and its per-pair scores."""
    scores = pair_scores(name, vectors, pairs)
    row = {"embedder": name, "pairs": len(scores), "no_face_pairs": int(np.isnan(scores).sum())}
    row.update(protocol_accuracy(name, scores, pairs, vectors, tune))
    ranked = worst_for_missing(scores, pairs.same)
    row["auc"] = round(roc_auc(ranked, pairs.same), 4)
    for far in (1e-2, 1e-3):
        row[f"tar@far{far:g}"] = round(tar_at_far(ranked, pairs.same, far)[0], 4)
    if labels is not None and name != PEER:
        row["rank1"] = round(rank1_of(vectors, labels), 4)
    return row, scores


def protocol_accuracy(name: str, scores: np.ndarray, pairs: Pairs, vectors: dict,
                      tune: Pairs | None) -> dict:
    """Accuracy with a threshold never chosen on the scored pairs (see module docstring)."""
    if pairs.folds is not None:
        mean, std, thresholds = fold_accuracy(scores, pairs.same, pairs.folds)
        return {"protocol": f"{len(np.unique(pairs.folds))}-fold", "accuracy": round(mean, 4),
                "std": round(std, 4), "threshold": round(float(np.mean(thresholds)), 3)}
    if tune is not None:
        threshold, protocol = best_threshold(pair_scores(name, vectors, tune), tune.same), \
            f"threshold from {Path(tune.source).name}"
    else:
        threshold, protocol = own_threshold(name), "own threshold"
    return {"protocol": protocol, "accuracy": round(accuracy_at(scores, pairs.same, threshold), 4),
            "std": None, "threshold": round(threshold, 3)}


def rank1_of(vectors: dict, labels: dict) -> float:
    names = [n for n in labels if vectors.get(n) is not None]
    people = np.array([labels[n] for n in names])
    return rank1(np.stack([vectors[n] for n in names]), people, first_half(people))


def first_half(labels: np.ndarray) -> np.ndarray:
    """Mask of the first ceil(n/2) photos of each person (rows are in file order)."""
    mask = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        mask[rows[:(len(rows) + 1) // 2]] = True
    return mask


# -- output ----------------------------------------------------------------------------------
def write_scores(path: Path, pairs: Pairs, columns: dict[str, np.ndarray]) -> None:
    """One row per pair: the pair, then each embedder's score (empty: a photo had no face)."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["file_a", "file_b", "same", *(["fold"] if pairs.folds is not None else []),
                      *columns])
        for k in range(len(pairs.same)):
            fold = [pairs.folds[k]] if pairs.folds is not None else []
            out.writerow([pairs.file_a[k], pairs.file_b[k], int(pairs.same[k]), *fold,
                          *("" if np.isnan(s[k]) else f"{s[k]:.6f}" for s in columns.values())])


def format_table(rows: list[dict], photos: int, missed: int) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    table = markdown_table(keys, [["" if r.get(k) is None else r[k] for k in keys] for r in rows])
    return f"{photos} photos, {missed} without a face (their pairs count as wrong)\n{table}"
