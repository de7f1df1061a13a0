"""Fine-tune the 68-point landmark CNN on landmarks300w/train and export it.

``python -m models train_landmarks --data ../shared/data/landmarks300w/train
[--epochs 40] [--batch 32] [--lr 5e-4] [--seed 0] [--work models/cache/train_cnn68]
[--out models/landmarks/cnn68] [--resume] [--stop-after N] [--no-export]``

Starts from face-api.js's weights (``app.toolchain.cnn68.face_api_model``) and trains on what
the app feeds the network at run time: the crop square that a *detector box* plus that
detector's crop rule gives (dlib-HOG and BlazeFace boxes of every training photo are
found once and cached), jittered in scale and position the way boxes wobble from frame
to frame, then rotated (+-30 deg), flipped (with the 68-point index remap), recoloured,
blurred and partly occluded. The loss is the NME itself (mean point distance over the
outer-eye-corner distance).

A tenth of the training photos (chosen by a hash of the file name) is held out as
validation; its NME with HOG boxes is logged every epoch, and the epoch with the best
validation NME is exported. Nothing here reads the test split. Every epoch's state
(weights, optimiser, log) is checkpointed in ``--work``; ``--resume`` continues from
the last one with the same data order (each epoch's augmentation is seeded by
``seed`` and the epoch number); ``--stop-after N`` ends a run early on purpose.

The defaults made the committed model (6-11 min on 2 CPU cores, no GPU; the log of that
run is summarised in models/README.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..paths import CNN68_DIR, MODELS_DIR, SHARED_DATA
from ..types import OUTER_EYE_CORNERS
from .cnn68 import CROP_RULES, HEADS, INPUT_SIZE, N_POINTS, keras_nme

DEFAULT_DATA = SHARED_DATA / "landmarks300w" / "train"
DEFAULT_WORK = MODELS_DIR / "cache" / "train_cnn68"
BOX_DETECTORS = ("hog", "blazeface")
VAL_FRACTION = 0.1

# Index of each point's mirror image under a horizontal flip (iBUG 300-W 68-point order).
FLIP_INDEX = np.array(
    list(range(16, -1, -1))                       # jaw 0..16 <-> 16..0
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # brows 17..21 <-> 26..22
    + [27, 28, 29, 30]                            # nose bridge stays
    + [35, 34, 33, 32, 31]                        # nostrils
    + [45, 44, 43, 42, 47, 46]                    # right eye 36..41 <-> left eye
    + [39, 38, 37, 36, 41, 40]                    # left eye 42..47 <-> right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])           # inner lips


@dataclass
class Augment:
    """Strength of each augmentation (probabilities and ranges)."""
    box_scale_sigma: float = 0.06   # log-normal jitter of the crop side
    box_shift_sigma: float = 0.05   # crop centre shift, fraction of the side
    rotate_prob: float = 0.5
    max_rotation: float = 30.0      # degrees, uniform in +-
    flip_prob: float = 0.5
    colour_prob: float = 0.8
    gray_prob: float = 0.1
    blur_prob: float = 0.2
    occlude_prob: float = 0.3


def parse_augment(pairs: list[str] | None) -> Augment:
    """``["rotate_prob=0.3", ...]`` -> Augment with those fields changed."""
    aug = Augment()
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        if not hasattr(aug, key) or not value:
            raise ValueError(f"--aug {pair!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(vars(aug))}")
        setattr(aug, key, float(value))
    return aug


# ---------------------------------------------------------------- data

@dataclass
class FaceSet:
    names: list[str]
    images: list[np.ndarray]        # BGR photos (<= 400 px)
    points: np.ndarray              # (N, 68, 2) ground truth, frame pixels
    squares: dict[str, np.ndarray]  # detector -> (N, 3) left, top, side; -1 where missed


def load_faces(data_dir: Path, cache: Path) -> FaceSet:
    """Photos, ground truth and each detector's crop square (cached in ``cache``)."""
    from ..lab.landmark_eval import read_faces

    faces = read_faces(data_dir)
    return FaceSet([f.name for f in faces], [f.image for f in faces],
                   np.stack([f.points for f in faces]), detector_squares(faces, cache))


