"""Real face crops for checking a landmark CNN's exports (frozen .pb, SavedModel, .tflite)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..paths import SHARED_DATA

FIT_SPLIT = SHARED_DATA / "landmarks300w" / "train"
INPUT_SIZE = 112


def real_crops(count: int = 16, split_dir: Path = FIT_SPLIT, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, 112, 112, 3) float32 RGB crops of real faces (ground-truth box, scale 1.3);
    random images, with a warning, when the shared data folder is absent."""
    from ..lab.landmark_eval import read_pts
    from ..stages.geometry import landmark_box
    from ..stages.landmarks.crop import cut_square, square_for_box

    paths = sorted(split_dir.glob("*.jpg"))[:count]
    if not paths:
        print(f"warning: {split_dir} not found; checking the export on random images",
              file=sys.stderr)
        rng = np.random.default_rng(0)
        return rng.uniform(0, 255, (count, size, size, 3)).astype(np.float32)
    import cv2

    crops = []
    for path in paths:
        image = cv2.imread(str(path))
        box = landmark_box(read_pts(path.with_suffix(".pts")))
        square = square_for_box(box, {"scale": 1.3, "dx": 0.0, "dy": 0.0})
        crops.append(cut_square(image, square, size)[:, :, ::-1])
    return np.stack(crops).astype(np.float32)
