"""Instance masks: thresholds, tight boxes, mini masks, and pasting predicted masks into an image.

Masks are ``[H, W, N]`` bool arrays, one channel per instance; boxes are pixel
``(y1, x1, y2, x2)`` with (y2, x2) exclusive (see :mod:`mrcnn.ops.boxes`).

Two thresholds, both matterport's and both at :data:`MASK_THRESHOLD`:

* a mask-head *probability* becomes a pixel of the mask when ``>= 0.5``
  (matterport's ``unmold_mask``): :func:`mask_from_probabilities`;
* a 0/1 mask *resampled* bilinearly (mini masks) keeps a pixel when ``> 0.5``
  (matterport rounds with ``np.around``, which sends 0.5 to 0): :func:`mask_from_resampled`.

The training pipeline needs the tight boxes and the mini masks inside a graph:
:func:`extract_bboxes_graph` and :func:`minimize_masks_graph` are the TensorFlow
twins of :func:`extract_bboxes` and :func:`minimize_mask` (``tests/test_twins.py``
keeps each pair equal over many shapes). Exported models paste their masks into the
image in the graph with :func:`paste_masks_graph`, the twin of :func:`paste_masks`
(``tests/test_export_twins.py``). NumPy and scikit-image at import time;
the ``_graph`` functions import TensorFlow when called.
"""
from __future__ import annotations

import numpy as np

from mrcnn.ops.resize import resize_bilinear, resize_bilinear_graph

MASK_THRESHOLD = 0.5


def mask_from_probabilities(probabilities):
    """Mask-head sigmoid output -> bool mask: ``p >= 0.5``. NumPy arrays or tensors."""
    return probabilities >= MASK_THRESHOLD


def mask_from_resampled(values):
    """A resampled 0/1 mask (values in [0, 1]) -> bool mask: ``v > 0.5``. NumPy arrays or tensors."""
    return values > MASK_THRESHOLD


# ---------------------------------------------------------------- tight boxes
def extract_bboxes(mask):
    """Tight box of every instance mask (matterport's ``utils.extract_bboxes``).

    Args:
      mask: [H, W, N] bool.
    Returns:
      [N, (y1, x1, y2, x2)] int32 pixels, (y2, x2) exclusive; all zeros for an empty mask.
    """
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        rows = np.where(np.any(mask[:, :, i], axis=1))[0]
        cols = np.where(np.any(mask[:, :, i], axis=0))[0]
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def extract_bboxes_graph(masks):
    """:func:`extract_bboxes` in TensorFlow, plus which masks are non-empty.

    Args:
      masks: [H, W, N] bool tensor.
    Returns:
      boxes: [N, (y1, x1, y2, x2)] float32 pixels, (y2, x2) exclusive; zeros for an empty mask.
      present: [N] bool, True where the mask has at least one pixel.
    """
    import tensorflow as tf

    rows = tf.reduce_any(masks, axis=1)  # [H, N]
    cols = tf.reduce_any(masks, axis=0)  # [W, N]
    present = tf.reduce_any(rows, axis=0)  # [N]

    def first_and_end(lines):
        count = tf.shape(lines)[0]
        first = tf.argmax(tf.cast(lines, tf.int32), axis=0, output_type=tf.int32)
        end = count - tf.argmax(tf.cast(tf.reverse(lines, [0]), tf.int32), axis=0, output_type=tf.int32)
        return first, end

    y1, y2 = first_and_end(rows)
    x1, x2 = first_and_end(cols)
    boxes = tf.cast(tf.stack([y1, x1, y2, x2], axis=1), tf.float32)
    return tf.where(present[:, None], boxes, 0.0), present


