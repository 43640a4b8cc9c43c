"""Per-instance ground truth beyond class, box and mask, for extra ROI heads (TensorFlow).

An extra head (see :mod:`mrcnn.modeling.roi_heads`) declares the ground truth it
needs as :class:`InstanceField` specs. The dataset returns one array per field with
a row per instance (``Dataset.load_instance_fields``); the input pipeline keeps the
rows aligned with the masks through instance selection and padding, and moves
"points" fields with the image (resize, flip, placement on the canvas) using the
functions below. Points are ``(x, y, visibility)`` rows in pixels of the current
image frame (the pixel-edge frame: pixel i spans [i, i + 1)); visibility 0 means
"not labelled".
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

FIELD_KINDS = ("value", "points")


@dataclass(frozen=True)
class InstanceField:
    """One per-instance array an extra head trains on.

    Attributes:
      name: key in ``Dataset.load_instance_fields``' result; the training input is ``input_gt_<name>``.
      shape: the per-instance shape: ``()`` for a scalar, ``(K, 3)`` for K points.
      dtype: "float32" or "int32".
      kind: "value" (geometry does not change it) or "points" (shape (K, 3): x, y, visibility).
      flip_map: for "points", the index of each point's mirror partner after a left-right
        flip (e.g. left and right sleeve ends swap); None keeps every index.
      flippable: False for points with left/right identities but no known flip map: the input
        pipeline then never flips images left-right while this field is trained (a flipped
        image would teach "left" landmarks on the right).
    """

    name: str
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    kind: str = "value"
    flip_map: tuple[int, ...] | None = None
    flippable: bool = True

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"instance field name {self.name!r} must be an identifier")
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"instance field {self.name}: kind must be one of {FIELD_KINDS}, got {self.kind!r}")
        if self.dtype not in ("float32", "int32"):
            raise ValueError(f"instance field {self.name}: dtype must be float32 or int32, got {self.dtype!r}")
        if self.kind == "points" and (len(self.shape) != 2 or self.shape[1] != 3):
            raise ValueError(f"instance field {self.name}: points need shape (K, 3), got {self.shape}")
        if self.flip_map is not None and (self.kind != "points" or sorted(self.flip_map) != list(range(self.shape[0]))):
            raise ValueError(f"instance field {self.name}: flip_map must be a permutation of the {self.shape[0]} points")

    @property
    def input_name(self) -> str:
        """Name of the training model's input holding this field: ``input_gt_<name>``."""
        return f"input_gt_{self.name}"


def scale_points(points, scale_y, scale_x):
    """Points of an image resized by (scale_y, scale_x).

    Args:
      points: [N, K, (x, y, visibility)] float32 pixels. scale_y, scale_x: float scalars.
    Returns:
      [N, K, 3] float32 (visibility unchanged).
    """
    factors = tf.stack([tf.cast(scale_x, tf.float32), tf.cast(scale_y, tf.float32), 1.0])
    return points * factors


def flip_points(points, width, flip_map=None):
    """Points of an image flipped left-right: x -> width - x, then each point takes its partner's index.

    Args:
      points: [N, K, (x, y, visibility)] float32 pixels. width: the image width in pixels.
      flip_map: [K] ints or None (see InstanceField.flip_map).
    Returns:
      [N, K, 3] float32.
    """
    x, y, visibility = tf.unstack(points, axis=-1)
    flipped = tf.stack([tf.cast(width, tf.float32) - x, y, visibility], axis=-1)
    if flip_map is not None:
        flipped = tf.gather(flipped, list(flip_map), axis=1)
    return flipped


def place_points(points, offset_y, offset_x, height, width):
    """Points after their image was shifted by (offset_y, offset_x) onto a height x width canvas.

    A point that lands outside the canvas loses its label (visibility 0, coordinates 0).
    Args:
      points: [N, K, (x, y, visibility)] float32 pixels of the image before placing.
      offset_y, offset_x: pixels added to y and x (negative for a crop).
    Returns:
      [N, K, 3] float32 pixels of the canvas.
    """
    x, y, visibility = tf.unstack(points, axis=-1)
    x = x + tf.cast(offset_x, tf.float32)
    y = y + tf.cast(offset_y, tf.float32)
    inside = (x >= 0) & (y >= 0) & (x < tf.cast(width, tf.float32)) & (y < tf.cast(height, tf.float32))
    keep = inside & (visibility > 0)
    zero = tf.zeros_like(x)
    return tf.stack([tf.where(keep, x, zero), tf.where(keep, y, zero), tf.where(keep, visibility, zero)], axis=-1)
