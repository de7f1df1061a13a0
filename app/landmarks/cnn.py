"""The landmark CNN (face-api.js FaceLandmark68Net, exported by ``python -m models export_cnn68``).

The model folder holds ``frozen.pb`` (run in a TF1-style session, the default),
``saved_model/`` and ``io.json`` (tensor names, input size, crop rules). The network
normalises inside its graph, so this wrapper only crops, resizes and maps back;
see ``app.landmarks.crop`` for the crop geometry.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from app.config import LANDMARK_BACKENDS
from app.images import check_bgr_frame, check_box
from app.landmarks import N_POINTS
from app.landmarks.crop import check_rule, cut_square, square_for_box, to_frame
from app.paths import CNN68_DIR, require_file

# The fine-tuned CNN is committed; git restores it (export_cnn68 would rebuild the older
# face-api.js weights and needs npm; train_landmarks retrains for minutes).
BUILD_COMMAND = "git checkout -- models/landmarks/cnn68  (the committed model files)"
BACKENDS = LANDMARK_BACKENDS
IO_KEYS = ("input_size", "channel_order", "frozen_graph", "saved_model", "crop_rules")

Runner = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) float32 RGB 0..255 -> (N, 136)


class CnnLandmarks:
    """68 landmarks from the exported FaceLandmark68Net.

    ``backend`` "pb" runs ``frozen.pb`` in a tf.compat.v1 Session; "saved_model" runs the
    SavedModel's serving signature. ``detector`` names the crop rule in io.json that
    matches the boxes you pass ("hog", "blazeface", "default", ...). ``num_threads``
    caps TensorFlow's intra-op threads (None: TensorFlow's default, all cores).
    """

    def __init__(self, model_dir: str | Path = CNN68_DIR, backend: str = "pb",
                 detector: str = "hog", num_threads: int | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.model_dir = Path(model_dir)
        self.io = read_io(self.model_dir / "io.json")
        rules = self.io["crop_rules"]
        if detector not in rules:
            raise ValueError(f"io.json has no crop rule for detector {detector!r}; "
                             f"it has {sorted(rules)}")
        self.backend = backend
        self.detector = detector
        self.crop_rule = check_rule(rules[detector])
        self.input_size = int(self.io["input_size"])
        if backend == "pb":
            spec = self.io["frozen_graph"]
            self._run, self._close = load_frozen_graph(
                self.model_dir / spec["file"], spec["input"], spec["output"], num_threads)
        else:
            spec = self.io["saved_model"]
            self._run = load_saved_model(self.model_dir / spec["dir"], spec["signature"],
                                         spec["input"], spec["output"])
            self._close = lambda: None

    def predict(self, image: np.ndarray, box) -> np.ndarray:
        """(68, 2) float32 landmarks in frame pixels for the face in ``box`` (x1, y1, x2, y2)."""
        return self.predict_many(image, [box])[0]

    def predict_many(self, image: np.ndarray, boxes) -> np.ndarray:
        """(N, 68, 2) float32 landmarks for N boxes of one frame, in one network call."""
        check_bgr_frame(image)
        squares = [self._square(box) for box in boxes]
        if not squares:
            return np.zeros((0, N_POINTS, 2), np.float32)
        crops = np.stack([self._crop(image, square) for square in squares])
        points = self._run(crops).reshape(len(squares), N_POINTS, 2)
        return np.stack([self._to_frame(p, s) for p, s in zip(points, squares)])

    def close(self) -> None:
        """Release the TensorFlow session (pb backend)."""
        self._close()

    def __enter__(self) -> "CnnLandmarks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _square(self, box) -> np.ndarray:
        return square_for_box(check_box(box), self.crop_rule)

    def _crop(self, image: np.ndarray, square: np.ndarray) -> np.ndarray:
        """BGR frame -> (S, S, 3) float32 RGB 0..255 network input."""
        return cut_square(image, square, self.input_size)[:, :, ::-1].astype(np.float32)

    def _to_frame(self, points01: np.ndarray, square: np.ndarray) -> np.ndarray:
        return to_frame(points01, square)


def read_io(path: str | Path) -> dict:
    """The io.json written by models/cnn68.py, checked for the keys this wrapper needs."""
    path = require_file(Path(path), BUILD_COMMAND)
    try:
        io = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}; restore it with: {BUILD_COMMAND}") from err
    missing = [key for key in IO_KEYS if not isinstance(io, dict) or key not in io]
    if missing:
        raise ValueError(f"{path} lacks {missing}; rebuild it with: {BUILD_COMMAND}")
    if io["channel_order"] != "RGB":
        raise ValueError(f"{path}: channel_order {io['channel_order']!r}, expected 'RGB'")
    return io


def load_frozen_graph(path: str | Path, input_name: str, output_name: str,
                      num_threads: int | None = None) -> tuple[Runner, Callable[[], None]]:
    """A runner for a frozen GraphDef in a tf.compat.v1 Session, and its close function."""
    import tensorflow as tf

    path = require_file(Path(path), BUILD_COMMAND)
    try:
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        inp = graph.get_tensor_by_name(input_name)
        out = graph.get_tensor_by_name(output_name)
    except Exception as err:  # protobuf DecodeError, bad graph, missing tensor
        raise ValueError(f"cannot load frozen graph {path}: {type(err).__name__}: {err}; "
                         f"the file is damaged: restore it with {BUILD_COMMAND}") from err
    config = None
    if num_threads:
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=num_threads,
                                          inter_op_parallelism_threads=1)
    session = tf.compat.v1.Session(graph=graph, config=config)

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(out, {inp: batch})

    return run, session.close


def load_saved_model(path: str | Path, signature: str, input_name: str, output_name: str
                     ) -> Runner:
    """A runner for one signature of a TF SavedModel."""
    import tensorflow as tf

    path = Path(path)
    require_file(path / "saved_model.pb", BUILD_COMMAND)
    try:
        fn = tf.saved_model.load(str(path)).signatures[signature]
    except Exception as err:  # corrupt protobuf, missing variables, unknown signature
        raise ValueError(f"cannot load SavedModel {path}: {type(err).__name__}: {err}; "
                         f"restore it with {BUILD_COMMAND}") from err

    def run(batch: np.ndarray) -> np.ndarray:
        return fn(**{input_name: tf.constant(batch)})[output_name].numpy()

    return run