# ---------------------------------------------------------------- mini masks
def minimize_mask(bbox, mask, mini_shape):
    """Crops each mask to its box and resizes it to ``mini_shape`` (training memory saver).

    Args:
      bbox: [N, (y1, x1, y2, x2)] int pixels, (y2, x2) exclusive.
      mask: [H, W, N] bool.
      mini_shape: (height, width), e.g. (56, 56).
    Returns:
      [mini_h, mini_w, N] bool (bilinear resize, then :func:`mask_from_resampled`).
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        cut = mask[y1:y2, x1:x2, i].astype(np.float64)
        if cut.size == 0:
            raise ValueError(f"instance {i} has a zero-area box {tuple(bbox[i][:4])}")
        mini_mask[:, :, i] = mask_from_resampled(resize_bilinear(cut, mini_shape))
    return mini_mask


def minimize_masks_graph(masks, boxes, mini_shape):
    """:func:`minimize_mask` in TensorFlow.

    Bilinear with half-pixel centres inside the box, like skimage resizing ``mask[y1:y2, x1:x2]``
    (zero beyond the box, output clipped to the input's range), then :func:`mask_from_resampled`.
    Args:
      masks: [H, W, N] bool. boxes: [N, (y1, x1, y2, x2)] float32 pixels, (y2, x2) exclusive, non-empty.
      mini_shape: (mh, mw), e.g. (56, 56).
    Returns:
      [mh, mw, N] bool.
    """
    import tensorflow as tf

    mini_h, mini_w = (float(v) for v in mini_shape)
    # One row/column of zeros around the masks, so samples up to half a pixel outside the image
    # blend with 0 as in skimage (crop_and_resize would return its extrapolation value instead).
    per_instance = tf.pad(tf.transpose(tf.cast(masks, tf.float32), [2, 0, 1]), [[0, 0], [1, 1], [1, 1]])
    per_instance = per_instance[..., None]  # [N, H + 2, W + 2, 1]
    last = tf.cast(tf.shape(per_instance)[1:3], tf.float32) - 1.0  # padded (H + 1, W + 1)
    y1, x1, y2, x2 = tf.unstack(boxes + 1.0, axis=1)  # padded pixel frame
    # Pixel coordinates of the first and last sample centres of a half-pixel resize of the box.
    first_y = y1 + 0.5 * (y2 - y1) / mini_h - 0.5
    last_y = y1 + (mini_h - 0.5) * (y2 - y1) / mini_h - 0.5
    first_x = x1 + 0.5 * (x2 - x1) / mini_w - 0.5
    last_x = x1 + (mini_w - 0.5) * (x2 - x1) / mini_w - 0.5
    crop_boxes = tf.stack([first_y / last[0], first_x / last[1], last_y / last[0], last_x / last[1]], axis=1)
    count = tf.shape(boxes)[0]
    crops = tf.image.crop_and_resize(per_instance, crop_boxes, tf.range(count), tuple(mini_shape))  # [N, mh, mw, 1]
    mini = mask_from_resampled(tf.transpose(crops[..., 0], [1, 2, 0]))  # [mh, mw, N]
    # skimage clips its output to the input's range: a box the mask fills completely stays all True.
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    filled = tf.reduce_sum(tf.cast(masks, tf.float32), axis=[0, 1]) >= area  # [N]
    return tf.logical_or(mini, filled)


def expand_mask(bbox, mini_mask, image_shape):
    """Inverse of :func:`minimize_mask`: pastes each mini mask back into a full-size mask.

    Args:
      bbox: [N, (y1, x1, y2, x2)] int pixels, (y2, x2) exclusive.
      mini_mask: [mini_h, mini_w, N] bool.
      image_shape: (H, W[, C]).
    Returns:
      [H, W, N] bool.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        resized = resize_bilinear(mini_mask[:, :, i].astype(np.float64), (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = mask_from_resampled(resized)
    return mask


# ---------------------------------------------------------------- outlines
def mask_outlines(mask):
    """Outlines of a mask as polygons (matterport's ``visualize`` draws these), in image pixels.

    The mask is padded by one pixel first, so a mask touching the image edge still gets a closed outline.
    Args:
      mask: [H, W] 0/1 or bool.
    Returns:
      list of [K, (x, y)] float64 vertex arrays, one per outline (iso-line 0.5 of the mask).
    """
    from skimage.measure import find_contours

    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    return [np.fliplr(vertices) - 1 for vertices in find_contours(padded, 0.5)]


# ---------------------------------------------------------------- nearest-neighbour resize
def resize_mask_nearest(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize by pixel centres: [H, W, N] -> [height, width, N], same dtype."""
    rows = _nearest_indices(masks.shape[0], height)
    cols = _nearest_indices(masks.shape[1], width)
    return masks[rows[:, None], cols[None, :]]


def _nearest_indices(source_size: int, target_size: int) -> np.ndarray:
    """Source index of each target pixel centre: floor((i + 0.5) * source / target)."""
    scale = source_size / target_size
    indices = np.floor((np.arange(target_size) + 0.5) * scale).astype(np.int64)
    return np.minimum(indices, source_size - 1)


# ---------------------------------------------------------------- predicted masks -> image
def paste_mask(full_mask, mask, bbox) -> None:
    """Writes ``mask`` [h, w] (probabilities) resized to ``bbox`` and thresholded into ``full_mask`` [H, W] bool.

    ``bbox`` is (y1, x1, y2, x2) int pixels of ``full_mask``, (y2, x2) exclusive, inside it. In place.
    """
    y1, x1, y2, x2 = bbox
    full_mask[y1:y2, x1:x2] = mask_from_probabilities(resize_bilinear(mask, (y2 - y1, x2 - x1)))


def unmold_mask(mask, bbox, image_shape):
    """A full-image binary mask from a small mask predicted for a box (matterport's ``utils.unmold_mask``).

    Args:
      mask: [h, w] float in [0, 1], e.g. 28x28 mask-head output.
      bbox: (y1, x1, y2, x2) int pixels of the target image, (y2, x2) exclusive, inside it.
      image_shape: (H, W[, C]) of the target image.
    Returns:
      [H, W] bool: the mask resized (bilinear) to the box, >= 0.5, zero elsewhere.
    """
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    paste_mask(full_mask, mask, bbox)
    return full_mask


def paste_masks(masks, boxes, image_shape):
    """Every predicted mask resized to its box, thresholded and pasted into its own full-image plane.

    The same pixels as :func:`paste_mask` on each mask (skimage's bilinear resize, its clip and
    the 0.5 threshold; ``tests/test_imaging.py`` keeps them equal), computed for groups of masks
    at once: the resize is separable, so mask k resized to its box is ``Ry_k @ mask_k @ Rx_k.T``
    with interpolation matrices from :func:`bilinear_resize_weights`. Masks are grouped by box
    area, so that padding a group to its largest box wastes little and its float64 work array
    stays under ``PASTE_GROUP_ELEMENTS``; only the True pixels are written, by flat index.
    1.1-1.9x faster than a skimage call per mask for 100 masks at 1024x1024 (docs/BENCHMARKS.md).

    Args:
      masks: [n, h, w] float probabilities. boxes: [n, (y1, x1, y2, x2)] int pixels, inside the image,
        (y2, x2) exclusive, positive area.
      image_shape: (H, W[, C]).
    Returns:
      [H, W, n] bool (a view of [n, H, W] planes).
    """
    masks = np.asarray(masks, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    height, width = image_shape[:2]
    planes = np.zeros((len(boxes), height, width), dtype=bool)  # [n, H, W]
    box_heights, box_widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    for group in _size_groups(box_heights, box_widths):
        heights, widths = box_heights[group], box_widths[group]  # [g]
        padded_h, padded_w = int(heights.max()), int(widths.max())
        rows = bilinear_resize_weights(heights, padded_h, masks.shape[1])  # [g, padded_h, h]
        cols = bilinear_resize_weights(widths, padded_w, masks.shape[2])  # [g, padded_w, w]
        # (contiguous operands: NumPy's batched matmul is much slower on transposed views)
        resized = rows @ masks[group].astype(np.float64) @ np.ascontiguousarray(cols.transpose(0, 2, 1))
        # skimage rounds to the mask's float32, then clips to the mask's [min, max] (it would widen
        # that to 0 only if an output inside the box were <= 0 < min: impossible, each one is a
        # positive combination of mask values). So a mask whose min is >= 0.5 fills its box.
        binary = mask_from_probabilities(resized.astype(np.float32))  # [g, padded_h, padded_w]
        binary |= mask_from_probabilities(masks[group].min(axis=(1, 2)))[:, None, None]
        binary &= ((np.arange(padded_h)[None, :, None] < heights[:, None, None])
                   & (np.arange(padded_w)[None, None, :] < widths[:, None, None]))  # not the padding
        k, r, c = np.nonzero(binary)
        plane = group[k]
        planes.reshape(-1)[(plane * height + boxes[plane, 0] + r) * width + boxes[plane, 1] + c] = True
    return np.moveaxis(planes, 0, -1)


PASTE_GROUP_ELEMENTS = 1 << 18  # most padded box pixels resized at once (2 MB of float64)


def _size_groups(heights, widths) -> list[np.ndarray]:
    """Indices of the boxes in groups of similar area, each group's padded size under the budget."""
    groups, current, group_h, group_w = [], [], 0, 0
    for index in np.argsort(heights * widths, kind="stable"):
        grown_h, grown_w = max(group_h, heights[index]), max(group_w, widths[index])
        if current and (len(current) + 1) * grown_h * grown_w > PASTE_GROUP_ELEMENTS:
            groups.append(np.array(current))
            current, grown_h, grown_w = [], heights[index], widths[index]
        current.append(index)
        group_h, group_w = grown_h, grown_w
    if current:
        groups.append(np.array(current))
    return groups


def bilinear_resize_weights(sizes, padded_size: int, source_size: int) -> np.ndarray:
    """Matrices of skimage's bilinear resize along one axis, one per output size.

    Output pixel i of a resize from ``source_size`` to ``size`` samples the source at
    ``(i + 0.5) * source_size / size - 0.5`` (pixel centres), linearly between its two
    neighbours; neighbours outside the source count as 0 (skimage's mode "constant", cval 0).
    Args:
      sizes: [g] int output sizes. padded_size: int >= max(sizes). source_size: int.
    Returns:
      [g, padded_size, source_size] float64; rows i >= sizes[k] of matrix k are 0.
    """
    sizes = np.asarray(sizes, dtype=np.int64)[:, None]  # [g, 1]
    out = np.arange(padded_size)[None, :]  # [1, P]
    source = (out + 0.5) * (source_size / sizes) - 0.5  # [g, P] sample positions
    below = np.floor(source)
    frac = source - below
    below = below.astype(np.int64)
    weights = np.zeros((len(sizes), padded_size, source_size))
    for index, weight in ((below, 1.0 - frac), (below + 1, frac)):
        k, i = np.nonzero((out < sizes) & (index >= 0) & (index < source_size))
        weights[k, i, index[k, i]] += weight[k, i]
    return weights


def paste_masks_graph(masks, boxes, image_hw):
    """:func:`paste_masks` in TensorFlow, one plane per detection (planes first).

    Each mask is resized to its box as :func:`paste_mask` does (skimage bilinear of a float32
    mask: float32 values clipped to the mask's range), thresholded with
    :func:`mask_from_probabilities` and padded into the image.
    Args:
      masks: [n, h, w] float32 probabilities.
      boxes: [n, (y1, x1, y2, x2)] int32 pixels, (y2, x2) exclusive, inside the image, positive area.
      image_hw: [(H, W)] int tensor.
    Returns:
      [n, H, W] bool.
    """
    import tensorflow as tf

    image_hw = tf.cast(image_hw, tf.int32)
    boxes = tf.cast(boxes, tf.int32)

    def paste_one(args):
        mask, box = args
        y1, x1, y2, x2 = tf.unstack(box)
        resized = tf.cast(resize_bilinear_graph(mask, tf.stack([y2 - y1, x2 - x1])), tf.float32)  # [y2-y1, x2-x1]
        return tf.pad(mask_from_probabilities(resized), [[y1, image_hw[0] - y2], [x1, image_hw[1] - x2]])

    def paste_all():
        return tf.map_fn(paste_one, (tf.cast(masks, tf.float32), boxes),
                         fn_output_signature=tf.TensorSpec([None, None], tf.bool))

    # map_fn cannot stack zero planes of unknown size: no detection gives [0, H, W] directly.
    return tf.cond(tf.shape(boxes)[0] > 0, paste_all, lambda: tf.zeros(tf.concat([[0], image_hw], 0), tf.bool))
