"""The five Mask R-CNN losses, the landmark head's, and the L2 weight decay, as pure functions (matterport's numerics).

Every function returns a float32 scalar tensor. Predictions are cast to float32 first
(safe under mixed precision). ``mrcnn.train.losses`` says which model outputs each one
reads; the model's ``train_step`` sums them, each times its LOSS_WEIGHTS entry, plus
:func:`weight_decay_loss`.

Zero samples (no non-neutral anchor, no positive anchor or ROI) give 0.0, as in matterport,
still connected to the predictions, so their gradients are zeros (never None or NaN).

Two deliberate differences from matterport, both only where matterport is undefined or wrong:

* ``mrcnn_class_loss`` returns 0.0 instead of NaN when the active-class weights of the
  predicted classes sum to 0 (matterport divides 0 by 0).
* ``mrcnn_class_loss`` looks up each image's own ``active_class_ids``; matterport uses the
  first image's for the whole batch (a TODO in its code). The two agree whenever all images
  of a batch come from the same dataset, which is always the case in fseg.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.ops.keypoint_targets import bilinear_cells_graph

# Keras 2's backend epsilon: binary cross-entropy clips probabilities to [eps, 1 - eps].
_EPSILON = 1e-7
# Weight-name parts skipped by the weight decay (BatchNorm scale and offset), as in matterport.
_NO_DECAY_NAME_PARTS = ("gamma", "beta")


def _mean_or_zero(values):
    """Mean of all elements, or 0.0 when there are none.

    ``tf.where`` rather than ``tf.cond``: the result stays connected to the inputs, so a
    zero-sample batch still yields (zero, finite) gradients instead of None, also eagerly.
    The mean of an empty tensor is NaN, but its gradient is an empty tensor, so no NaN leaks.
    """
    return tf.where(tf.size(values) > 0, tf.reduce_mean(values), 0.0)


def _smooth_l1(y_true, y_pred):
    """Elementwise smooth-L1 (Huber with delta 1): 0.5 d^2 if d < 1 else d - 0.5, d = |y_true - y_pred|."""
    diff = tf.abs(y_true - y_pred)
    below_one = tf.cast(diff < 1.0, tf.float32)
    return below_one * 0.5 * tf.square(diff) + (1.0 - below_one) * (diff - 0.5)


def _squeeze_match(rpn_match):
    """[B, A] or [B, A, 1] anchor labels -> [B, A] int32."""
    rpn_match = tf.convert_to_tensor(rpn_match)
    if rpn_match.shape.rank == 3:
        rpn_match = tf.squeeze(rpn_match, axis=-1)
    return tf.cast(rpn_match, tf.int32)


def _positive_class_rows(target_class_ids):
    """Flattened ROI rows with a class > 0, and [row, class] pairs to pick class-specific outputs.

    Args:
      target_class_ids: [B, R] int (float accepted), 0 = background / padding.
    Returns:
      rows: [P] int64 into the flattened [B * R] axis; row_class: [P, 2] int64 (row, class id).
    """
    class_ids = tf.reshape(tf.cast(target_class_ids, tf.int64), [-1])  # [B * R]
    rows = tf.where(class_ids > 0)[:, 0]
    return rows, tf.stack([rows, tf.gather(class_ids, rows)], axis=1)


def rpn_class_loss(rpn_match, rpn_class_logits):
    """RPN objectness loss: softmax cross-entropy over the positive and negative anchors.

    Args:
      rpn_match: [B, A] or [B, A, 1] int, 1 positive, -1 negative, 0 neutral (ignored).
      rpn_class_logits: [B, A, (bg, fg)] float logits.
    Returns:
      float32 scalar, the mean over the non-neutral anchors of the batch; 0.0 if there are none.
    """
    rpn_match = _squeeze_match(rpn_match)
    used = tf.where(tf.not_equal(rpn_match, 0))  # [U, 2] (image, anchor)
    labels = tf.cast(tf.equal(tf.gather_nd(rpn_match, used), 1), tf.int32)  # [U], 1 = foreground
    logits = tf.gather_nd(tf.cast(rpn_class_logits, tf.float32), used)  # [U, 2]
    return _mean_or_zero(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """RPN box loss: smooth-L1 between the positive anchors' predicted and target deltas.

    Targets are packed per image (matterport's layout): image b's k-th positive anchor, in
    anchor order, has its target in row k of ``target_bbox[b]``.

    Args:
      target_bbox: [B, T, (dy, dx, log dh, log dw)] float32, divided by RPN_BBOX_STD_DEV,
        zero rows after the positives.
      rpn_match: [B, A] or [B, A, 1] int, 1 marks the positive anchors.
      rpn_bbox: [B, A, (dy, dx, log dh, log dw)] float, raw RPN deltas (same scaling as the targets).
    Returns:
      float32 scalar, the mean over the 4 coordinates of all positive anchors; 0.0 if there are none.
    """
    rpn_match = _squeeze_match(rpn_match)
    positive = tf.equal(rpn_match, 1)  # [B, A]
    predicted = tf.gather_nd(tf.cast(rpn_bbox, tf.float32), tf.where(positive))  # [P, 4]
    counts = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)  # [B]
    target_bbox = tf.cast(target_bbox, tf.float32)
    packed = tf.sequence_mask(counts, tf.shape(target_bbox)[1])  # [B, T] first counts[b] rows
    targets = tf.boolean_mask(target_bbox, packed)  # [P, 4], image-major like ``predicted``
    return _mean_or_zero(_smooth_l1(targets, predicted))


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids):
    """Classifier loss: softmax cross-entropy over all ROIs, ignoring ROIs predicted as inactive classes.

    Every ROI counts, padding rows included (their target is class 0). Each ROI's loss is
    weighted by ``active_class_ids`` of the class it predicts (argmax of the logits); the
    result is the weighted sum divided by the sum of the weights (0.0 if that sum is 0).

    Args:
      target_class_ids: [B, R] int (float accepted), 0 = background.
      pred_class_logits: [B, R, C] float logits.
      active_class_ids: [B, C] 1 for the classes of the image's dataset, else 0 (any numeric dtype).
    Returns:
      float32 scalar.
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    labels = tf.cast(target_class_ids, tf.int64)
    predicted = tf.argmax(logits, axis=2)  # [B, R]
    weights = tf.gather(tf.cast(active_class_ids, tf.float32), predicted, batch_dims=1)  # [B, R]
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) * weights
    return tf.math.divide_no_nan(tf.reduce_sum(loss), tf.reduce_sum(weights))


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Box-head loss: smooth-L1 on the ground-truth class's deltas of the positive ROIs.

    Args:
      target_bbox: [B, R, (dy, dx, log dh, log dw)] float32, divided by BBOX_STD_DEV.
      target_class_ids: [B, R] int, > 0 for positive ROIs.
      pred_bbox: [B, R, C, (dy, dx, log dh, log dw)] float, class-specific raw deltas.
    Returns:
      float32 scalar, the mean over the 4 coordinates of all positive ROIs; 0.0 if there are none.
    """
    rows, row_class = _positive_class_rows(target_class_ids)
    targets = tf.gather(tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4]), rows)  # [P, 4]
    num_classes = tf.shape(pred_bbox)[2]
    predicted = tf.reshape(tf.cast(pred_bbox, tf.float32), [-1, num_classes, 4])  # [B * R, C, 4]
    return _mean_or_zero(_smooth_l1(targets, tf.gather_nd(predicted, row_class)))


def _binary_crossentropy(target, probability):
    """Keras 2's binary cross-entropy on probabilities: clip to [eps, 1 - eps], back to logits, sigmoid CE."""
    probability = tf.clip_by_value(probability, _EPSILON, 1.0 - _EPSILON)
    logits = tf.math.log(probability / (1.0 - probability))
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """Mask-head loss: binary cross-entropy on the ground-truth class's mask of the positive ROIs.

    The mask branch may run on the first M <= R ROIs only (the positives come first and number at
    most int(R * ROI_POSITIVE_RATIO)): ``target_class_ids`` is then cut to the first M columns.

    Args:
      target_masks: [B, M, h, w] float32 of 0 / 1.
      target_class_ids: [B, R] int, > 0 for positive ROIs (R >= M; rows after M must not be positive).
      pred_masks: [B, M, h, w, C] float probabilities (sigmoid outputs).
    Returns:
      float32 scalar, the mean over all pixels of all positive ROIs; 0.0 if there are none.
    """
    target_class_ids = tf.convert_to_tensor(target_class_ids)[:, :tf.shape(target_masks)[1]]
    rows, row_class = _positive_class_rows(target_class_ids)
    mask_shape = tf.shape(target_masks)[2:]
    targets = tf.reshape(tf.cast(target_masks, tf.float32), tf.concat([[-1], mask_shape], 0))  # [B * R, h, w]
    predicted = tf.reshape(tf.cast(pred_masks, tf.float32),
                           tf.concat([[-1], tf.shape(pred_masks)[2:]], 0))  # [B * R, h, w, C]
    predicted = tf.transpose(predicted, [0, 3, 1, 2])  # [B * R, C, h, w]
    return _mean_or_zero(_binary_crossentropy(tf.gather(targets, rows), tf.gather_nd(predicted, row_class)))