def detector_squares(faces: list, cache: Path) -> dict[str, np.ndarray]:
    """Crop squares from each detector's best-matching box under that detector's rule
    (``faces``: ``app.lab.landmark_eval.AnnotatedFace``; the boxes are cached by file names)."""
    from ..lab.landmark_eval import with_boxes
    from ..stages.landmarks.crop import square_for_box

    cache = Path(cache)
    key = hashlib.sha1("\n".join(f.name for f in faces).encode()).hexdigest()[:12]
    file = cache / f"boxes_{key}.npz"
    if file.exists():
        boxes = dict(np.load(file))
    else:
        boxes = {}
        for detector in BOX_DETECTORS:
            found = np.array([np.full(4, np.nan) if f.box is None else f.box
                              for f in with_boxes(faces, detector)], np.float32)
            boxes[detector] = found
            print(f"{detector}: boxes for {np.isfinite(found[:, 0]).sum()}/{len(faces)} "
                  "training faces", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(file, **boxes)
    squares = {}
    for detector, found in boxes.items():
        rule = CROP_RULES[detector]
        squares[detector] = np.array(
            [square_for_box(b, rule) if np.isfinite(b[0]) else (-1, -1, -1) for b in found],
            np.float64)
    return squares


def split_indices(names: list[str], fraction: float = VAL_FRACTION):
    """(fit, val) indices; a photo is in val when the hash of its name says so (stable
    under adding or removing other photos)."""
    val = np.array([int(hashlib.md5(n.encode()).hexdigest(), 16) % 1000 < fraction * 1000
                    for n in names])
    return np.flatnonzero(~val), np.flatnonzero(val)


def base_square(faces: FaceSet, index: int, rng: np.random.Generator) -> np.ndarray:
    """One detector's square for the face, at random; a landmark-box square when no
    detector found it (the profile faces HOG misses are the ones worth keeping)."""
    options = [faces.squares[d][index] for d in BOX_DETECTORS if faces.squares[d][index][2] > 0]
    if options:
        return options[rng.integers(len(options))]
    from ..stages.geometry import landmark_box
    from ..stages.landmarks.crop import square_for_box
    return square_for_box(landmark_box(faces.points[index]),
                          {"scale": 1.15, "dx": 0.0, "dy": 0.05}).astype(np.float64)


# ---------------------------------------------------------------- augmentation

def crop_transform(square, angle_deg: float = 0.0, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from frame pixel-index coordinates to crop pixel-index coordinates:
    the square (left, top, side) scaled to ``size``, rotated by ``angle_deg`` about its
    centre. With angle 0 it reproduces app.stages.landmarks.crop.cut_square's geometry."""
    left, top, side = (float(v) for v in square)
    scale = size / side
    centre = np.array([left + side / 2, top + side / 2])
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    # x_c + 0.5 = rot (x + 0.5 - centre) + size / 2
    offset = size / 2 - 0.5 + rot @ (0.5 - centre)
    return np.hstack([rot, offset[:, None]])


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The crop ``matrix`` describes, zero-padded outside the photo. When shrinking, the
    photo is first area-resized (as cut_square does) so the network sees no aliasing it
    would not see at run time."""
    shrink = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if shrink < 0.9:
        small = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        sx = small.shape[1] / image.shape[1]
        sy = small.shape[0] / image.shape[0]
        # frame coords -> small coords: x_s + 0.5 = s (x + 0.5)
        to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        matrix = matrix @ np.linalg.inv(to_small)
        image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flip_points(points01: np.ndarray) -> np.ndarray:
    """Points (..., 68, 2) in crop fractions, mirrored left-right with the index remap."""
    flipped = np.asarray(points01)[..., FLIP_INDEX, :].copy()
    flipped[..., 0] = 1.0 - flipped[..., 0]
    return flipped


def augment_sample(image, points, square, rng: np.random.Generator, aug: Augment):
    """One training pair: (112, 112, 3) uint8 RGB crop and (68, 2) crop fractions."""
    left, top, side = square
    side2 = side * float(np.exp(rng.normal(0, aug.box_scale_sigma)))
    cx = left + side / 2 + rng.normal(0, aug.box_shift_sigma) * side
    cy = top + side / 2 + rng.normal(0, aug.box_shift_sigma) * side
    jittered = (cx - side2 / 2, cy - side2 / 2, side2)
    rotate = rng.random() < aug.rotate_prob
    angle = rng.uniform(-aug.max_rotation, aug.max_rotation) if rotate else 0.0
    matrix = crop_transform(jittered, angle)
    crop = warp_crop(image, matrix)
    target = (points @ matrix[:, :2].T + matrix[:, 2] + 0.5) / INPUT_SIZE
    if rng.random() < aug.flip_prob:
        crop = crop[:, ::-1]
        target = flip_points(target)
    crop = _photometric(np.ascontiguousarray(crop), rng, aug)
    return crop[:, :, ::-1], target.astype(np.float32)


def _photometric(crop: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    out = crop.astype(np.float32)
    if rng.random() < aug.colour_prob:
        gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)
        out = (out - 128) * rng.uniform(0.7, 1.3) + 128  # contrast
        out = out * gain + rng.uniform(-25, 25)           # brightness, colour cast
    if rng.random() < aug.gray_prob:
        out[:] = out.mean(axis=2, keepdims=True)
    if rng.random() < aug.blur_prob:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if rng.random() < aug.occlude_prob:
        h, w = (rng.uniform(0.15, 0.45, 2) * INPUT_SIZE).astype(int)
        y, x = rng.integers(0, INPUT_SIZE - h), rng.integers(0, INPUT_SIZE - w)
        out[y:y + h, x:x + w] = rng.uniform(0, 255, 3)
    out += rng.normal(0, rng.uniform(0, 6), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_batches(faces: FaceSet, indices: np.ndarray, batch: int, seed: int,
                 aug: Augment):
    """Shuffled augmented batches of one epoch: (images float32 RGB, targets (B, 136))."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(indices)
    for start in range(0, len(order) - batch + 1, batch):
        pairs = [augment_sample(faces.images[i], faces.points[i], base_square(faces, i, rng),
                                rng, aug) for i in order[start:start + batch]]
        crops = np.stack([c for c, _ in pairs]).astype(np.float32)
        targets = np.stack([t for _, t in pairs]).reshape(len(pairs), -1)
        yield crops, targets


def val_crops(faces: FaceSet, indices: np.ndarray, detector: str = "hog"):
    """(crops, squares, truths): unaugmented validation crops from ``detector``'s squares
    (faces it found), in the argument order of ``keras_nme``."""
    keep = [i for i in indices if faces.squares[detector][i][2] > 0]
    squares = np.stack([faces.squares[detector][i] for i in keep])
    crops = np.stack([warp_crop(faces.images[i], crop_transform(square))[:, :, ::-1]
                      for i, square in zip(keep, squares)]).astype(np.float32)
    return crops, squares, faces.points[keep]


# ---------------------------------------------------------------- training

def nme_loss(tf, targets, outputs):
    """Mean over the batch of the NME (in crop fractions; scale-free)."""
    t = tf.reshape(targets, (-1, N_POINTS, 2))
    p = tf.reshape(outputs, (-1, N_POINTS, 2))
    right, left = OUTER_EYE_CORNERS
    iod = tf.norm(t[:, right] - t[:, left], axis=-1)
    dist = tf.sqrt(tf.reduce_sum(tf.square(p - t), axis=-1) + 1e-8)
    return tf.reduce_mean(tf.reduce_mean(dist, axis=-1) / tf.maximum(iod, 0.05))


@dataclass
class _Run:
    """Everything one training run works with (built by :func:`_setup`)."""
    model: object
    optimizer: object
    epoch: object          # tf.Variable: the last finished epoch (checkpointed)
    manager: object        # tf.train.CheckpointManager
    faces: object
    fit: np.ndarray
    val_set: tuple
    aug: object
    log_path: Path
    best_path: Path


def train(args) -> Path:
    """Run (or resume) training; returns the path of the best weights."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    run = _setup(args)
    _start_or_resume(run, args)
    _epochs(run, args)
    return run.best_path


def _setup(args) -> _Run:
    """Data, model, optimizer and checkpoint manager (Adam's moments built before any
    restore, so a resumed run continues exactly)."""
    import tensorflow as tf

    from .cnn68 import face_api_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    faces = load_faces(Path(args.data), work)
    fit, val = split_indices(faces.names)
    val_set = val_crops(faces, val)
    print(f"training on {len(fit)} faces, validating on {len(val_set[0])} "
          f"(of {len(val)} held out; HOG boxes)", flush=True)
    model = face_api_model(head=args.head, extra_blocks=args.extra_blocks)
    if args.init:
        model.load_weights(args.init)
    aug = parse_augment(args.aug)
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=args.epochs * (len(fit) // args.batch), alpha=0.02,
        warmup_target=None)
    optimizer = tf.keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(ckpt, str(work / "ckpt"), max_to_keep=2)
    return _Run(model, optimizer, epoch, manager, faces, fit, val_set, aug,
                work / "log.jsonl", work / "best.weights.h5")


def _start_or_resume(run: _Run, args) -> None:
    """Restore the latest checkpoint (``--resume``), or log epoch 0 and save the start."""
    latest = run.manager.latest_checkpoint
    if args.resume and latest:
        run.manager.checkpoint.restore(latest)
        print(f"resumed from {latest} at epoch {int(run.epoch)}")
        return
    run.log_path.write_text("")
    start = keras_nme(run.model, *run.val_set)
    _log(run.log_path, {"epoch": 0, "val_nme": start, "init": args.init or "face-api.js",
                        "args": {k: v for k, v in vars(args).items()},
                        "augment": vars(run.aug)})
    run.model.save_weights(run.best_path)


def _epochs(run: _Run, args) -> None:
    """Train from the epoch after the last finished one to ``--epochs`` (or
    ``--stop-after`` epochs), keeping the best validation NME's weights."""
    import tensorflow as tf

    model, optimizer = run.model, run.optimizer

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = nme_loss(tf, y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    best = min(r["val_nme"] for r in _read_log(run.log_path))
    first = int(run.epoch) + 1
    last = args.epochs if not args.stop_after else min(args.epochs, first - 1 + args.stop_after)
    for epoch in range(first, last + 1):
        started = time.perf_counter()
        losses = [float(step(x, y)) for x, y in
                  make_batches(run.faces, run.fit, args.batch, args.seed * 100003 + epoch,
                               run.aug)]
        score = keras_nme(model, *run.val_set)
        if score < best:
            best = score
            model.save_weights(run.best_path)
        run.epoch.assign(epoch)
        run.manager.save()
        _log(run.log_path, {"epoch": epoch, "train_loss": float(np.mean(losses)),
                            "val_nme": score, "best": best,
                            "seconds": round(time.perf_counter() - started, 1)})


def _log(path: Path, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def export(weights: Path, out: Path, data: Path, fit_limit: int, head: str,
           extra_blocks: int = 0) -> int:
    """Export the trained weights with crop rules refitted on the training photos."""
    from .cnn68 import (
        ExportCheckError,
        _export_tflite,
        build_keras_model,
        export_landmark_model,
        fit_detector_rule,
        report_nme,
    )

    model = build_keras_model(head=head, extra_blocks=extra_blocks)
    model.load_weights(weights)
    rules = {d: fit_detector_rule(model, d, fit_limit, split=data)
             for d in (*BOX_DETECTORS, "gt")}
    rules["default"] = dict(rules["hog"], fitted_on="copy of hog")
    source = (f"FaceLandmark68Net (face-api.js weights, MIT) fine-tuned on iBUG 300-W "
              f"{Path(data).name} by python -m models train_landmarks")
    try:
        export_landmark_model(model, out, rules, source=source)
    except ExportCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return _export_tflite(Path(out)) or report_nme(Path(out))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m models train_landmarks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="training split [%(default)s]")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head", choices=HEADS, default="gdconv",
                        help="last layers (see app.toolchain.cnn68.build_keras_model) [%(default)s]")
    parser.add_argument("--extra-blocks", type=int, default=0,
                        help="residual blocks added on the 7x7 map [%(default)s]")
    parser.add_argument("--work", default=str(DEFAULT_WORK),
                        help="checkpoints, log and box cache [%(default)s]")
    parser.add_argument("--out", default=str(CNN68_DIR), help="export folder [%(default)s]")
    parser.add_argument("--resume", action="store_true", help="continue the last checkpoint "
                        "(give the same --epochs: the learning-rate schedule spans them)")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop after N epochs of this run (continue later with --resume)")
    parser.add_argument("--init", help="start from these weights (.weights.h5 of a run with "
                        "the same --head) instead of face-api.js's")
    parser.add_argument("--aug", nargs="*", metavar="FIELD=VALUE",
                        help="change augmentation strengths (fields of Augment)")
    parser.add_argument("--no-export", action="store_true", help="train only")
    parser.add_argument("--fit-limit", type=int, default=400,
                        help="training photos used to refit the crop rules [%(default)s]")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"error: {args.data} is not a folder of .jpg + .pts faces", file=sys.stderr)
        return 2
    started = time.perf_counter()
    best = train(args)
    print(f"training took {(time.perf_counter() - started) / 60:.1f} min; best weights {best}")
    if _read_log(Path(args.work) / "log.jsonl")[-1]["epoch"] < args.epochs:
        print("stopped before the last epoch: continue with --resume (same --epochs)")
        return 0
    return 0 if args.no_export else export(best, Path(args.out), Path(args.data), args.fit_limit,
                                                 args.head, args.extra_blocks)
