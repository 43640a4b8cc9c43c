"""Targets of the second stage for one image: ROI sampling, box targets, and each ROI head's targets.

matterport's ``detection_targets_graph``, in TensorFlow (it runs inside the training
graph, wrapped by ``mrcnn.layers.detection_targets.DetectionTargetLayer``):
positives (IoU >= :data:`ROI_POSITIVE_IOU` with an instance box) are shuffled and capped
at int(T * ratio); negatives (IoU below it and not touching a crowd) are shuffled and
capped at int(P / ratio) - P; ground-truth boxes are not added to the proposals.

Every ROI head (mask, and any extra head) adds its own targets for the positive ROIs
through a function ``(positive_rois, matched_gt, gt) -> [P, ...]`` (see
:func:`detection_targets`); :func:`mask_targets` is the mask head's.
Ground-truth class ids and crowd handling: see :mod:`mrcnn.ops.sampling`.
"""
from __future__ import annotations

from typing import Callable, Mapping

import tensorflow as tf

from mrcnn.ops.boxes import box_iou, box_refinement, nonzero_box_mask
from mrcnn.ops.masks import mask_from_resampled
from mrcnn.ops.sampling import (DEFAULT_STD_DEV, best_gt_index, crowd_free_mask, shuffle, split_instances_and_crowds,
                                split_seed)

ROI_POSITIVE_IOU = 0.5  # proposal positive at IoU >= this, negative below it

# A head's target function: (positive ROIs [P, 4] normalized, matched ground-truth row [P] int64,
# ground truth {"class_ids": [I], "boxes": [I, 4] normalized, "masks": [I, h, w], field: [I, ...]}) -> [P, ...].
HeadTargetFn = Callable[[tf.Tensor, tf.Tensor, Mapping[str, tf.Tensor]], tf.Tensor]


def _sample_rois(overlaps, crowd_free, train_rois_per_image, roi_positive_ratio, seed):
    """matterport's ROI sampling: shuffled positives (capped), then shuffled negatives.

    Args:
      overlaps: [N, G] float32 IoU of proposals with instance boxes.
      crowd_free: [N] bool.
    Returns:
      positive_ix: [P] int64, negative_ix: [M] int64, each in random order, with
      P <= int(T * ratio) and M = int(P / ratio) - P at most (float32 arithmetic as matterport).
    """
    positive_seed, negative_seed = split_seed(seed, 2)
    best_iou = tf.reduce_max(overlaps, axis=1)  # [N], -inf when G = 0
    positive_ix = tf.where(best_iou >= ROI_POSITIVE_IOU)[:, 0]
    negative_ix = tf.where(tf.logical_and(best_iou < ROI_POSITIVE_IOU, crowd_free))[:, 0]
    max_positives = int(train_rois_per_image * roi_positive_ratio)
    positive_ix = shuffle(positive_ix, positive_seed)[:max_positives]
    positive_count = tf.shape(positive_ix)[0]
    inverse_ratio = tf.constant(1.0 / roi_positive_ratio, tf.float32)
    negative_count = tf.cast(inverse_ratio * tf.cast(positive_count, tf.float32), tf.int32) - positive_count
    negative_ix = shuffle(negative_ix, negative_seed)[:negative_count]
    return positive_ix, negative_ix


def mini_mask_boxes(rois, gt_boxes):
    """ROIs moved into the normalized frame of their ground-truth box (= of its mini mask).

    Args:
      rois: [P, (y1, x1, y2, x2)] float32, normalized image frame.
      gt_boxes: [P, (y1, x1, y2, x2)] float32, the matched ground-truth boxes, same frame.
    Returns:
      [P, (y1, x1, y2, x2)] float32, 0..1 spans the ground-truth box.
    """
    gt_height = gt_boxes[:, 2] - gt_boxes[:, 0]
    gt_width = gt_boxes[:, 3] - gt_boxes[:, 1]
    y1 = (rois[:, 0] - gt_boxes[:, 0]) / gt_height
    x1 = (rois[:, 1] - gt_boxes[:, 1]) / gt_width
    y2 = (rois[:, 2] - gt_boxes[:, 0]) / gt_height
    x2 = (rois[:, 3] - gt_boxes[:, 1]) / gt_width
    return tf.stack([y1, x1, y2, x2], axis=1)


