"""Multi-level ROIAlign over the FPN levels P2..P5 (matterport's PyramidROIAlign).

Each box is pooled from one level, chosen by its size (FPN paper, equation 1,
in normalized coordinates):

    level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), 2, 5)

with h, w the normalized box size and H, W the molded image size in pixels;
``tf.round`` rounds half to even. Pooling is ``tf.image.crop_and_resize``
(bilinear, one sample per output cell, normalized box corners map to the
first / last feature-map cell centres).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.layers import BOX_DTYPE
from mrcnn.ops.image_meta import parse_image_meta_graph

MIN_LEVEL, MAX_LEVEL = 2, 5
# A box of this many pixels per side (in a molded image of any size) maps to P4.
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4


def roi_pyramid_level(boxes, image_shape):
    """FPN level of each box.

    Args:
      boxes: [..., (y1, x1, y2, x2)] float32, normalized.
      image_shape: [(H, W, ...)] of the molded image, pixels, float32 or int.
    Returns:
      [...] int32 level in [2, 5]; zero-area (padding) boxes go to level 2.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    image_shape = tf.cast(image_shape, tf.float32)
    image_area = image_shape[0] * image_shape[1]
    ratio = tf.sqrt(height * width) / (CANONICAL_SIZE / tf.sqrt(image_area))
    log2_ratio = tf.math.log(ratio) / tf.math.log(2.0)
    level = CANONICAL_LEVEL + tf.cast(tf.round(log2_ratio), tf.int32)
    return tf.minimum(MAX_LEVEL, tf.maximum(MIN_LEVEL, level))


def pyramid_roi_align(boxes, image_shape, feature_maps, pool_size):
    """Pools a fixed-size feature patch for every box from its FPN level.

    Args:
      boxes: [B, N, (y1, x1, y2, x2)] float32, normalized; zero rows allowed (padding).
      image_shape: [(H, W, ...)] of the molded image, pixels (the same for the whole batch).
      feature_maps: [P2, P3, P4, P5], each [B, h_l, w_l, C] float32.
      pool_size: (pool_height, pool_width), e.g. (7, 7) or (14, 14).
    Returns:
      [B, N, pool_height, pool_width, C] float32, rows in box order.
    """
    pool_size = tuple(int(v) for v in pool_size)
    levels = roi_pyramid_level(boxes, image_shape)  # [B, N]
    pooled, flat_positions = [], []
    num_boxes = tf.shape(boxes)[1]
    for level, feature_map in zip(range(MIN_LEVEL, MAX_LEVEL + 1), feature_maps):
        where = tf.where(tf.equal(levels, level))  # [K, (batch, box)] int64
        level_boxes = tf.stop_gradient(tf.gather_nd(boxes, where))  # [K, 4]
        batch_index = tf.stop_gradient(tf.cast(where[:, 0], tf.int32))  # [K]
        pooled.append(tf.image.crop_and_resize(
            feature_map, level_boxes, batch_index, pool_size, method="bilinear"))
        flat_positions.append(tf.cast(where[:, 0], tf.int32) * num_boxes + tf.cast(where[:, 1], tf.int32))
    pooled = tf.concat(pooled, axis=0)  # [B*N, ph, pw, C], grouped by level
    flat_positions = tf.concat(flat_positions, axis=0)  # [B*N] a permutation of 0..B*N-1
    # Row r of `pooled` belongs at flat_positions[r]; the inverse permutation puts rows in box order.
    pooled = tf.gather(pooled, tf.math.invert_permutation(flat_positions))
    out_shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
    return tf.reshape(pooled, out_shape)  # [B, N, ph, pw, C]


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """Keras wrapper of :func:`pyramid_roi_align`.

    call([boxes, image_meta, P2, P3, P4, P5]) -> [B, N, pool_height, pool_width, C].
    The molded image shape comes from the first image's image_meta (all images of a
    batch share it), as in matterport.
    """

    def __init__(self, pool_shape, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        return pyramid_roi_align(boxes, image_shape, list(inputs[2:]), self.pool_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2]) + self.pool_shape + (input_shape[2][-1],)

    def get_config(self):
        config = super().get_config()
        config.update(pool_shape=list(self.pool_shape))
        return config


def roi_align_layer(pool_size: int, name: str) -> PyramidROIAlign:
    """A multi-level ROI Align of ``pool_size`` x ``pool_size`` cells, computing in float32 (box coordinates)."""
    return PyramidROIAlign((pool_size, pool_size), name=name, dtype=BOX_DTYPE)
