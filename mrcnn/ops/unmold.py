"""Network outputs of one image -> detections in the original image's pixels (NumPy).

The inverse of molding: detections come out of the graph normalized to the
molded (resized and padded) image; the window in ``image_meta`` says where the
original image sits inside it. NumPy only.
"""
from __future__ import annotations

import numpy as np

from mrcnn.ops.box_frames import PIXEL_SHIFT, denorm_boxes, norm_boxes
from mrcnn.ops.masks import paste_masks


def detection_count(detections) -> int:
    """Rows before the zero padding of a [D, (y1, x1, y2, x2, class_id, score)] array (class_id 0 ends it)."""
    padding_rows = np.where(detections[:, 4] == 0)[0]
    return int(padding_rows[0]) if padding_rows.size else int(detections.shape[0])


def unmold_boxes(detections, original_image_shape, image_shape, window):
    """Boxes, classes and scores of the original image, and which detection rows they are.

    Args:
      detections: [D, (y1, x1, y2, x2, class_id, score)] float, normalized to the molded
        image; zero-padded (the first row with class_id 0 ends the list).
      original_image_shape: (H, W[, C]) of the image given to the model.
      image_shape: (h, w[, C]) of the molded image.
      window: (y1, x1, y2, x2) pixels of the original image inside the molded image.
    Returns:
      rows: [n] int64, the detection rows kept (those whose box has a positive area in the
        original image). boxes: [n, (y1, x1, y2, x2)] int32 pixels of the original image,
        (y2, x2) exclusive. class_ids: [n] int32. scores: [n] float32.
    """
    count = detection_count(detections)
    # Normalized molded-image frame -> normalized original-image frame -> pixels.
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window), image_shape[:2])
    shift = np.array([wy1, wx1, wy1, wx1])
    extent = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    extent = np.where(extent > 0, extent, 1)  # a window 1 px high or wide (a thin strip of a photo): no divide by 0
    boxes = denorm_boxes((detections[:count, :4] - shift) / extent, original_image_shape[:2])
    rows = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[0]
    return (rows, boxes[rows], detections[rows, 4].astype(np.int32), detections[rows, 5].astype(np.float32))


def unmold_boxes_graph(detections, original_hw, image_hw, window):
    """:func:`unmold_boxes` in TensorFlow (the same float32 / float64 steps, so the same integers).

    Args:
      detections: [D, (y1, x1, y2, x2, class_id, score)] float32, as unmold_boxes.
      original_hw: [(H, W)] int tensor of the image given to the model.
      image_hw: [(h, w)] int tensor of the molded image.
      window: [(y1, x1, y2, x2)] int tensor, pixels of the original image inside the molded one.
    Returns:
      rows: [n] int32. boxes: [n, (y1, x1, y2, x2)] int32 pixels of the original image, (y2, x2)
      exclusive. class_ids: [n] int32. scores: [n] float32. As unmold_boxes.
    """
    import tensorflow as tf

    def frame(hw):  # [H - 1, W - 1, H - 1, W - 1] float64
        hw = tf.cast(hw, tf.float64)
        return tf.stack([hw[0], hw[1], hw[0], hw[1]]) - 1.0

    shift64 = tf.constant(PIXEL_SHIFT, tf.float64)
    padding_rows = tf.where(tf.equal(detections[:, 4], 0.0))[:, 0]  # [P] int64, ascending
    count = tf.concat([padding_rows, tf.shape(detections, out_type=tf.int64)[:1]], axis=0)[0]  # detection_count
    wy1, wx1, wy2, wx2 = tf.unstack(tf.cast((tf.cast(window, tf.float64) - shift64) / frame(image_hw), tf.float32))
    shift = tf.stack([wy1, wx1, wy1, wx1])
    extent = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    extent = tf.where(extent > 0, extent, 1.0)
    normalized = (detections[:count, :4] - shift) / extent  # [count, 4] float32, original image frame
    boxes = tf.cast(tf.round(tf.cast(normalized, tf.float64) * frame(original_hw) + shift64), tf.int32)
    rows = tf.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[:, 0]
    rows = tf.cast(rows, tf.int32)
    kept = tf.gather(detections, rows)
    return rows, tf.gather(boxes, rows), tf.cast(kept[:, 4], tf.int32), kept[:, 5]


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """matterport's ``unmold_detections``: boxes, classes, scores and full-image masks of one image.

    Args:
      detections: see :func:`unmold_boxes`.
      mrcnn_mask: [D, mh, mw, C] float mask probabilities, one channel per class.
      original_image_shape, image_shape, window: see :func:`unmold_boxes`.
    Returns:
      boxes: [n, (y1, x1, y2, x2)] int32 pixels of the original image, (y2, x2) exclusive.
      class_ids: [n] int32. scores: [n] float32. masks: [H, W, n] bool.
      Detections whose box has zero area in the original image are dropped.
    """
    rows, boxes, class_ids, scores = unmold_boxes(detections, original_image_shape, image_shape, window)
    masks = mrcnn_mask[rows, :, :, class_ids]  # [n, mh, mw]
    return boxes, class_ids, scores, paste_masks(masks, boxes, original_image_shape)