def mask_targets(positive_rois, matched_gt, gt, *, mask_shape=(28, 28), use_mini_mask=True):
    """The mask head's targets: each matched ground-truth mask cut to its ROI and resized, then rounded.

    Args:
      positive_rois: [P, (y1, x1, y2, x2)] float32, normalized image frame.
      matched_gt: [P] int, the ground-truth row of each ROI.
      gt: ground truth with "boxes" [I, 4] normalized and "masks" [I, h, w] (mini masks, the box's
        content, when ``use_mini_mask``; else full masks of the molded image).
      mask_shape: (mh, mw) of the targets (MASK_SHAPE).
    Returns:
      [P, mh, mw] float32 of 0.0 / 1.0 (bilinear crop, then the mask threshold of mrcnn.ops.masks).
    """
    crop_boxes = positive_rois
    if use_mini_mask:
        crop_boxes = mini_mask_boxes(positive_rois, tf.gather(gt["boxes"], matched_gt))
    masks = tf.cast(gt["masks"][..., tf.newaxis], tf.float32)  # [I, h, w, 1]
    crops = tf.image.crop_and_resize(masks, crop_boxes, tf.cast(matched_gt, tf.int32),
                                     list(mask_shape))  # [P, mh, mw, 1]
    return tf.cast(mask_from_resampled(tf.squeeze(crops, axis=3)), tf.float32)  # matterport's tf.round: 0.5 -> 0


def _pad_rows(tensor, rows):
    """Zero-pads (or cuts) the first axis to exactly ``rows``."""
    tensor = tensor[:rows]
    padding = [(0, rows - tf.shape(tensor)[0])] + [(0, 0)] * (tensor.shape.rank - 1)
    return tf.pad(tensor, padding)


def detection_targets(proposals, gt_class_ids, gt_boxes, gt_fields: Mapping[str, tf.Tensor],
                      head_targets: Mapping[str, HeadTargetFn], *, train_rois_per_image: int,
                      roi_positive_ratio: float, bbox_std_dev=DEFAULT_STD_DEV, seed=None) -> dict:
    """Targets of the box head and every ROI head for one image (matterport's detection_targets_graph).

    Args:
      proposals: [N, (y1, x1, y2, x2)] float32, normalized, zero-padded.
      gt_class_ids: [G] int; > 0 instance, < 0 crowd, 0 padding.
      gt_boxes: [G, (y1, x1, y2, x2)] float32, normalized, zero rows for padding.
      gt_fields: per-instance ground truth, instance axis first: "masks" [G, h, w] and the
        extra heads' fields [G, ...]. Rows are filtered like the boxes before the heads see them.
      head_targets: {head name: target function} (see ``HeadTargetFn``).
      train_rois_per_image: T, rows of every output (TRAIN_ROIS_PER_IMAGE).
      roi_positive_ratio: share of positives aimed for (ROI_POSITIVE_RATIO).
      bbox_std_dev: [4] the deltas are divided by this (BBOX_STD_DEV).
      seed: optional [2] int tensor; stateless shuffles when given.
    Returns:
      dict of [T, ...] tensors, positives first, then negatives, then zero rows:
        rois [T, (y1, x1, y2, x2)] float32 normalized;
        class_ids [T] int32, the matched instance's class for positives, else 0;
        deltas [T, (dy, dx, log dh, log dw)] float32, ROI -> matched box / bbox_std_dev (0 if not positive);
        <head name> [T, ...] each head's targets (0 if not positive).
    """
    proposals = tf.cast(proposals, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    proposals = tf.boolean_mask(proposals, nonzero_box_mask(proposals))
    has_box = tf.where(nonzero_box_mask(gt_boxes))[:, 0]
    gt_class_ids = tf.cast(tf.gather(gt_class_ids, has_box), tf.int32)
    gt_boxes = tf.gather(gt_boxes, has_box)

    instance_ix, crowd_ix = split_instances_and_crowds(gt_class_ids)
    crowd_free = crowd_free_mask(proposals, tf.gather(gt_boxes, crowd_ix))  # [N]
    keep = tf.gather(has_box, instance_ix)  # rows of the original ground truth that are instances
    gt = {name: tf.gather(values, keep) for name, values in gt_fields.items()}
    gt["class_ids"] = tf.gather(gt_class_ids, instance_ix)
    gt["boxes"] = tf.gather(gt_boxes, instance_ix)
    overlaps = box_iou(proposals, gt["boxes"])  # [N, I]

    positive_ix, negative_ix = _sample_rois(overlaps, crowd_free, train_rois_per_image,
                                            roi_positive_ratio, seed)
    positive_rois = tf.gather(proposals, positive_ix)  # [P, 4]
    matched_gt = best_gt_index(tf.gather(overlaps, positive_ix))  # [P]
    deltas = box_refinement(positive_rois, tf.gather(gt["boxes"], matched_gt))
    deltas = deltas / tf.constant(bbox_std_dev, tf.float32)

    rows = train_rois_per_image
    targets = {
        "rois": _pad_rows(tf.concat([positive_rois, tf.gather(proposals, negative_ix)], axis=0), rows),
        "class_ids": _pad_rows(tf.gather(gt["class_ids"], matched_gt), rows),
        "deltas": _pad_rows(deltas, rows),
    }
    for name, target_fn in head_targets.items():
        targets[name] = _pad_rows(target_fn(positive_rois, matched_gt, gt), rows)
    for value in targets.values():
        value.set_shape([rows] + value.shape.as_list()[1:])
    return targets
