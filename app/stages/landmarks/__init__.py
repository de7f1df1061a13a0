"""Landmark stage: a frame and a face box in, (68, 2) float32 frame pixels out.

Two implementations, each in its own module so nothing heavy loads here:
``app.stages.landmarks.cnn.CnnLandmarks`` (face-api.js FaceLandmark68Net, TensorFlow) and
``app.stages.landmarks.dlib68.Dlib68Landmarks`` (dlib's 68-point shape predictor).
Points follow the iBUG 300-W order (see ``app.types``); coordinates use the
pixel-index convention of OpenCV and dlib (the centre of pixel (i, j) is x=i, y=j).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

N_POINTS = 68


@runtime_checkable
class LandmarkModel(Protocol):
    def predict(self, image: np.ndarray, box) -> np.ndarray:
        """(68, 2) float32 landmarks in frame pixels for the face in ``box``
        (x1, y1, x2, y2) of the BGR uint8 ``image``."""
        ...


def predict_boxes(model, image: np.ndarray, boxes) -> np.ndarray:
    """(N, 68, 2) float32 points of the faces in ``boxes``: one batched call where the
    model has ``predict_many`` (the CNN), else one ``predict`` per box (dlib)."""
    if len(boxes) == 0:
        return np.zeros((0, N_POINTS, 2), np.float32)
    if hasattr(model, "predict_many"):
        return model.predict_many(image, boxes)
    return np.stack([model.predict(image, box) for box in boxes])
