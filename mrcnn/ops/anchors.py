"""Anchor boxes over the FPN levels, in matterport's layout (NumPy, built once per image shape).

* One anchor scale (side length in pixels) per level; every ratio at every location.
* Ratio = width / height: ``h = scale / sqrt(ratio)``, ``w = scale * sqrt(ratio)``.
* Centres sit at ``arange(0, feature_size, anchor_stride) * feature_stride`` pixels,
  with no half-stride offset (so the first anchor of every level is centred on (0, 0)).
* Order: level (P2 first), then y, then x, then ratio. The RPN head flattens its
  outputs in this same order, so anchor i pairs with RPN output row i.

Anchors are computed in float64 pixels and normalized (see ``boxes.norm_boxes``)
before they are cast to float32, exactly as matterport does.

:func:`get_anchors_graph` is the TensorFlow twin of :func:`get_anchors` for exported models,
whose molded image size is known only inside the graph (``tests/test_export_twins.py`` keeps
the two bit-equal). NumPy at import time; the ``_graph`` function imports TensorFlow when called.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from mrcnn.ops.box_frames import PIXEL_SHIFT, norm_boxes


def compute_backbone_shapes(image_shape, strides):
    """Spatial size of each FPN level.

    Args:
      image_shape: (height, width[, channels]) of the molded image, pixels.
      strides: feature strides in pixels, e.g. [4, 8, 16, 32, 64] for P2..P6.
    Returns:
      [L, (height, width)] int64: ceil(image side / stride) per level.
    """
    return np.array([[int(math.ceil(image_shape[0] / stride)),
                      int(math.ceil(image_shape[1] / stride))] for stride in strides])


def generate_level_anchors(scale, ratios, feature_shape, feature_stride, anchor_stride):
    """Anchors of one level.

    Args:
      scale: anchor side length in pixels (before the ratio is applied); or one side per ratio,
        an array as long as ``ratios`` (``mrcnn.utils.generate_anchors`` passes every scale x ratio pair).
      ratios: width / height ratios, e.g. [0.5, 1, 2].
      feature_shape: (height, width) of the feature map.
      feature_stride: pixels per feature-map cell.
      anchor_stride: anchors every this many cells.
    Returns:
      [h * w * len(ratios), (y1, x1, y2, x2)] float64, pixels of the molded image.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    heights = scale / np.sqrt(ratios)  # [R]
    widths = scale * np.sqrt(ratios)  # [R]
    centers_y = np.arange(0, feature_shape[0], anchor_stride) * feature_stride  # [h]
    centers_x = np.arange(0, feature_shape[1], anchor_stride) * feature_stride  # [w]
    count_y, count_x, count_r = len(centers_y), len(centers_x), len(ratios)
    shape = (count_y, count_x, count_r)
    cy = np.broadcast_to(centers_y[:, None, None], shape)
    cx = np.broadcast_to(centers_x[None, :, None], shape)
    half_h = np.broadcast_to(0.5 * heights[None, None, :], shape)
    half_w = np.broadcast_to(0.5 * widths[None, None, :], shape)
    boxes = np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)  # [h, w, R, 4]
    return boxes.reshape(-1, 4)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every level, concatenated level by level.

    Args:
      scales: one anchor size in pixels per level, e.g. (32, 64, 128, 256, 512).
      ratios: width / height ratios used at every level.
      feature_shapes: [L, (height, width)], see compute_backbone_shapes.
      feature_strides: [L] pixels per feature cell.
      anchor_stride: anchors every this many cells.
    Returns:
      [A, (y1, x1, y2, x2)] float64, pixels of the molded image.
    """
    return np.concatenate([
        generate_level_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i], anchor_stride)
        for i in range(len(scales))], axis=0)


@functools.lru_cache(maxsize=8)
def _cached_pixel_anchors(image_hw, scales, ratios, strides, anchor_stride):
    feature_shapes = compute_backbone_shapes(image_hw, strides)
    pixels = generate_pyramid_anchors(scales, ratios, feature_shapes, strides, anchor_stride)
    pixels.setflags(write=False)
    return pixels


@functools.lru_cache(maxsize=8)
def _cached_anchors(image_hw, scales, ratios, strides, anchor_stride):
    normalized = norm_boxes(_cached_pixel_anchors(image_hw, scales, ratios, strides, anchor_stride), image_hw)
    normalized.setflags(write=False)
    return normalized


def _settings(image_shape, scales, ratios, strides, anchor_stride) -> tuple:
    return ((int(image_shape[0]), int(image_shape[1])), tuple(scales), tuple(float(r) for r in ratios),
            tuple(int(s) for s in strides), int(anchor_stride))


def get_pixel_anchors(image_shape, scales=(32, 64, 128, 256, 512), ratios=(0.5, 1, 2),
                      strides=(4, 8, 16, 32, 64), anchor_stride=1):
    """:func:`get_anchors` in pixels of the molded image (matterport's ``MaskRCNN.anchors``); read-only, cached."""
    return _cached_pixel_anchors(*_settings(image_shape, scales, ratios, strides, anchor_stride))


def get_anchors(image_shape, scales=(32, 64, 128, 256, 512), ratios=(0.5, 1, 2),
                strides=(4, 8, 16, 32, 64), anchor_stride=1):
    """Normalized anchors for a molded image shape, cached per shape and settings.

    Args:
      image_shape: (height, width[, channels]) of the molded image, pixels.
      scales, ratios, strides, anchor_stride: as in generate_pyramid_anchors
        (matterport's RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS, BACKBONE_STRIDES,
        RPN_ANCHOR_STRIDE; the defaults are its defaults).
    Returns:
      [A, (y1, x1, y2, x2)] float32, normalized; read-only (shared by the cache).
      A = sum over levels of ceil(H/s) * ceil(W/s) * len(ratios) (261,888 at 1024x1024).
    """
    return _cached_anchors(*_settings(image_shape, scales, ratios, strides, anchor_stride))


def get_anchors_graph(image_hw, scales=(32, 64, 128, 256, 512), ratios=(0.5, 1, 2),
                      strides=(4, 8, 16, 32, 64), anchor_stride=1):
    """:func:`get_anchors` in TensorFlow, for a molded size known only inside a graph.

    The same float64 operations in the same order, then normalized and cast to float32, so the
    result is bit-equal to get_anchors.
    Args:
      image_hw: [(height, width)] int tensor (or ints) of the molded image, pixels.
      scales, ratios, strides, anchor_stride: Python settings, as in get_anchors.
    Returns:
      [A, (y1, x1, y2, x2)] float32, normalized to the molded image.
    """
    import tensorflow as tf

    image_hw = tf.cast(image_hw, tf.int32)
    ratios = np.asarray([float(r) for r in ratios], dtype=np.float64)
    levels = []
    for scale, stride in zip(scales, strides):
        half_h = tf.constant(0.5 * (scale / np.sqrt(ratios)))  # [R] float64
        half_w = tf.constant(0.5 * (scale * np.sqrt(ratios)))  # [R]
        feature_hw = (image_hw + stride - 1) // stride  # ceil(side / stride)
        centers_y = tf.cast(tf.range(0, feature_hw[0], anchor_stride) * stride, tf.float64)  # [h]
        centers_x = tf.cast(tf.range(0, feature_hw[1], anchor_stride) * stride, tf.float64)  # [w]
        cy = centers_y[:, None, None] + tf.zeros_like(centers_x)[None, :, None] + tf.zeros_like(half_h)  # [h, w, R]
        cx = centers_x[None, :, None] + tf.zeros_like(centers_y)[:, None, None] + tf.zeros_like(half_w)  # [h, w, R]
        boxes = tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)  # [h, w, R, 4]
        levels.append(tf.reshape(boxes, [-1, 4]))
    pixels = tf.concat(levels, axis=0)  # [A, 4] float64
    height, width = tf.cast(image_hw[0], tf.float64), tf.cast(image_hw[1], tf.float64)
    frame = tf.stack([height - 1, width - 1, height - 1, width - 1])
    return tf.cast((pixels - tf.constant(PIXEL_SHIFT, tf.float64)) / frame, tf.float32)
