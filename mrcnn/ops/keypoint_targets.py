"""Landmark (keypoint) heatmaps: targets per ROI, peaks of predicted heatmaps, and ROI <-> image points.

Mask R-CNN's keypoint design with sub-cell targets: an M x M grid is laid over each positive ROI
(M = LANDMARK_HEATMAP_SIZE); the head predicts, per landmark, M * M logits and is trained with a
softmax cross-entropy against a target spread over the 2 x 2 cells whose centres surround the point,
with bilinear weights (:func:`bilinear_cells_graph`, :func:`mrcnn.ops.losses.landmark_loss`). Mask
R-CNN's one-hot target cell rounds every point to its cell's centre (up to half a cell of error
before any learning); the bilinear target's mean cell centre is the point itself, and
:func:`heatmap_peaks_graph` reads a heatmap back the same way.

Conventions (on top of :mod:`mrcnn.ops.boxes`):

* Points are ``(x, y, visibility)`` in pixels of the image frame where pixel i spans [i, i + 1)
  (as in :mod:`mrcnn.ops.instance_fields`); visibility 0 = not labelled, 1 = labelled but hidden
  (occluded), 2 = visible. Both 1 and 2 are trained and scored (DeepFashion2's evaluation).
* A ROI spans the pixels of its pixel box: a normalized ROI (y1, x1, y2, x2) of an H x W image
  spans x in [x1 (W - 1), x2 (W - 1) + 1] (the pixel box x1 .. x2 exclusive of
  :func:`mrcnn.ops.box_frames.denorm_boxes`, without rounding). A point's *ROI units* ``u`` are its
  position in that span, 0 at the left/top edge and 1 at the right/bottom edge.
* Grid point of a point: ``g = u M`` (cells: column c spans [c, c + 1), its centre is c + 0.5); a
  cell's index is ``row * M + column`` (the row-major flattening of an [M, M] heatmap). A point is
  inside its ROI when 0 <= u <= 1.
* A heatmap is read back as the probability-weighted mean of cell centres, ``u = (mean centre) / M``
  (:func:`heatmap_peaks_graph`).
* Heatmap margin m (LANDMARK_ROI_MARGIN): the heatmaps cover the ROI grown by m times its height
  and width on each side (:func:`expand_boxes_graph`); targets are grid points of that grown ROI, and
  peaks are read back in units of the ROI itself, ``u = u_grown (1 + 2m) - m`` (from -m to 1 + m).
* Landmark slices: class c (1 .. C - 1) owns ``counts[c - 1]`` consecutive landmarks of the global
  table (DeepFashion2: 294 landmarks, trousers 168 .. 181 0-based); :func:`landmark_index_table`
  lists them per class, and heads work on a class's slice padded to the largest count (Kmax).

``points_to_roi_units_graph`` (TF, targets) and ``roi_units_to_points`` (NumPy, unmolding) are the
two directions of one rule; ``tests/test_landmarks.py`` keeps them inverse to each other.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf


def landmark_index_table(counts: Sequence[int]) -> np.ndarray:
    """Global landmark indices of every class's slice.

    Args:
      counts: landmarks per class, for class ids 1 .. len(counts) (background has none).
    Returns:
      [len(counts) + 1, Kmax] int32, Kmax = max(counts): row c holds the indices of class c's
      landmarks in the global table (start = sum of the counts before it), then -1 padding;
      row 0 (background) is all -1.
    """
    counts = [int(n) for n in counts]
    width = max(counts, default=0)
    table = np.full((len(counts) + 1, width), -1, np.int32)
    start = 0
    for class_id, count in enumerate(counts, start=1):
        table[class_id, :count] = np.arange(start, start + count)
        start += count
    return table


def points_to_roi_units_graph(points_xy, rois, image_hw):
    """Points in ROI units (see the module conventions).

    Args:
      points_xy: [P, K, (x, y)] float32 pixels of the image.
      rois: [P, (y1, x1, y2, x2)] float32, normalized to the same image.
      image_hw: (H, W) of the image in pixels.
    Returns:
      [P, K, (u_x, u_y)] float32.
    """
    height, width = (tf.cast(v, tf.float32) for v in (image_hw[0], image_hw[1]))
    rois = tf.cast(rois, tf.float32)
    start = tf.stack([rois[:, 1] * (width - 1.0), rois[:, 0] * (height - 1.0)], axis=-1)  # [P, (x, y)]
    extent = tf.stack([(rois[:, 3] - rois[:, 1]) * (width - 1.0) + 1.0,
                       (rois[:, 2] - rois[:, 0]) * (height - 1.0) + 1.0], axis=-1)
    return (tf.cast(points_xy, tf.float32) - start[:, None, :]) / extent[:, None, :]


def roi_units_to_points(units, boxes) -> np.ndarray:
    """The inverse of :func:`points_to_roi_units_graph` for pixel boxes (NumPy).

    Args:
      units: [n, K, (u_x, u_y)] float.
      boxes: [n, (y1, x1, y2, x2)] pixels, (y2, x2) exclusive (e.g. ``detect``'s "rois").
    Returns:
      [n, K, (x, y)] float32 pixels of the boxes' image.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    start = boxes[:, [1, 0]]
    extent = boxes[:, [3, 2]] - start
    return (np.asarray(units, np.float64) * extent[:, None, :] + start[:, None, :]).astype(np.float32)


def expand_boxes_graph(boxes, margin: float):
    """Boxes grown by ``margin`` times their height and width on each side (the landmark heatmaps' extent).

    Args:
      boxes: [..., (y1, x1, y2, x2)] float, any units (normalized ROIs here).
      margin: m >= 0; 0 returns the boxes unchanged.
    Returns:
      [..., (y1 - m h, x1 - m w, y2 + m h, x2 + m w)] float32, h = y2 - y1, w = x2 - x1.
    """
    boxes = tf.cast(boxes, tf.float32)
    if not margin:
        return boxes
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    dy, dx = margin * (y2 - y1), margin * (x2 - x1)
    return tf.stack([y1 - dy, x1 - dx, y2 + dy, x2 + dx], axis=-1)


def landmark_grid_points_graph(units, visibility, heatmap_size: int):
    """Heatmap grid position of every point, -1 where the point is not labelled or outside its ROI.

    Args:
      units: [P, K, (u_x, u_y)] float32 ROI units. visibility: [P, K] (> 0 = labelled).
      heatmap_size: M.
    Returns:
      [P, K, (g_x, g_y)] float32 ``g = u M`` in [0, M] (cell column / row c spans [c, c + 1)), or
      (-1, -1).
    """
    inside = tf.reduce_all((units >= 0.0) & (units <= 1.0), axis=-1) & (tf.cast(visibility, tf.float32) > 0)
    return tf.where(inside[..., None], units * float(heatmap_size), -1.0)


def bilinear_cells_graph(grid_points, heatmap_size: int):
    """The 2 x 2 cells whose centres surround each point, and their bilinear weights (the heatmap target).

    Cell centres sit at c + 0.5; a point between the centres of columns c and c + 1 gives them weights
    (c + 1.5 - g_x) and (g_x - c - 0.5), rows likewise, so the weighted mean of the four centres is the
    point. Within half a cell of the heatmap's edge both columns (rows) are the edge cell: its weight
    is 1 there.

    Args:
      grid_points: [n, (g_x, g_y)] float32 in [0, M] (:func:`landmark_grid_points_graph`).
      heatmap_size: M (an int, or a scalar int32 tensor).
    Returns:
      cells [n, 4] int32 indices row * M + column in [0, M * M); weights [n, 4] float32 summing to 1.
    """
    size = heatmap_size
    centred = tf.cast(grid_points, tf.float32) - 0.5  # [n, 2], cell c's centre at c
    low = tf.floor(centred)
    fraction = centred - low
    low = tf.cast(low, tf.int32)
    columns = tf.clip_by_value(tf.stack([low[:, 0], low[:, 0] + 1], axis=1), 0, size - 1)  # [n, 2]
    rows = tf.clip_by_value(tf.stack([low[:, 1], low[:, 1] + 1], axis=1), 0, size - 1)
    x_weights = tf.stack([1.0 - fraction[:, 0], fraction[:, 0]], axis=1)
    y_weights = tf.stack([1.0 - fraction[:, 1], fraction[:, 1]], axis=1)
    cells = tf.reshape(rows[:, :, None] * size + columns[:, None, :], [-1, 4])  # (top, bottom) x (left, right)
    weights = tf.reshape(y_weights[:, :, None] * x_weights[:, None, :], [-1, 4])
    return cells, weights


def landmark_targets(positive_rois, matched_gt, gt: Mapping[str, tf.Tensor], *, field: str, index_table,
                     image_hw, heatmap_size: int, margin: float = 0.0):
    """The landmark head's targets: per positive ROI, the grid position of each landmark of its class's slice.

    A landmark is trained (position >= 0) when it is labelled (visibility > 0, occluded ones too),
    lies inside the ROI grown by ``margin`` (the heatmaps' extent), and belongs to the matched
    ground truth's class slice.

    Args:
      positive_rois: [P, (y1, x1, y2, x2)] float32, normalized to the molded image.
      matched_gt: [P] int, the ground-truth row of each ROI.
      gt: "class_ids" [I] int and ``field`` [I, N, (x, y, visibility)] float32 pixels of the molded image.
      index_table: [C, Kmax] int32 from :func:`landmark_index_table`.
      image_hw: (H, W) of the molded image. heatmap_size: M. margin: LANDMARK_ROI_MARGIN.
    Returns:
      [P, Kmax, (g_x, g_y)] float32 grid positions in the grown ROI's heatmap (``g = u M``), (-1, -1) for
      landmarks not trained (and the slice's padding).
    """
    points = tf.gather(tf.cast(gt[field], tf.float32), matched_gt)  # [P, N, 3]
    indices = tf.gather(tf.constant(index_table, tf.int32), tf.gather(tf.cast(gt["class_ids"], tf.int32),
                                                                      matched_gt))  # [P, Kmax]
    own = tf.gather(points, tf.maximum(indices, 0), batch_dims=1)  # [P, Kmax, 3]
    units = points_to_roi_units_graph(own[..., :2], expand_boxes_graph(positive_rois, margin), image_hw)
    grid_points = landmark_grid_points_graph(units, own[..., 2], heatmap_size)
    return tf.where((indices >= 0)[..., None], grid_points, -1.0)


def class_slice_up_convolution_graph(features, class_ids, kernel, bias, counts: Sequence[int], strides: int = 2):
    """The heatmap up-convolution of each ROI computed for its class's landmarks only.

    Equal to ``tf.nn.conv2d_transpose`` with every landmark's channel (padding "SAME") followed
    by picking each ROI's class slice, at about Kmax / N of its cost (DeepFashion2: 39 of 294
    channels): the ROIs are grouped by class and each group gets its class's kernel channels.

    Args:
      features: [R, p, p, D] float, the head's last convolution per ROI.
      class_ids: [R] int, class of each ROI (0 = none: its row is zeros).
      kernel: [k, k, N, D] float, Keras' Conv2DTranspose layout (output channels before input channels).
      bias: [N] float.
      counts: landmarks per class, class ids 1 .. len(counts) (LANDMARK_COUNTS); N = sum(counts).
      strides: up-sampling factor.
    Returns:
      [R, m, m, Kmax] float32 logits, m = strides * p, Kmax = max(counts): channel j is the ROI's
      class's j-th landmark; channels past its class's count are zeros.
    """
    features = tf.cast(features, tf.float32)
    kernel, bias = tf.cast(kernel, tf.float32), tf.cast(bias, tf.float32)
    class_ids = tf.cast(class_ids, tf.int32)
    rows, side = tf.shape(features)[0], tf.shape(features)[1] * strides
    width = max(counts)
    members, heatmaps, start = [], [], 0
    for class_id, count in enumerate(counts, start=1):
        member = tf.where(tf.equal(class_ids, class_id))[:, 0]  # [Rc]
        group = tf.gather(features, member)
        shape = tf.stack([tf.shape(member)[0], side, side, count])
        logits = tf.nn.conv2d_transpose(group, kernel[:, :, start:start + count, :], shape, strides, "SAME")
        logits = tf.nn.bias_add(logits, bias[start:start + count])
        heatmaps.append(tf.pad(logits, [[0, 0], [0, 0], [0, 0], [0, width - count]]))
        members.append(member)
        start += count
    output_shape = tf.stack([tf.cast(rows, tf.int64), tf.cast(side, tf.int64), tf.cast(side, tf.int64), width])
    return tf.scatter_nd(tf.concat(members, 0)[:, None], tf.concat(heatmaps, 0), output_shape)


def flatten_heatmaps_graph(logits):
    """[R, M, M, K] heatmap logits -> [R, K, M * M] float32, each heatmap's cells row-major."""
    logits = tf.cast(logits, tf.float32)
    shape = tf.shape(logits)
    return tf.reshape(tf.transpose(logits, [0, 3, 1, 2]), [shape[0], shape[3], shape[1] * shape[2]])


def heatmap_peaks_graph(logits, margin: float = 0.0):
    """Every heatmap's peak in ROI units, refined below a cell, and the probability mass around it.

    A landmark's target spreads over the 2 x 2 cells whose centres surround it (:func:`bilinear_cells_graph`),
    so the position is the probability-weighted mean of the centres of the 3 x 3 cells around the most
    likely one (cells outside the heatmap weigh 0): a heatmap equal to its target gives the point back
    exactly. The score is the softmax mass of those 3 x 3 cells: how sure the heatmap is that the
    landmark lies within a cell of the point (the peak cell's own probability would also fall where a
    point sits between cells, as a sub-cell target spreads it over four).

    Args:
      logits: [R, M, M, N] float heatmap logits over each ROI grown by ``margin`` (LANDMARK_ROI_MARGIN).
    Returns:
      [R, N, (u_x, u_y, score)] float32: the refined peak in units of the ROI itself (in [-m, 1 + m])
      and the softmax mass of the 3 x 3 cells around the peak, in (0, 1].
    """
    size = tf.shape(logits)[1]
    probabilities = tf.nn.softmax(flatten_heatmaps_graph(logits), axis=-1)  # [R, N, M * M]
    cells = tf.argmax(probabilities, axis=-1, output_type=tf.int32)  # [R, N]
    peak_x, peak_y = cells % size, cells // size
    weight_sum = x_sum = y_sum = tf.zeros(tf.shape(cells), tf.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x, y = peak_x + dx, peak_y + dy
            inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            cell = tf.where(inside, y * size + x, cells)
            weight = tf.where(inside, tf.gather(probabilities, cell, batch_dims=2), 0.0)
            weight_sum += weight
            x_sum += weight * tf.cast(x, tf.float32)
            y_sum += weight * tf.cast(y, tf.float32)
    size_f = tf.cast(size, tf.float32)
    u_x = (x_sum / weight_sum + 0.5) / size_f * (1.0 + 2.0 * margin) - margin
    u_y = (y_sum / weight_sum + 0.5) / size_f * (1.0 + 2.0 * margin) - margin
    return tf.stack([u_x, u_y, weight_sum], axis=-1)


def class_landmarks(peaks, class_ids, boxes, index_table, image_hw) -> np.ndarray:
    """``detect``'s landmarks: each detection's class slice in image pixels, the other landmarks zero (NumPy).

    Args:
      peaks: [n, N, (u_x, u_y, score)] from :func:`heatmap_peaks_graph`.
      class_ids: [n] int. boxes: [n, (y1, x1, y2, x2)] pixels, (y2, x2) exclusive.
      index_table: [C, Kmax] from :func:`landmark_index_table`.
      image_hw: (H, W) of the image: points are kept in it, x in [0, W] and y in [0, H] (with a
        margin a peak can lie beyond a box that touches the image's border).
    Returns:
      [n, N, (x, y, score)] float32.
    """
    peaks = np.asarray(peaks, np.float32)
    result = np.zeros_like(peaks)
    if not len(peaks):
        return result
    points = np.clip(roi_units_to_points(peaks[..., :2], boxes), 0,
                     np.array([image_hw[1], image_hw[0]], np.float32))
    for row, class_id in enumerate(np.asarray(class_ids, int)):
        own = index_table[class_id][index_table[class_id] >= 0]
        result[row, own, :2] = points[row, own]
        result[row, own, 2] = peaks[row, own, 2]
    return result


def class_landmarks_graph(peaks, class_ids, boxes, index_table, image_hw):
    """:func:`class_landmarks` in TensorFlow (exported models); equal to it (``tests/test_export_twins.py``).

    Args:
      peaks: [n, N, (u_x, u_y, score)] float32. class_ids: [n] int32. boxes: [n, (y1, x1, y2, x2)] int32
      pixels, (y2, x2) exclusive. index_table: [C, Kmax] from :func:`landmark_index_table`.
      image_hw: [2] int (H, W) of the image; points are kept in it.
    Returns:
      [n, N, (x, y, score)] float32 pixels of the image; zero outside each detection's class slice.
    """
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64)
    start = tf.stack([boxes[:, 1], boxes[:, 0]], axis=-1)[:, None, :]  # [n, 1, (x1, y1)]
    extent = tf.stack([boxes[:, 3], boxes[:, 2]], axis=-1)[:, None, :] - start
    points = tf.cast(tf.cast(peaks[..., :2], tf.float64) * extent + start, tf.float32)  # [n, N, 2]
    points = tf.clip_by_value(points, 0.0, tf.cast(tf.stack([image_hw[1], image_hw[0]]), tf.float32))
    own = tf.gather(tf.constant(index_table, tf.int32), class_ids)  # [n, Kmax], -1 padding
    in_slice = tf.reduce_max(tf.one_hot(own, tf.shape(peaks)[1]), axis=1) > 0  # [n, N]; -1 is no one-hot
    values = tf.concat([points, peaks[..., 2:3]], axis=-1)
    return tf.where(in_slice[..., None], values, tf.zeros_like(values))
