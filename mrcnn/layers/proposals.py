"""Region proposals: RPN scores and deltas applied to anchors, then NMS (matterport's ProposalLayer).

Steps per image, in matterport's order:
  1. keep the top min(pre_nms_limit, A) anchors by foreground score (sorted, ties by index);
  2. deltas * rpn_bbox_std_dev, applied to those anchors;
  3. clip to the image, [0, 0, 1, 1] (normalized frame);
  4. tf.image.non_max_suppression (proposal_count, nms_threshold), scores in the top-k order;
  5. zero-pad to proposal_count rows.
No small-box filter (matterport skips it on purpose).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.boxes import apply_box_deltas, clip_boxes

_UNIT_WINDOW = (0.0, 0.0, 1.0, 1.0)


def _propose_one_image(scores, deltas, anchors, proposal_count, nms_threshold, pre_nms_limit):
    """Proposals of one image.

    Args:
      scores: [A] float32 foreground probability.
      deltas: [A, (dy, dx, log dh, log dw)] float32, already multiplied by the std dev.
      anchors: [A, (y1, x1, y2, x2)] float32, normalized.
    Returns:
      [proposal_count, (y1, x1, y2, x2)] float32, normalized, zero-padded.
    """
    limit = tf.minimum(pre_nms_limit, tf.shape(anchors)[0])
    top = tf.nn.top_k(scores, limit, sorted=True).indices  # [K]
    scores = tf.gather(scores, top)
    boxes = apply_box_deltas(tf.gather(anchors, top), tf.gather(deltas, top))  # [K, 4]
    boxes = clip_boxes(boxes, tf.constant(_UNIT_WINDOW))
    keep = tf.image.non_max_suppression(boxes, scores, proposal_count, nms_threshold)
    proposals = tf.gather(boxes, keep)  # [<=proposal_count, 4]
    padding = tf.maximum(proposal_count - tf.shape(proposals)[0], 0)
    return tf.pad(proposals, [(0, padding), (0, 0)])


def propose_rois(rpn_probs, rpn_deltas, anchors, proposal_count, nms_threshold,
                 pre_nms_limit, rpn_bbox_std_dev):
    """Region proposals for a batch.

    Args:
      rpn_probs: [B, A, (bg, fg)] float32 softmax of the RPN classifier.
      rpn_deltas: [B, A, (dy, dx, log dh, log dw)] float32 raw RPN deltas (before std dev).
      anchors: [B, A, (y1, x1, y2, x2)] float32, normalized.
      proposal_count: int, rows per image in the output (1000 inference, 2000 training).
      nms_threshold: float IoU threshold of the NMS (0.7).
      pre_nms_limit: int, anchors kept by score before NMS (6000).
      rpn_bbox_std_dev: [4] float, multiplies the raw deltas ([0.1, 0.1, 0.2, 0.2]).
    Returns:
      [B, proposal_count, (y1, x1, y2, x2)] float32, normalized, zero-padded rows last.
    """
    scores = rpn_probs[:, :, 1]  # [B, A]
    std_dev = tf.constant(np.reshape(rpn_bbox_std_dev, [1, 1, 4]), dtype=tf.float32)
    deltas = rpn_deltas * std_dev  # [B, A, 4]
    proposals = tf.map_fn(
        lambda args: _propose_one_image(*args, proposal_count, nms_threshold, pre_nms_limit),
        (scores, deltas, anchors),
        fn_output_signature=tf.TensorSpec([proposal_count, 4], tf.float32))
    return proposals  # [B, proposal_count, 4]


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Keras wrapper of :func:`propose_rois`; the model names it "ROI".

    call([rpn_probs, rpn_deltas, anchors]) -> [B, proposal_count, 4] normalized proposals.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev, **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in np.asarray(rpn_bbox_std_dev).reshape(-1)]

    def call(self, inputs):
        rpn_probs, rpn_deltas, anchors = inputs
        return propose_rois(rpn_probs, rpn_deltas, anchors, self.proposal_count,
                            self.nms_threshold, self.pre_nms_limit, self.rpn_bbox_std_dev)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update(proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev)
        return config
