"""The "heatmap" head of the landmark CNN: integral regression (soft-argmax).

Sun et al. 2018, "Integral Human Pose Regression": each point gets a heatmap of logits;
a spatial softmax turns it into a probability map and the point is its expected
position. Here the map is 14x14: dense3's 7x7 output upsampled x2 (bilinear) and
concatenated with dense2's 14x14 output, a 3x3 separable conv, then a 1x1 conv to one
logit map per point. The output keeps the other heads' layout, (N, 136) =
x0, y0, ..., x67, y67 as crop fractions, so export, .tflite and the app are unchanged.
A point's expected position lies between the outer cell centres (0.5 / 14 .. 13.5 / 14).
Only Reshape, Transpose, Softmax and MatMul: the head converts to TFLite as it is.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

HEAD_CHANNELS = 128


def cell_centres(height: int, width: int) -> np.ndarray:
    """(H * W, 2) x, y of each cell centre as fractions of the map, row-major."""
    ys, xs = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width,
                         indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


class SoftArgmax(tf.keras.layers.Layer):
    """(N, H, W, K) logits -> (N, 2K): per map, softmax over the H * W cells (logits
    times a learnt sharpness ``beta``), then the expected cell centre, as x0, y0, x1, ..."""

    def build(self, input_shape):
        self.beta = self.add_weight(name="beta", shape=(),
                                    initializer=tf.keras.initializers.Constant(1.0))
        self.grid = tf.constant(cell_centres(int(input_shape[1]), int(input_shape[2])))

    def call(self, logits):
        cells, points = self.grid.shape[0], logits.shape[-1]
        flat = tf.transpose(tf.reshape(logits * self.beta, (-1, cells, points)), (0, 2, 1))
        prob = tf.nn.softmax(tf.reshape(flat, (-1, cells)), axis=-1)  # (N * K, H * W)
        xy = tf.matmul(prob, self.grid)                                 # (N * K, 2)
        return tf.reshape(xy, (-1, 2 * points))                         # x0, y0, x1, ...


def heatmap_head(layers, fine, coarse, n_points: int):
    """Landmarks (N, 2 * n_points) from dense2's 14x14 map ``fine`` and dense3's 7x7
    map ``coarse``."""
    up = layers.UpSampling2D(2, interpolation="bilinear", name="hm_upsample")(coarse)
    x = layers.Concatenate(name="hm_concat")([up, fine])
    x = layers.SeparableConv2D(HEAD_CHANNELS, 3, padding="same", activation="relu",
                               name="hm_conv")(x)
    logits = layers.Conv2D(n_points, 1, name="hm_logits")(x)
    return SoftArgmax(name="soft_argmax")(logits)
