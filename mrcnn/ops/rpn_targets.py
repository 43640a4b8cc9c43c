"""RPN training targets of one image: anchor labels and deltas (matterport's ``build_rpn_targets``).

Written in TensorFlow so the targets are built inside the ``tf.data`` map of the input
pipeline. Ground-truth class ids and crowd handling: see :mod:`mrcnn.ops.sampling`.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.ops.boxes import box_iou, box_refinement
from mrcnn.ops.sampling import (DEFAULT_STD_DEV, best_gt_index, crowd_free_mask, keep_at_most,
                                split_instances_and_crowds, split_seed)

RPN_POSITIVE_IOU = 0.7  # anchor positive at IoU >= this with some ground-truth box
RPN_NEGATIVE_IOU = 0.3  # anchor negative when its best IoU is below this


def _rpn_labels(overlaps, crowd_free):
    """matterport's anchor labelling, before subsampling.

    Order matters and is matterport's: negatives first, then each ground-truth box's
    best anchor(s) (every anchor whose IoU equals that box's maximum, ties included,
    whatever the value), then every anchor at IoU >= RPN_POSITIVE_IOU.

    Args:
      overlaps: [A, G] IoU of anchors with the instance boxes (G may be 0).
      crowd_free: [A] bool, see sampling.crowd_free_mask.
    Returns:
      positive: [A] bool, negative: [A] bool (disjoint).
    """
    best_iou = tf.reduce_max(overlaps, axis=1)  # [A], -inf when G = 0
    per_gt_best = tf.reduce_max(overlaps, axis=0, keepdims=True)  # [1, G]
    is_best_for_a_gt = tf.reduce_any(tf.equal(overlaps, per_gt_best), axis=1)  # [A]
    positive = tf.logical_or(is_best_for_a_gt, best_iou >= RPN_POSITIVE_IOU)
    negative = tf.logical_and(tf.logical_and(best_iou < RPN_NEGATIVE_IOU, crowd_free),
                              tf.logical_not(positive))
    return positive, negative


def build_rpn_targets(anchors, gt_class_ids, gt_boxes, *, anchors_per_image: int,
                      rpn_bbox_std_dev=DEFAULT_STD_DEV, seed=None):
    """RPN training targets of one image (matterport's build_rpn_targets, in TensorFlow).

    Graph-safe: usable in ``tf.data`` ``map`` with a static or dynamic number of boxes.
    IoUs are computed in float64 like matterport's NumPy code, so threshold and tie
    decisions match it exactly when ``anchors`` are its float64 anchors; the deltas come
    from :func:`boxes.box_refinement` in float32 (matterport: float64, then cast), which
    differs by float32 rounding only.

    matterport's rules are kept as they are, including two edge cases: an instance box
    that overlaps no anchor makes every anchor with IoU 0 positive (all tie for its best),
    so callers must drop empty boxes first; and an image without instances (which
    matterport's generator skips) gets only negatives and neutrals here.

    Args:
      anchors: [A, (y1, x1, y2, x2)] float32 or float64, pixels of the molded image.
      gt_class_ids: [G] int; > 0 instance, < 0 crowd, 0 padding (ignored).
      gt_boxes: [G, (y1, x1, y2, x2)] pixels of the molded image, (y2, x2) exclusive; any numeric dtype.
      anchors_per_image: anchors sampled per image (RPN_TRAIN_ANCHORS_PER_IMAGE); at most half positive.
      rpn_bbox_std_dev: [4] the deltas are divided by this (RPN_BBOX_STD_DEV).
      seed: optional [2] int tensor; stateless sampling when given.
    Returns:
      rpn_match: [A] int32, 1 positive, -1 negative, 0 neutral (not sampled or in between).
      rpn_bbox: [anchors_per_image, (dy, dx, log dh, log dw)] float32, the deltas from each
        positive anchor (in anchor order) to its best-IoU instance box, divided by
        ``rpn_bbox_std_dev``; zero rows after the last positive.
    """
    anchors = tf.cast(anchors, tf.float64)
    gt_class_ids = tf.convert_to_tensor(gt_class_ids)
    gt_boxes = tf.cast(gt_boxes, tf.float64)
    instance_ix, crowd_ix = split_instances_and_crowds(gt_class_ids)
    instance_boxes = tf.gather(gt_boxes, instance_ix)  # [I, 4]
    crowd_free = crowd_free_mask(anchors, tf.gather(gt_boxes, crowd_ix))  # [A]
    overlaps = box_iou(anchors, instance_boxes)  # [A, I] float64

    positive, negative = _rpn_labels(overlaps, crowd_free)
    positive_seed, negative_seed = split_seed(seed, 2)
    positive = keep_at_most(positive, anchors_per_image // 2, positive_seed)
    positive_count = tf.reduce_sum(tf.cast(positive, tf.int32))
    negative = keep_at_most(negative, anchors_per_image - positive_count, negative_seed)
    rpn_match = tf.where(positive, 1, tf.where(negative, -1, 0))  # [A] int32

    positive_ix = tf.where(positive)[:, 0]  # [P], anchor order
    matched_gt = best_gt_index(tf.gather(overlaps, positive_ix))  # [P]
    deltas = box_refinement(tf.gather(anchors, positive_ix), tf.gather(instance_boxes, matched_gt))
    deltas = deltas / tf.constant(rpn_bbox_std_dev, tf.float32)  # [P, 4]
    rpn_bbox = tf.pad(deltas, [(0, anchors_per_image - tf.shape(deltas)[0]), (0, 0)])
    rpn_match.set_shape(anchors.shape[:1])
    rpn_bbox.set_shape([anchors_per_image, 4])
    return rpn_match, rpn_bbox
