"""Pixel <-> normalized box frames in NumPy, for the data boundary outside the graph.

The frames are defined in :mod:`mrcnn.ops.boxes` (pixel boxes have an exclusive
(y2, x2); normalized boxes map the image onto [0, 1] with ``(b - [0, 0, 1, 1]) /
[H - 1, W - 1, H - 1, W - 1]``). These NumPy versions run where there is no graph:
anchors are built once per image shape on the host, windows come from
``resize_image``, and detections are mapped back to the original image after the
network ran. ``tests/test_boxes.py`` keeps :func:`norm_boxes` equal to
``boxes.norm_boxes_graph``. NumPy only.
"""
from __future__ import annotations

import numpy as np

# Added to (y1, x1, y2, x2) pixel boxes before scaling: y2/x2 are exclusive in pixels.
PIXEL_SHIFT = (0.0, 0.0, 1.0, 1.0)


def _frame_scale(shape) -> np.ndarray:
    """[H - 1, W - 1, H - 1, W - 1] for an image of (H, W) pixels."""
    height, width = shape[0], shape[1]
    return np.array([height - 1, width - 1, height - 1, width - 1])


def norm_boxes(boxes, shape):
    """Pixel boxes to normalized boxes.

    Args:
      boxes: [..., (y1, x1, y2, x2)] pixels, (y2, x2) exclusive; any numeric dtype.
      shape: (height, width) of the image in pixels.
    Returns:
      [..., (y1, x1, y2, x2)] float32, normalized (computed in float64, then cast).
    """
    return np.divide(boxes - np.array(PIXEL_SHIFT), _frame_scale(shape)).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes to integer pixel boxes (the inverse of :func:`norm_boxes`).

    Args:
      boxes: [..., (y1, x1, y2, x2)] normalized.
      shape: (height, width) of the image in pixels.
    Returns:
      [..., (y1, x1, y2, x2)] int32 pixels, (y2, x2) exclusive, rounded half to even.
    """
    return np.around(np.multiply(boxes, _frame_scale(shape)) + np.array(PIXEL_SHIFT)).astype(np.int32)
