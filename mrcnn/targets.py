"""Training targets: RPN anchor labels and deltas, and the heads' ROI / class / delta / mask targets.

Both follow matterport's semantics (``build_rpn_targets`` and ``detection_targets_graph``)
and are written in TensorFlow, so the RPN targets can be built inside a ``tf.data`` map
and the detection targets inside the training graph.

Class ids of ground truth: ``> 0`` an instance, ``< 0`` a crowd box (COCO ``iscrowd``),
``0`` a padding row (ignored). Crowd boxes never become targets; they only stop the
anchors / proposals that touch them (IoU >= 0.001) from being used as negatives.

Sampling is random, as in matterport. Pass ``seed`` (a ``[2]`` int tensor) to use the
stateless random ops instead, which makes a call reproducible.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.boxes import box_iou, box_refinement, nonzero_box_mask

RPN_POSITIVE_IOU = 0.7  # anchor positive at IoU >= this with some ground-truth box
RPN_NEGATIVE_IOU = 0.3  # anchor negative when its best IoU is below this
ROI_POSITIVE_IOU = 0.5  # proposal positive at IoU >= this, negative below it
CROWD_IOU = 0.001  # touching a crowd box at this IoU or more: never a negative
DEFAULT_STD_DEV = (0.1, 0.1, 0.2, 0.2)


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

def _split_instances_and_crowds(gt_class_ids):
    """Row indices of real instances (class > 0) and of crowd boxes (class < 0).

    Args:
      gt_class_ids: [G] int class ids; 0 rows (padding) are in neither list.
    Returns:
      instance_ix: [I] int64, crowd_ix: [K] int64.
    """
    return tf.where(gt_class_ids > 0)[:, 0], tf.where(gt_class_ids < 0)[:, 0]


def _crowd_free(boxes, crowd_boxes):
    """Which boxes do not touch any crowd box.

    Args:
      boxes: [N, (y1, x1, y2, x2)]; crowd_boxes: [K, (y1, x1, y2, x2)], same frame and dtype.
    Returns:
      [N] bool, True where the best IoU with a crowd box is < CROWD_IOU (always True when K = 0,
      because the max over an empty axis is -inf).
    """
    return tf.reduce_max(box_iou(boxes, crowd_boxes), axis=1) < CROWD_IOU


def _best_gt_index(overlaps):
    """Column of the highest IoU in each row (the first one on ties), also when there are no columns.

    Args:
      overlaps: [N, G] IoU.
    Returns:
      [N] int64 (zeros when G = 0; callers only use it for rows that have a match).
    """
    return tf.cond(tf.shape(overlaps)[1] > 0,
                   lambda: tf.argmax(overlaps, axis=1),
                   lambda: tf.zeros([tf.shape(overlaps)[0]], tf.int64))


def _shuffle(values, seed):
    """Random permutation of a 1-D tensor; stateless when ``seed`` ([2] int) is given."""
    if seed is None:
        return tf.random.shuffle(values)
    return tf.random.experimental.stateless_shuffle(values, seed)


def _split_seed(seed, count):
    """``count`` independent [2] seeds from one, or ``count`` Nones."""
    if seed is None:
        return [None] * count
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=count))


def _keep_at_most(mask, max_count, seed):
    """Keeps a uniformly random subset of at most ``max_count`` of the True entries.

    Args:
      mask: [N] bool; max_count: int scalar (Python or tensor).
    Returns:
      [N] bool, a subset of ``mask`` (equal to it when it has <= max_count True entries).
    """
    chosen = _shuffle(tf.where(mask)[:, 0], seed)[:max_count]  # [<= max_count] int64
    hits = tf.scatter_nd(chosen[:, tf.newaxis], tf.ones_like(chosen, tf.int32),
                         tf.shape(mask, out_type=tf.int64))
    return hits > 0


# ---------------------------------------------------------------------------
# RPN targets (one image; runs in the data pipeline)
# ---------------------------------------------------------------------------

def _rpn_labels(overlaps, crowd_free):
    """matterport's anchor labelling, before subsampling.

    Order matters and is matterport's: negatives first, then each ground-truth box's
    best anchor(s) (every anchor whose IoU equals that box's maximum, ties included,
    whatever the value), then every anchor at IoU >= RPN_POSITIVE_IOU.

    Args:
      overlaps: [A, G] IoU of anchors with the instance boxes (G may be 0).
      crowd_free: [A] bool, see _crowd_free.
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


