"""matterport's ROI tools for notebooks: random ROIs around the ground truth and their head targets.

    rpn_rois = generate_random_rois(image.shape, 2000, gt_class_ids, gt_boxes)           # pixels
    rois, class_ids, bbox, mask = build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config)

They feed the "Data Generator" cells of matterport's inspect_data notebook (``data_generator(...,
random_rois=2000, detection_targets=True)``), which draw the ROIs and count the positive ones. The
targets come from the training graph's own rule (:func:`mrcnn.ops.roi_targets.detection_targets`, run
eagerly), laid out as matterport's NumPy ``build_detection_targets`` returns them. Training never uses
this module: the model trains on RPN proposals, with its targets computed in the graph.
"""
from __future__ import annotations

import numpy as np

from mrcnn.ops.box_frames import denorm_boxes, norm_boxes


def generate_random_rois(image_shape, count: int, gt_class_ids, gt_boxes, rng=None) -> np.ndarray:
    """``count`` ROIs: 90 % spread over the ground-truth boxes (corners within a box's size around it), the
    rest anywhere in the image, as matterport's notebook helper draws them.

    Args:
      image_shape: (H, W[, C]) of the molded image, pixels.
      gt_class_ids: [G] int (unused beyond its length; matterport's signature).
      gt_boxes: [G, (y1, x1, y2, x2)] int pixels, (y2, x2) exclusive.
      rng: a ``numpy.random.Generator`` (default: a fresh one).
    Returns:
      [count, (y1, x1, y2, x2)] int32 pixels of the molded image, each at least 1 px high and wide.
    """
    del gt_class_ids
    rng = np.random.default_rng() if rng is None else rng
    height, width = int(image_shape[0]), int(image_shape[1])
    gt_boxes = np.asarray(gt_boxes, np.int64).reshape(-1, 4)
    per_box = int(0.9 * count / len(gt_boxes)) if len(gt_boxes) else 0
    regions = [(max(y1 - (y2 - y1), 0), min(y2 + (y2 - y1), height), max(x1 - (x2 - x1), 0),
                min(x2 + (x2 - x1), width)) for y1, x1, y2, x2 in gt_boxes]
    regions.append((0, height, 0, width))  # the rest, anywhere
    counts = [per_box] * len(gt_boxes) + [count - per_box * len(gt_boxes)]
    rois = [_random_boxes(rng, n, *region) for region, n in zip(regions, counts) if n]
    return np.concatenate(rois).astype(np.int32) if rois else np.zeros((0, 4), np.int32)


def _random_boxes(rng, count: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """[count, 4] boxes with corners in rows [top, bottom] and columns [left, right], each >= 1 px."""
    ys = np.sort(rng.integers(top, max(bottom, top + 1) + 1, (count, 2)), axis=1)
    xs = np.sort(rng.integers(left, max(right, left + 1) + 1, (count, 2)), axis=1)
    ys[:, 1] = np.maximum(ys[:, 1], ys[:, 0] + 1)
    xs[:, 1] = np.maximum(xs[:, 1], xs[:, 0] + 1)
    return np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config, seed=None):
    """The box and mask heads' targets of ``rpn_rois``, in matterport's NumPy layout.

    Args:
      rpn_rois: [N, (y1, x1, y2, x2)] int pixels of the molded image (``config.IMAGE_SHAPE``).
      gt_class_ids: [G] int. gt_boxes: [G, 4] int pixels. gt_masks: [h, w, G] bool: mini masks
        (``config.USE_MINI_MASK``) or full masks of the molded image.
      seed: optional int, for a reproducible choice of ROIs.
    Returns:
      rois: [T, (y1, x1, y2, x2)] int32 pixels, positives first (T = TRAIN_ROIS_PER_IMAGE, zero rows last).
      class_ids: [T] int32 (0: negative or padding).
      bbox: [T, NUM_CLASSES, (dy, dx, log dh, log dw)] float32, each ROI's deltas in its class's row,
        divided by BBOX_STD_DEV.
      masks: [T, mh, mw, NUM_CLASSES] float32, each positive ROI's 0/1 mask in its class's channel.
    """
    import tensorflow as tf

    from mrcnn.ops.roi_targets import detection_targets, mask_targets

    image_hw = tuple(config.IMAGE_SHAPE[:2])
    masks = np.transpose(np.asarray(gt_masks, bool), (2, 0, 1))  # [G, h, w]
    targets = detection_targets(
        tf.constant(norm_boxes(np.asarray(rpn_rois, np.float32), image_hw), tf.float32),
        tf.constant(np.asarray(gt_class_ids, np.int32)),
        tf.constant(norm_boxes(np.asarray(gt_boxes, np.float32), image_hw), tf.float32),
        {"masks": tf.constant(masks)},
        {"mask": lambda rois, matched, gt: mask_targets(rois, matched, gt, mask_shape=tuple(config.MASK_SHAPE),
                                                        use_mini_mask=config.USE_MINI_MASK)},
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE, roi_positive_ratio=config.ROI_POSITIVE_RATIO,
        bbox_std_dev=np.asarray(config.BBOX_STD_DEV, np.float32),
        seed=None if seed is None else tf.constant([seed, 0], tf.int64))
    rois = np.asarray(targets["rois"])
    class_ids = np.asarray(targets["class_ids"]).astype(np.int32)
    rows = np.arange(len(class_ids))
    bbox = np.zeros((len(rows), config.NUM_CLASSES, 4), np.float32)
    bbox[rows, class_ids] = np.asarray(targets["deltas"])
    bbox[class_ids == 0] = 0
    mask = np.zeros((len(rows), *config.MASK_SHAPE, config.NUM_CLASSES), np.float32)
    mask[rows, :, :, class_ids] = np.asarray(targets["mask"])
    mask[..., 0] = 0
    pixels = np.where(np.any(rois != 0, axis=1, keepdims=True), denorm_boxes(rois, image_hw), 0)
    return pixels.astype(np.int32), class_ids, bbox, mask
