"""The landmark CNN (face-api.js FaceLandmark68Net, exported by ``python -m models export_cnn68``).

The model folder holds ``cnn68_fp32.tflite`` (and smaller variants that kept the
accuracy; run by ai-edge-litert, the default: no TensorFlow at run time), ``frozen.pb``
(run in a TF1-style session), ``saved_model/`` and ``io.json`` (tensor names, input
size, crop rules, the checked .tflite files). TensorFlow is imported only by the "pb"
and "saved_model" backends. The network
normalises inside its graph, so this wrapper only crops, resizes and maps back;
see ``app.stages.landmarks.crop`` for the crop geometry.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...config import LANDMARK_BACKENDS
from ...logs import import_tensorflow
from ...paths import BUILD_COMMAND as INSTALLED_FIX
from ...paths import CNN68_DIR, INSTALLED, ModelFileDamaged, require_file
from ..images import check_bgr_frame, check_box
from . import N_POINTS
from .crop import check_rule, cut_square, square_for_box, to_frame, to_frame_many

# The fine-tuned CNN is committed; git restores it (export_cnn68 would rebuild the older
# face-api.js weights and needs npm; train_landmarks retrains for minutes). Installed,
# the wheel's copy is checked and restored by reinstalling.
BUILD_COMMAND = (INSTALLED_FIX if INSTALLED else
                 "git checkout -- models/landmarks/cnn68  (the committed model files)")
BACKENDS = LANDMARK_BACKENDS
DEFAULT_TFLITE = "cnn68_fp32.tflite"
TFLITE_BUILD_COMMAND = (BUILD_COMMAND if INSTALLED else BUILD_COMMAND + ", or re-convert it "
                        "from frozen.pb: .venv/bin/python -m models build")
IO_KEYS = ("input_size", "channel_order", "frozen_graph", "saved_model", "crop_rules")

Runner = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) float32 RGB 0..255 -> (N, 136)


class CnnLandmarks:
    """68 landmarks from the exported FaceLandmark68Net.

    ``backend`` "tflite" runs ``tflite`` (default: io.json's float32 file) with
    ai-edge-litert; "pb" runs ``frozen.pb`` in a tf.compat.v1 Session; "saved_model" runs
    the SavedModel's serving signature. ``detector`` names the crop rule in io.json that
    matches the boxes you pass ("hog", "blazeface", "default", ...). ``num_threads``
    caps the runtime's threads (None: its default).
    """

    def __init__(self, model_dir: str | Path = CNN68_DIR, backend: str = "tflite",
                 detector: str = "hog", num_threads: int | None = None,
                 tflite: str | Path | None = None):
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
        if backend == "tflite":
            self._run, self._close = load_tflite(self.model_dir / (tflite or DEFAULT_TFLITE),
                                                 num_threads)
        elif backend == "pb":
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
        return to_frame_many(points, np.stack(squares))

    def close(self) -> None:
        """Release the interpreter or TensorFlow session."""
        self._close()

    def __enter__(self) -> "CnnLandmarks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _square(self, box) -> np.ndarray:
        return square_for_box(check_box(box), self.crop_rule)

    def _crop(self, image: np.ndarray, square: np.ndarray) -> np.ndarray:
        """BGR frame -> (S, S, 3) float32 RGB 0..255 network input."""
        crop = cut_square(image, square, self.input_size)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)

    def _to_frame(self, points01: np.ndarray, square: np.ndarray) -> np.ndarray:
        return to_frame(points01, square)


def read_io(path: str | Path) -> dict:
    """The io.json written by app/toolchain/cnn68.py, checked for the keys this wrapper needs."""
    path = require_file(Path(path), BUILD_COMMAND)
    try:
        io = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelFileDamaged(f"cannot read {path}: {err}; restore it with: "
                               f"{BUILD_COMMAND}") from err
    missing = [key for key in IO_KEYS if not isinstance(io, dict) or key not in io]
    if missing:
        raise ModelFileDamaged(f"{path} lacks {missing}; rebuild it with: {BUILD_COMMAND}")
    if io["channel_order"] != "RGB":
        raise ValueError(f"{path}: channel_order {io['channel_order']!r}, expected 'RGB'")
    return io


def load_tflite(path: str | Path, num_threads: int | None = None
                ) -> tuple[Runner, Callable[[], None]]:
    """A runner for the CNN's .tflite through ai-edge-litert, and its close function.

    The runner takes any number of crops but invokes the interpreter once per crop at
    batch 1: on this 2-core EPYC a batch of 4 costs 3.9 ms a face against 1.6 ms at
    batch 1 (XNNPACK, 1 thread; activations of one 112x112 face stay in cache), so one
    call per frame would be 2.4x slower per face."""
    from ai_edge_litert.interpreter import Interpreter

    from ...logs import without_native_info

    path = require_file(Path(path), TFLITE_BUILD_COMMAND)
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        with without_native_info():
            interpreter.allocate_tensors()
    except Exception as err:  # not a flatbuffer, unsupported op
        raise ModelFileDamaged(f"cannot load {path}: {type(err).__name__}: {err}; rebuild it with: "
                         f"{TFLITE_BUILD_COMMAND}") from err
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]["index"]
    if inp["shape"][0] != 1:
        interpreter.resize_tensor_input(inp["index"], [1, *inp["shape"][1:]])
        interpreter.allocate_tensors()

    def run(batch: np.ndarray) -> np.ndarray:
        outputs = []
        for crop in np.asarray(batch, np.float32):
            interpreter.set_tensor(inp["index"], crop[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(out)[0])
        return np.stack(outputs) if outputs else np.zeros((0, 2 * N_POINTS), np.float32)

    return run, lambda: None


def load_frozen_graph(path: str | Path, input_name: str, output_name: str,
                      num_threads: int | None = None) -> tuple[Runner, Callable[[], None]]:
    """A runner for a frozen GraphDef in a tf.compat.v1 Session, and its close function."""
    tf = import_tensorflow()

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
        raise ModelFileDamaged(f"cannot load frozen graph {path}: {type(err).__name__}: {err}; "
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
    tf = import_tensorflow()

    path = Path(path)
    require_file(path / "saved_model.pb", BUILD_COMMAND)
    try:
        fn = tf.saved_model.load(str(path)).signatures[signature]
    except Exception as err:  # corrupt protobuf, missing variables, unknown signature
        raise ModelFileDamaged(f"cannot load SavedModel {path}: {type(err).__name__}: {err}; "
                         f"restore it with {BUILD_COMMAND}") from err

    def run(batch: np.ndarray) -> np.ndarray:
        return fn(**{input_name: tf.constant(batch)})[output_name].numpy()

    return run
