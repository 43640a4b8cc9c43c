"""Box math in TensorFlow: the conventions every box in ``mrcnn`` follows.

Conventions (the same as matterport's, used everywhere in ``mrcnn``):

* A box is ``(y1, x1, y2, x2)``.
* Pixel boxes: (y2, x2) is *exclusive* (one past the last row / column).
* Normalized boxes: ``(b - [0, 0, 1, 1]) / [H - 1, W - 1, H - 1, W - 1]`` for an
  image of H x W pixels, so (y2, x2) becomes inclusive and the image spans
  [0, 1] on both axes. Inside the graph every box is normalized.
* Deltas are ``(dy, dx, log dh, log dw)``: centre shifts in units of the box
  height / width and log size ratios. No clamp is applied to ``log dh`` /
  ``log dw``. Callers multiply the network's raw deltas by the std-dev vector
  (RPN_BBOX_STD_DEV / BBOX_STD_DEV) before :func:`apply_box_deltas`.

The NumPy conversions between the two frames, used outside the graph, are in
:mod:`mrcnn.ops.box_frames`; a test keeps them equal to :func:`norm_boxes_graph`.

The float operations follow matterport's order exactly (centre = y1 + 0.5 * h,
y2 = y1 + new h, ...), so results are bit-identical to its graph.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.ops.box_frames import PIXEL_SHIFT


def apply_box_deltas(boxes, deltas):
    """Moves and resizes boxes by deltas.

    Args:
      boxes: [..., (y1, x1, y2, x2)] float32, any frame (normalized inside the graph).
      deltas: [..., (dy, dx, log dh, log dw)] float32, already multiplied by the std dev.
    Returns:
      [..., (y1, x1, y2, x2)] float32, same frame as ``boxes``.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    # c - (-d) * h has the bits of c + d * h (negation is exact) but is a Sub: in a tf.function with
    # static shapes, Grappler would merge two Adds into an AddN that sums in another order (1-ulp
    # differences from matterport's graph in about 1 of 8 coordinates).
    center_y = center_y - (-deltas[..., 0]) * height
    center_x = center_x - (-deltas[..., 1]) * width
    height = height * tf.exp(deltas[..., 2])
    width = width * tf.exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1)


def box_refinement(boxes, target_boxes):
    """Deltas that move ``boxes`` onto ``target_boxes`` (the inverse of apply_box_deltas).

    Args:
      boxes: [..., (y1, x1, y2, x2)] float32, non-zero height and width.
      target_boxes: [..., (y1, x1, y2, x2)] float32, same frame.
    Returns:
      [..., (dy, dx, log dh, log dw)] float32, not divided by any std dev.
    """
    boxes = tf.cast(boxes, tf.float32)
    target_boxes = tf.cast(target_boxes, tf.float32)
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    target_height = target_boxes[..., 2] - target_boxes[..., 0]
    target_width = target_boxes[..., 3] - target_boxes[..., 1]
    target_center_y = target_boxes[..., 0] + 0.5 * target_height
    target_center_x = target_boxes[..., 1] + 0.5 * target_width
    dy = (target_center_y - center_y) / height
    dx = (target_center_x - center_x) / width
    dh = tf.math.log(target_height / height)
    dw = tf.math.log(target_width / width)
    return tf.stack([dy, dx, dh, dw], axis=-1)


def clip_boxes(boxes, window):
    """Clips every coordinate of every box into a window.

    Args:
      boxes: [..., (y1, x1, y2, x2)] float32.
      window: [(y1, x1, y2, x2)] float32, same frame as boxes (e.g. [0, 0, 1, 1]).
    Returns:
      [..., (y1, x1, y2, x2)] float32; a box outside the window collapses onto its edge.
    """
    window = tf.cast(window, boxes.dtype)
    low = tf.stack([window[0], window[1], window[0], window[1]])
    high = tf.stack([window[2], window[3], window[2], window[3]])
    return tf.maximum(tf.minimum(boxes, high), low)


def box_iou(boxes1, boxes2):
    """Pairwise intersection over union.

    Args:
      boxes1: [N, (y1, x1, y2, x2)] float32.
      boxes2: [M, (y1, x1, y2, x2)] float32, same frame.
    Returns:
      [N, M] float32 IoU; NaN where both boxes have zero area (0 / 0), as in matterport.
    """
    b1 = boxes1[:, tf.newaxis, :]  # [N, 1, 4]
    b2 = boxes2[tf.newaxis, :, :]  # [1, M, 4]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(x2 - x1, 0.0) * tf.maximum(y2 - y1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return intersection / (area1 + area2 - intersection)


def nonzero_box_mask(boxes):
    """Which rows of a zero-padded box array are real boxes.

    Args:
      boxes: [N, 4] float32, padding rows are all zeros.
    Returns:
      [N] bool, True where any coordinate is non-zero.
    """
    return tf.reduce_any(tf.not_equal(boxes, 0.0), axis=-1)


def norm_boxes_graph(boxes, shape):
    """Pixel boxes to normalized boxes, in the graph.

    Args:
      boxes: [..., (y1, x1, y2, x2)] float32, pixels, (y2, x2) exclusive.
      shape: [(height, width)] of the image, any numeric dtype.
    Returns:
      [..., (y1, x1, y2, x2)] float32, normalized (see module docstring).
    """
    shape = tf.cast(shape, tf.float32)
    height, width = shape[0], shape[1]
    scale = tf.stack([height, width, height, width]) - 1.0
    return (tf.cast(boxes, tf.float32) - tf.constant(PIXEL_SHIFT)) / scale