def build_rpn_targets(anchors, gt_class_ids, gt_boxes, *, anchors_per_image=256,
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
    instance_ix, crowd_ix = _split_instances_and_crowds(gt_class_ids)
    instance_boxes = tf.gather(gt_boxes, instance_ix)  # [I, 4]
    crowd_free = _crowd_free(anchors, tf.gather(gt_boxes, crowd_ix))  # [A]
    overlaps = box_iou(anchors, instance_boxes)  # [A, I] float64

    positive, negative = _rpn_labels(overlaps, crowd_free)
    positive_seed, negative_seed = _split_seed(seed, 2)
    positive = _keep_at_most(positive, anchors_per_image // 2, positive_seed)
    positive_count = tf.reduce_sum(tf.cast(positive, tf.int32))
    negative = _keep_at_most(negative, anchors_per_image - positive_count, negative_seed)
    rpn_match = tf.where(positive, 1, tf.where(negative, -1, 0))  # [A] int32

    positive_ix = tf.where(positive)[:, 0]  # [P], anchor order
    matched_gt = _best_gt_index(tf.gather(overlaps, positive_ix))  # [P]
    deltas = box_refinement(tf.gather(anchors, positive_ix), tf.gather(instance_boxes, matched_gt))
    deltas = deltas / tf.constant(rpn_bbox_std_dev, tf.float32)  # [P, 4]
    rpn_bbox = tf.pad(deltas, [(0, anchors_per_image - tf.shape(deltas)[0]), (0, 0)])
    rpn_match.set_shape(anchors.shape[:1])
    rpn_bbox.set_shape([anchors_per_image, 4])
    return rpn_match, rpn_bbox


# ---------------------------------------------------------------------------
# Detection targets (one image; runs in the training graph)
# ---------------------------------------------------------------------------

def _sample_rois(overlaps, crowd_free, train_rois_per_image, roi_positive_ratio, seed):
    """matterport's ROI sampling: shuffled positives (capped), then shuffled negatives.

    Args:
      overlaps: [N, G] float32 IoU of proposals with instance boxes.
      crowd_free: [N] bool.
    Returns:
      positive_ix: [P] int64, negative_ix: [M] int64, each in random order, with
      P <= int(T * ratio) and M = int(P / ratio) - P at most (float32 arithmetic as matterport).
    """
    positive_seed, negative_seed = _split_seed(seed, 2)
    best_iou = tf.reduce_max(overlaps, axis=1)  # [N], -inf when G = 0
    positive_ix = tf.where(best_iou >= ROI_POSITIVE_IOU)[:, 0]
    negative_ix = tf.where(tf.logical_and(best_iou < ROI_POSITIVE_IOU, crowd_free))[:, 0]
    max_positives = int(train_rois_per_image * roi_positive_ratio)
    positive_ix = _shuffle(positive_ix, positive_seed)[:max_positives]
    positive_count = tf.shape(positive_ix)[0]
    inverse_ratio = tf.constant(1.0 / roi_positive_ratio, tf.float32)
    negative_count = tf.cast(inverse_ratio * tf.cast(positive_count, tf.float32), tf.int32) - positive_count
    negative_ix = _shuffle(negative_ix, negative_seed)[:negative_count]
    return positive_ix, negative_ix


def _mini_mask_boxes(rois, gt_boxes):
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


def _mask_targets(gt_masks, crop_boxes, matched_gt, mask_shape):
    """Crops each matched ground-truth mask to its box and resizes it (bilinear), then rounds.

    Args:
      gt_masks: [h, w, G] bool or float, instance masks (mini or full).
      crop_boxes: [P, (y1, x1, y2, x2)] float32, normalized to the mask's frame.
      matched_gt: [P] int, which mask each box crops.
      mask_shape: (mh, mw).
    Returns:
      [P, mh, mw] float32 of 0.0 / 1.0 (round half to even).
    """
    masks = tf.cast(tf.transpose(gt_masks, [2, 0, 1])[..., tf.newaxis], tf.float32)  # [G, h, w, 1]
    crops = tf.image.crop_and_resize(masks, crop_boxes, tf.cast(matched_gt, tf.int32),
                                     list(mask_shape))  # [P, mh, mw, 1]
    return tf.round(tf.squeeze(crops, axis=3))


def _pad_rows(tensor, rows):
    """Zero-pads (or cuts) the first axis to exactly ``rows``."""
    tensor = tensor[:rows]
    padding = [(0, rows - tf.shape(tensor)[0])] + [(0, 0)] * (tensor.shape.rank - 1)
    return tf.pad(tensor, padding)


def detection_targets(proposals, gt_class_ids, gt_boxes, gt_masks, *, train_rois_per_image=200,
                      roi_positive_ratio=0.33, bbox_std_dev=DEFAULT_STD_DEV, mask_shape=(28, 28),
                      use_mini_mask=True, seed=None):
    """Targets of the heads for one image (matterport's detection_targets_graph).

    Zero rows of ``proposals`` and ``gt_boxes`` are dropped first. Positives (IoU >= 0.5 with
    an instance box) are shuffled and capped at int(T * ratio); negatives (IoU < 0.5 and not
    touching a crowd) are shuffled and capped at int(P / ratio) - P. Ground-truth boxes are not
    added to the proposals.

    Args:
      proposals: [N, (y1, x1, y2, x2)] float32, normalized, zero-padded.
      gt_class_ids: [G] int; > 0 instance, < 0 crowd, 0 padding.
      gt_boxes: [G, (y1, x1, y2, x2)] float32, normalized, zero rows for padding.
      gt_masks: [h, w, G] bool or float; mini masks (the box's content, e.g. 56x56) when
        ``use_mini_mask``, else full masks of the molded image.
      train_rois_per_image: T, rows of every output (TRAIN_ROIS_PER_IMAGE).
      roi_positive_ratio: share of positives aimed for (ROI_POSITIVE_RATIO).
      bbox_std_dev: [4] the deltas are divided by this (BBOX_STD_DEV).
      mask_shape: (mh, mw) of the mask targets (MASK_SHAPE).
      use_mini_mask: whether ``gt_masks`` are mini masks.
      seed: optional [2] int tensor; stateless shuffles when given.
    Returns:
      rois: [T, (y1, x1, y2, x2)] float32, normalized: positives, then negatives, then zeros.
      roi_class_ids: [T] int32, the matched instance's class for positives, else 0.
      deltas: [T, (dy, dx, log dh, log dw)] float32, ROI -> matched box, divided by bbox_std_dev;
        0 if not positive.
      masks: [T, mh, mw] float32 0/1, the matched mask inside the ROI; 0 if not positive.
    """
    proposals = tf.cast(proposals, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    proposals = tf.boolean_mask(proposals, nonzero_box_mask(proposals))
    has_box = nonzero_box_mask(gt_boxes)
    gt_class_ids = tf.cast(tf.boolean_mask(gt_class_ids, has_box), tf.int32)
    gt_boxes = tf.boolean_mask(gt_boxes, has_box)
    gt_masks = tf.gather(gt_masks, tf.where(has_box)[:, 0], axis=2)

    instance_ix, crowd_ix = _split_instances_and_crowds(gt_class_ids)
    crowd_free = _crowd_free(proposals, tf.gather(gt_boxes, crowd_ix))  # [N]
    gt_class_ids = tf.gather(gt_class_ids, instance_ix)
    gt_boxes = tf.gather(gt_boxes, instance_ix)
    gt_masks = tf.gather(gt_masks, instance_ix, axis=2)
    overlaps = box_iou(proposals, gt_boxes)  # [N, I]

    positive_ix, negative_ix = _sample_rois(overlaps, crowd_free, train_rois_per_image,
                                            roi_positive_ratio, seed)
    positive_rois = tf.gather(proposals, positive_ix)  # [P, 4]
    matched_gt = _best_gt_index(tf.gather(overlaps, positive_ix))  # [P]
    matched_boxes = tf.gather(gt_boxes, matched_gt)  # [P, 4]
    deltas = box_refinement(positive_rois, matched_boxes) / tf.constant(bbox_std_dev, tf.float32)
    crop_boxes = _mini_mask_boxes(positive_rois, matched_boxes) if use_mini_mask else positive_rois
    masks = _mask_targets(gt_masks, crop_boxes, matched_gt, mask_shape)  # [P, mh, mw]

    rows = train_rois_per_image
    rois = _pad_rows(tf.concat([positive_rois, tf.gather(proposals, negative_ix)], axis=0), rows)
    roi_class_ids = _pad_rows(tf.gather(gt_class_ids, matched_gt), rows)
    deltas = _pad_rows(deltas, rows)
    masks = _pad_rows(masks, rows)
    rois.set_shape([rows, 4])
    roi_class_ids.set_shape([rows])
    deltas.set_shape([rows, 4])
    masks.set_shape([rows] + list(mask_shape))
    return rois, roi_class_ids, deltas, masks


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Keras wrapper of :func:`detection_targets` over a batch (image by image, via tf.map_fn).

    call([proposals [B, N, 4], gt_class_ids [B, G], gt_boxes [B, G, 4] normalized,
          gt_masks [B, h, w, G]]) -> [rois [B, T, 4], target_class_ids [B, T] int32,
          target_bbox [B, T, 4], target_mask [B, T, mh, mw]].
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, **kwargs):
        super().__init__(**kwargs)
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]
        self.mask_shape = [int(v) for v in mask_shape]
        self.use_mini_mask = bool(use_mini_mask)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        rows, (mask_h, mask_w) = self.train_rois_per_image, self.mask_shape

        def one_image(args):
            return detection_targets(
                *args, train_rois_per_image=rows, roi_positive_ratio=self.roi_positive_ratio,
                bbox_std_dev=self.bbox_std_dev, mask_shape=self.mask_shape,
                use_mini_mask=self.use_mini_mask)

        signature = (tf.TensorSpec([rows, 4], tf.float32), tf.TensorSpec([rows], tf.int32),
                     tf.TensorSpec([rows, 4], tf.float32), tf.TensorSpec([rows, mask_h, mask_w], tf.float32))
        outputs = tf.map_fn(one_image, (proposals, gt_class_ids, gt_boxes, gt_masks),
                            fn_output_signature=signature)
        return list(outputs)

    def compute_output_shape(self, input_shape):
        batch, rows = input_shape[0][0], self.train_rois_per_image
        return [(batch, rows, 4), (batch, rows), (batch, rows, 4), (batch, rows, *self.mask_shape)]

    def get_config(self):
        config = super().get_config()
        config.update(train_rois_per_image=self.train_rois_per_image,
                      roi_positive_ratio=self.roi_positive_ratio, bbox_std_dev=self.bbox_std_dev,
                      mask_shape=self.mask_shape, use_mini_mask=self.use_mini_mask)
        return config
