"""Final detections from classified proposals (matterport's DetectionLayer).

Per image, in matterport's order:
  1. class of each ROI = argmax of its probabilities; score = that probability;
  2. that class's deltas * bbox_std_dev applied to the ROI, clipped to the image window;
  3. drop background ROIs, and ROIs scoring below min_confidence when min_confidence
     is truthy (0.0 switches the filter off, as matterport's ``if`` does);
  4. NMS per class (tf.image.non_max_suppression, at most max_instances per class);
  5. the survivors, in ROI order, ranked by score (tf.nn.top_k, ties by ROI order),
     keep the top max_instances;
  6. rows [y1, x1, y2, x2, class_id, score], normalized, zero-padded to max_instances.
No zero-area filter here; ``mrcnn.ops.unmold.unmold_boxes`` drops such boxes later.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.boxes import apply_box_deltas, clip_boxes, norm_boxes_graph
from mrcnn.ops.image_meta import parse_image_meta_graph

DETECTION_ROW_SIZE = 6  # y1, x1, y2, x2, class_id, score


def _per_class_nms(keep, class_ids, scores, boxes, max_instances, nms_threshold):
    """Indices (into the ROI arrays) that survive NMS within their own class.

    Args:
      keep: [K] int64 candidate ROI indices, ascending.
      class_ids: [N] int32, scores: [N] float32, boxes: [N, 4] float32, for all ROIs.
    Returns:
      [M] int64 surviving ROI indices, ascending.
    """
    cand_class_ids = tf.gather(class_ids, keep)
    cand_scores = tf.gather(scores, keep)
    cand_boxes = tf.gather(boxes, keep)

    def nms_one_class(class_id):
        members = tf.where(tf.equal(cand_class_ids, class_id))[:, 0]  # [k] positions in keep
        chosen = tf.image.non_max_suppression(
            tf.gather(cand_boxes, members), tf.gather(cand_scores, members),
            max_output_size=max_instances, iou_threshold=nms_threshold)
        chosen = tf.gather(keep, tf.gather(members, chosen))  # ROI indices
        gap = max_instances - tf.shape(chosen)[0]
        return tf.pad(chosen, [(0, gap)], constant_values=-1)  # [max_instances], -1 padded

    present_classes = tf.unique(cand_class_ids)[0]
    survivors = tf.map_fn(nms_one_class, present_classes,
                          fn_output_signature=tf.TensorSpec([max_instances], tf.int64))
    survivors = tf.reshape(survivors, [-1])
    survivors = tf.gather(survivors, tf.where(survivors > -1)[:, 0])
    return tf.sort(survivors)


def refine_detections(rois, probs, deltas, window, bbox_std_dev, min_confidence,
                      max_instances, nms_threshold):
    """Detections of one image.

    Args:
      rois: [N, (y1, x1, y2, x2)] float32, normalized proposals (zero rows allowed).
      probs: [N, C] float32 class probabilities.
      deltas: [N, C, (dy, dx, log dh, log dw)] float32 raw class-specific deltas.
      window: [(y1, x1, y2, x2)] float32, the image inside the molded image, normalized.
      bbox_std_dev: [4] float, multiplies the raw deltas.
      min_confidence: float; falsy (0 / None) disables the score filter.
      max_instances: int, rows of the output.
      nms_threshold: float, IoU threshold of the per-class NMS.
    Returns:
      [max_instances, (y1, x1, y2, x2, class_id, score)] float32, normalized, zero-padded,
      sorted by descending score.
    """
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)  # [N]
    roi_and_class = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)  # [N, 2]
    class_scores = tf.gather_nd(probs, roi_and_class)  # [N]
    class_deltas = tf.gather_nd(deltas, roi_and_class)  # [N, 4]
    std_dev = tf.constant(np.reshape(bbox_std_dev, [4]), dtype=tf.float32)
    refined = clip_boxes(apply_box_deltas(rois, class_deltas * std_dev), window)  # [N, 4]

    wanted = class_ids > 0
    if min_confidence:
        wanted = tf.logical_and(wanted, class_scores >= min_confidence)
    keep = tf.where(wanted)[:, 0]  # [K] int64, ascending
    keep = _per_class_nms(keep, class_ids, class_scores, refined, max_instances, nms_threshold)

    kept_scores = tf.gather(class_scores, keep)
    count = tf.minimum(tf.shape(kept_scores)[0], max_instances)
    keep = tf.gather(keep, tf.nn.top_k(kept_scores, k=count, sorted=True).indices)

    detections = tf.concat([
        tf.gather(refined, keep),
        tf.cast(tf.gather(class_ids, keep), tf.float32)[:, tf.newaxis],
        tf.gather(class_scores, keep)[:, tf.newaxis],
    ], axis=1)  # [count, 6]
    gap = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [(0, gap), (0, 0)])


def detect_batch(rois, probs, deltas, windows, bbox_std_dev, min_confidence,
                 max_instances, nms_threshold):
    """refine_detections over a batch.

    Args:
      rois: [B, N, 4], probs: [B, N, C], deltas: [B, N, C, 4], windows: [B, 4] normalized.
    Returns:
      [B, max_instances, 6] float32.
    """
    def one_image(args):
        return refine_detections(*args, bbox_std_dev, min_confidence, max_instances, nms_threshold)

    return tf.map_fn(one_image, (rois, probs, deltas, windows),
                     fn_output_signature=tf.TensorSpec([max_instances, DETECTION_ROW_SIZE], tf.float32))


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Keras wrapper of :func:`refine_detections`; the model names it "mrcnn_detection".

    call([rois, mrcnn_class, mrcnn_bbox, image_meta]) -> [B, max_instances, 6].
    Each window is normalized by the first image's molded shape (all images of a
    batch share it), as in matterport.
    """

    def __init__(self, bbox_std_dev, min_confidence, max_instances, nms_threshold, **kwargs):
        super().__init__(**kwargs)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]
        self.min_confidence = float(min_confidence or 0.0)
        self.max_instances = int(max_instances)
        self.nms_threshold = float(nms_threshold)

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        windows = norm_boxes_graph(meta["window"], meta["image_shape"][0][:2])  # [B, 4]
        return detect_batch(rois, mrcnn_class, mrcnn_bbox, windows, self.bbox_std_dev,
                            self.min_confidence, self.max_instances, self.nms_threshold)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, DETECTION_ROW_SIZE)

    def get_config(self):
        config = super().get_config()
        config.update(bbox_std_dev=self.bbox_std_dev, min_confidence=self.min_confidence,
                      max_instances=self.max_instances, nms_threshold=self.nms_threshold)
        return config
