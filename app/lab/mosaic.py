"""``python -m app.lab.mosaic``: the multi-face benchmark clip, made from shared data.

A 2x2 mosaic of a clip (default: the Hamilton clip, 640x360 -> 1280x720): every tile
shows the same frame, so the mosaic holds four times the faces of the clip (four at a
time where the clip holds one). A ``<out stem>.labels.json`` is written next to it with
the clip's segments and enrolment photos (absolute paths), so ``python -m app bench
--source OUT`` enrols and scores it as it does the clip. Written outside the repository
(default /tmp); never committed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..paths import SHARED_DATA

DEFAULT_CLIP = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
DEFAULT_OUT = Path("/tmp/hamilton_mosaic.mp4")


def tile_2x2(image: np.ndarray) -> np.ndarray:
    """The frame four times, 2 x 2 (twice its width and height)."""
    row = np.concatenate([image, image], axis=1)
    return np.concatenate([row, row], axis=0)


def make_mosaic(clip: Path = DEFAULT_CLIP, out: Path = DEFAULT_OUT) -> dict:
    """Writes the mosaic video and its labels file; returns what was written."""
    clip, out = Path(clip), Path(out)
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {clip}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    out.parent.mkdir(parents=True, exist_ok=True)
    writer, frames = None, 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            mosaic = tile_2x2(image)
            if writer is None:
                height, width = mosaic.shape[:2]
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (width, height))
                if not writer.isOpened():
                    raise ValueError(f"cannot write video {out}")
            writer.write(mosaic)
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise ValueError(f"no frames decoded from {clip}")
    labels = _labels(clip, out, frames, fps)
    return {"video": str(out), "frames": frames, "size": labels["size"],
            "labels": str(out.with_suffix(".labels.json"))}


def _labels(clip: Path, out: Path, frames: int, fps: float) -> dict:
    source = clip.with_suffix(".labels.json")
    labels = json.loads(source.read_text()) if source.is_file() else {}
    height, width = cv2.VideoCapture(str(out)).read()[1].shape[:2]
    labels.update(video=out.name, frames=frames, size=[width, height], fps=fps)
    labels["enroll"] = {name: str((clip.parent / photo).resolve())
                        for name, photo in labels.get("enroll", {}).items()}
    out.with_suffix(".labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lab.mosaic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(DEFAULT_CLIP), help="source clip [%(default)s]")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="mosaic .mp4 [%(default)s]")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(make_mosaic(Path(args.clip), Path(args.out))))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
