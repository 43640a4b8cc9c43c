"""Matching and sampling helpers shared by the RPN and ROI targets (TensorFlow).

Class ids of ground truth: ``> 0`` an instance, ``< 0`` a crowd box (COCO ``iscrowd``),
``0`` a padding row (ignored). Crowd boxes never become targets; they only stop the
anchors / proposals that touch them (IoU >= :data:`CROWD_IOU`) from being used as negatives.

Sampling is random, as in matterport. Pass ``seed`` (a ``[2]`` int tensor) to use the
stateless random ops instead, which makes a call reproducible.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.ops.boxes import box_iou

CROWD_IOU = 0.001  # touching a crowd box at this IoU or more: never a negative
DEFAULT_STD_DEV = (0.1, 0.1, 0.2, 0.2)  # matterport's RPN_BBOX_STD_DEV and BBOX_STD_DEV


def split_instances_and_crowds(gt_class_ids):
    """Row indices of real instances (class > 0) and of crowd boxes (class < 0).

    Args:
      gt_class_ids: [G] int class ids; 0 rows (padding) are in neither list.
    Returns:
      instance_ix: [I] int64, crowd_ix: [K] int64.
    """
    return tf.where(gt_class_ids > 0)[:, 0], tf.where(gt_class_ids < 0)[:, 0]


def crowd_free_mask(boxes, crowd_boxes):
    """Which boxes do not touch any crowd box.

    Args:
      boxes: [N, (y1, x1, y2, x2)]; crowd_boxes: [K, (y1, x1, y2, x2)], same frame and dtype.
    Returns:
      [N] bool, True where the best IoU with a crowd box is < CROWD_IOU (always True when K = 0,
      because the max over an empty axis is -inf).
    """
    return tf.reduce_max(box_iou(boxes, crowd_boxes), axis=1) < CROWD_IOU


def best_gt_index(overlaps):
    """Column of the highest IoU in each row (the first one on ties), also when there are no columns.

    Args:
      overlaps: [N, G] IoU.
    Returns:
      [N] int64 (zeros when G = 0; callers only use it for rows that have a match).
    """
    return tf.cond(tf.shape(overlaps)[1] > 0,
                   lambda: tf.argmax(overlaps, axis=1),
                   lambda: tf.zeros([tf.shape(overlaps)[0]], tf.int64))


def shuffle(values, seed):
    """Random permutation of a 1-D tensor; stateless when ``seed`` ([2] int) is given."""
    if seed is None:
        return tf.random.shuffle(values)
    return tf.random.experimental.stateless_shuffle(values, seed)


def split_seed(seed, count):
    """``count`` independent [2] seeds from one, or ``count`` Nones."""
    if seed is None:
        return [None] * count
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=count))


def keep_at_most(mask, max_count, seed):
    """Keeps a uniformly random subset of at most ``max_count`` of the True entries.

    Args:
      mask: [N] bool; max_count: int scalar (Python or tensor).
    Returns:
      [N] bool, a subset of ``mask`` (equal to it when it has <= max_count True entries).
    """
    chosen = shuffle(tf.where(mask)[:, 0], seed)[:max_count]  # [<= max_count] int64
    hits = tf.scatter_nd(chosen[:, tf.newaxis], tf.ones_like(chosen, tf.int32),
                         tf.shape(mask, out_type=tf.int64))
    return hits > 0
