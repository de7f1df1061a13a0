"""``python -m app.lab.crowd``: a 1080p clip with three faces a frame, made from shared data.

Three real photos of the 5-celebrity validation set (``identities/5-celebrity/val``) at a
time drift (a few pixels a frame) and slowly zoom on a 1920x1080 canvas whose moving
background is the Hamilton clip blurred past recognition (no face is found in it). Each
of the three places shows a person for 86 frames, is empty for 4, then shows another
person (the places take turns, 30 frames apart), so new faces keep arriving: three faces
in most frames, two in the 4-frame gaps; no person is on screen twice at once, nor twice
in a row in one place. 300 frames
at 30 FPS (10 s). The same arguments give the same file.

A ``<out stem>.labels.json`` is written beside it: the enrolment map (each person's first
training photo, absolute paths; the validation photos shown are never enrolled), empty
``segments`` and ``people``: every appearance's ``first``/``last`` frame, ``expect`` (the
name), ``slot`` and photo, which ``bench`` scores (``app.lab.scoring.score_people``).
Written outside the repository (default /tmp); never committed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..paths import SHARED_DATA

CELEBRITIES = SHARED_DATA / "identities" / "5-celebrity"
BACKGROUND = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
DEFAULT_OUT = Path("/tmp/crowd_1080p.mp4")
SIZE = (1920, 1080)
FPS = 30.0
FRAMES = 300
SLOTS = 3                 # faces on screen at a time
PERIOD, GAP = 90, 4       # a place's turn in frames, of which the last GAP are empty
HEIGHTS = (420, 480, 540)  # a photo's height on the canvas (the faces: ~150-300 px wide)


@dataclass(frozen=True)
class Appearance:
    first: int
    last: int
    slot: int
    name: str
    photo: Path


def display_name(folder: str) -> str:
    return folder.replace("_", " ").title()


def schedule(people: dict[str, list[Path]], frames: int = FRAMES) -> list[Appearance]:
    """Who is where when: place k changes person at k*PERIOD/SLOTS + j*PERIOD (empty for
    the GAP frames before each change). Each appearance, in order of start, shows the
    person seen longest ago among those neither on screen nor last in this place (so
    every change brings a new face), each time their next photo."""
    spans = []
    for slot in range(SLOTS):
        changes = range(slot * PERIOD // SLOTS, frames, PERIOD)
        bounds = sorted({0, *changes, frames})
        spans += [(first, slot, (nxt - GAP if nxt < frames else frames) - 1)
                  for first, nxt in zip(bounds, bounds[1:])]
    names = sorted(people)
    shown = {name: 0 for name in names}          # appearances so far
    last_start = {name: -1 for name in names}    # when each last appeared
    out: list[Appearance] = []
    for first, slot, last in sorted(spans):
        before = _last_in(out, slot)
        busy = {a.name for a in out if a.last >= first} | ({before.name} if before else set())
        name = min((n for n in names if display_name(n) not in busy),
                   key=lambda n: (last_start[n], names.index(n)))
        photos = people[name]
        out.append(Appearance(first, last, slot, display_name(name),
                              photos[shown[name] % len(photos)]))
        shown[name] += 1
        last_start[name] = first
    return out


def _last_in(plan: list[Appearance], slot: int) -> Appearance | None:
    return next((a for a in reversed(plan) if a.slot == slot), None)


def _place(appearance: Appearance, frame: int) -> tuple[float, float, float]:
    """Centre x, y and height of the photo in this frame: a slow drift and zoom."""
    t = frame - appearance.first
    phase = appearance.slot * 2.1
    x = SIZE[0] * (2 * appearance.slot + 1) / (2 * SLOTS) + 60 * math.sin(2 * math.pi * t / 120
                                                                           + phase)
    y = SIZE[1] / 2 + 50 * math.sin(2 * math.pi * t / 90 + phase)
    height = HEIGHTS[(appearance.first // PERIOD + appearance.slot) % len(HEIGHTS)]
    return x, y, height * (1 + 0.08 * math.sin(2 * math.pi * t / 150))


def paste(canvas: np.ndarray, photo: np.ndarray, x: float, y: float, height: float) -> None:
    """``photo`` scaled to ``height`` and centred at (x, y), its edges feathered."""
    scale = height / photo.shape[0]
    w, h = max(2, round(photo.shape[1] * scale)), max(2, round(height))
    image = cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.46), int(h * 0.46)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(2.0, 0.04 * w))[..., None]
    x1, y1 = round(x - w / 2), round(y - h / 2)
    cx1, cy1 = max(0, x1), max(0, y1)
    cx2, cy2 = min(canvas.shape[1], x1 + w), min(canvas.shape[0], y1 + h)
    if cx2 <= cx1 or cy2 <= cy1:
        return
    part = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
    crop = (slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1))
    blend = mask[crop] * image[crop] + (1 - mask[crop]) * part
    canvas[cy1:cy2, cx1:cx2] = np.clip(blend, 0, 255).astype(np.uint8)


def background(image: np.ndarray) -> np.ndarray:
    """A Hamilton frame blurred past any face, darkened, at the canvas size."""
    blurred = cv2.GaussianBlur(image, (0, 0), 12)
    return (cv2.resize(blurred, SIZE, interpolation=cv2.INTER_LINEAR) * 0.6).astype(np.uint8)


def load_people(root: Path = CELEBRITIES) -> tuple[dict[str, list[Path]], dict[str, Path]]:
    """(validation photos by person folder, enrolment photo by display name)."""
    val = {p.name: sorted(p.glob("*.jpg")) for p in sorted((root / "val").iterdir())
           if p.is_dir()}
    if len(val) < SLOTS + 2 or not all(val.values()):
        raise FileNotFoundError(f"need the 5-celebrity photos under {root}/val")
    enroll = {}
    for folder in val:
        train = sorted((root / "train" / folder).glob("*.jpg"))
        if not train:
            raise FileNotFoundError(f"no training photo of {folder} under {root}/train")
        enroll[display_name(folder)] = train[0].resolve()
    return val, enroll


def make_crowd(out: Path = DEFAULT_OUT, frames: int = FRAMES) -> dict:
    """Writes the crowd clip and its labels file; returns what was written."""
    out = Path(out)
    val, enroll = load_people()
    plan = schedule(val, frames)
    photos = {a.photo: cv2.imread(str(a.photo)) for a in plan}
    back = cv2.VideoCapture(str(BACKGROUND))
    if not back.isOpened():
        raise FileNotFoundError(f"cannot open video {BACKGROUND}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise ValueError(f"cannot write video {out}")
    try:
        for i in range(frames):
            ok, image = back.read()
            if not ok:   # the background clip is shorter: play it again
                back.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = back.read()
            canvas = background(image)
            for a in plan:
                if a.first <= i <= a.last:
                    paste(canvas, photos[a.photo], *_place(a, i))
            writer.write(canvas)
    finally:
        back.release()
        writer.release()
    labels = _labels(out, frames, plan, enroll)
    return {"video": str(out), "frames": frames, "size": list(SIZE),
            "appearances": len(plan), "labels": str(out.with_suffix(".labels.json"))}


def _labels(out: Path, frames: int, plan: list[Appearance], enroll: dict[str, Path]) -> dict:
    labels = {"video": out.name, "frames": frames, "size": list(SIZE), "fps": FPS,
              "made_by": "python -m app.lab.crowd",
              "enroll": {name: str(photo) for name, photo in enroll.items()},
              "segments": [],
              "people": [{"first": a.first, "last": a.last, "expect": a.name, "slot": a.slot,
                          "photo": f"{a.photo.parent.name}/{a.photo.name}"} for a in plan]}
    out.with_suffix(".labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lab.crowd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="crowd .mp4 [%(default)s]")
    parser.add_argument("--frames", type=int, default=FRAMES, help="[%(default)s]")
    args = parser.parse_args(argv)
    try:
        if args.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {args.frames}")
        print(json.dumps(make_crowd(Path(args.out), args.frames)))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