def _variable_name(variable):
    """Full name of a weight: Keras 3 ``path`` ("layer/gamma") when it has one, else ``name``."""
    return getattr(variable, "path", None) or variable.name


def weight_decay_loss(weights, weight_decay):
    """matterport's L2 weight decay: sum over weights of sum(weight_decay * w^2) / size(w).

    Weights whose name contains "gamma" or "beta" (BatchNorm) are skipped. Pass the
    trainable weights: matterport only decays those.

    Args:
      weights: iterable of variables / tensors (Keras 3 variables are matched on ``path``).
      weight_decay: float, WEIGHT_DECAY (1e-4).
    Returns:
      float32 scalar (0.0 for no weights).
    """
    terms = [tf.reduce_sum(weight_decay * tf.square(tf.cast(w, tf.float32)))
             / tf.cast(tf.size(w), tf.float32)
             for w in weights
             if not any(part in _variable_name(w) for part in _NO_DECAY_NAME_PARTS)]
    return tf.add_n(terms) if terms else tf.constant(0.0)


def landmark_loss(target_points, target_class_ids, pred_logits):
    """Landmark-head loss: cross-entropy of each trained landmark's M * M softmax against its bilinear target.

    The target of a point puts bilinear weights on the 2 x 2 cells whose centres surround it
    (:func:`mrcnn.ops.keypoint_targets.bilinear_cells_graph`); the loss of one landmark is
    ``-sum_cells weight * log softmax(logits)[cell]`` (its minimum, the target's entropy, is at most log 4).

    Args:
      target_points: [B, R, Kmax, (g_x, g_y)] float grid positions of each landmark of the ROI's class
        slice, -1 where the landmark is not trained (:func:`mrcnn.ops.keypoint_targets.landmark_targets`).
      target_class_ids: [B, R] int, > 0 for positive ROIs (only those are read).
      pred_logits: [B, R, Kmax, M * M] float logits of the same slices.
    Returns:
      float32 scalar, the mean over the trained landmarks of all positive ROIs; 0.0 if there are none.
    """
    cells_per_map = tf.shape(pred_logits)[-1]
    size = tf.cast(tf.round(tf.sqrt(tf.cast(cells_per_map, tf.float32))), tf.int32)
    target_points = tf.cast(target_points, tf.float32)
    positive = tf.cast(target_class_ids, tf.int32) > 0  # [B, R]
    trained = tf.logical_and(target_points[..., 0] >= 0, positive[..., None])  # [B, R, Kmax]
    rows = tf.where(tf.reshape(trained, [-1]))[:, 0]
    points = tf.gather(tf.reshape(target_points, [-1, 2]), rows)  # [n, 2]
    logits = tf.gather(tf.reshape(tf.cast(pred_logits, tf.float32), [-1, cells_per_map]), rows)  # [n, MM]
    cells, weights = bilinear_cells_graph(points, size)
    log_probabilities = tf.gather(tf.nn.log_softmax(logits, axis=-1), cells, batch_dims=1)  # [n, 4]
    losses = -tf.reduce_sum(weights * log_probabilities, axis=-1)
    return _mean_or_zero(losses)
