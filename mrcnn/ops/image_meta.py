"""The image_meta vector: the one place its layout is defined, built and parsed.

matterport feeds per-image facts to the network as one flat float vector (a model
input kept for compatibility with its weights and code). Layout, 12 + NUM_CLASSES values:

    [0]       image_id
    [1:4]     original image shape (H, W, C) before resizing
    [4:7]     molded image shape (H, W, C) after resizing and padding
    [7:11]    window (y1, x1, y2, x2): the image inside the molded image, pixels, (y2, x2) exclusive
    [11]      scale applied by resize_image
    [12:]     active_class_ids, one 0/1 flag per class (training only)

Build it with :func:`compose_image_meta` (NumPy) or :func:`compose_image_meta_graph`
(TensorFlow: the training pipeline and exported models); read it with
:func:`parse_image_meta` (NumPy) or :func:`parse_image_meta_graph` (TensorFlow).
``Config.IMAGE_META_SIZE`` comes from :func:`image_meta_size`.

NumPy at import time (the config reads the size without loading TensorFlow);
the ``_graph`` builder imports TensorFlow when called.
"""
from __future__ import annotations

import numpy as np

# (name, start, stop) of each field; stop None = to the end of the vector.
_FIELDS = (
    ("image_id", 0, 1),
    ("original_image_shape", 1, 4),
    ("image_shape", 4, 7),
    ("window", 7, 11),
    ("scale", 11, 12),
    ("active_class_ids", 12, None),
)
_SCALARS = ("image_id", "scale")
_NUMPY_DTYPES = {
    "image_id": np.int32, "original_image_shape": np.int32, "image_shape": np.int32,
    "window": np.int32, "scale": np.float32, "active_class_ids": np.int32,
}
META_SIZE_WITHOUT_CLASSES = 12


def image_meta_size(num_classes):
    """Length of the image_meta vector for a model with ``num_classes`` (background included)."""
    return META_SIZE_WITHOUT_CLASSES + int(num_classes)


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids):
    """Packs one image's facts into a vector.

    Args:
      image_id: int, for debugging.
      original_image_shape: (H, W, C) before resizing.
      image_shape: (H, W, C) after resizing and padding (the molded image).
      window: (y1, x1, y2, x2) pixels of the molded image, (y2, x2) exclusive.
      scale: float, the resize factor.
      active_class_ids: [NUM_CLASSES] 0/1 flags.
    Returns:
      [12 + NUM_CLASSES] float64.
    """
    return np.array(
        [image_id] + list(original_image_shape) + list(image_shape) + list(window)
        + [scale] + list(active_class_ids), dtype=np.float64)


def compose_image_meta_graph(image_id, original_image_shape, image_shape, window, scale,
                             active_class_ids):
    """:func:`compose_image_meta` in TensorFlow, for one image inside a graph.

    Args: as compose_image_meta, each a scalar or 1-D tensor (any numeric dtype) or a list.
    Returns:
      [12 + NUM_CLASSES] float32 tensor.
    """
    import tensorflow as tf

    parts = (image_id, original_image_shape, image_shape, window, scale, active_class_ids)
    return tf.concat([tf.reshape(tf.cast(part, tf.float32), [-1]) for part in parts], axis=0)


def _slice_fields(meta):
    fields = {}
    for name, start, stop in _FIELDS:
        fields[name] = meta[..., start] if name in _SCALARS else meta[..., start:stop]
    return fields


def parse_image_meta(meta):
    """Unpacks image_meta vectors (NumPy).

    Args:
      meta: [..., 12 + NUM_CLASSES] one vector or a batch.
    Returns:
      dict: image_id [...] int32, original_image_shape [..., 3] int32, image_shape [..., 3]
      int32, window [..., 4] int32 pixels, scale [...] float32, active_class_ids [..., C] int32.
    """
    meta = np.asarray(meta)
    return {name: value.astype(_NUMPY_DTYPES[name]) for name, value in _slice_fields(meta).items()}


def parse_image_meta_graph(meta):
    """Unpacks image_meta tensors (TensorFlow; slices only, dtypes unchanged).

    Args:
      meta: [B, 12 + NUM_CLASSES] float32 tensor.
    Returns:
      dict of tensors: image_id [B], original_image_shape [B, 3], image_shape [B, 3],
      window [B, 4] pixels, scale [B], active_class_ids [B, C]; all float32.
    """
    return _slice_fields(meta)
