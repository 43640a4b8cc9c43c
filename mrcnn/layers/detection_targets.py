"""``DetectionTargetLayer``: the second stage's training targets inside the training graph.

A thin Keras wrapper of :func:`mrcnn.ops.roi_targets.detection_targets`, mapped over
the batch image by image. The ROI heads present (mask, and any extra head) each
contribute a target function and a target spec; the layer knows nothing else of them.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.roi_targets import detection_targets

# The outputs every model has, in order; the heads' targets follow in the order of ``head_targets``.
CORE_TARGETS = ("rois", "class_ids", "deltas")


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Samples ROIs from the proposals and builds their targets, one image at a time.

    call([proposals [B, N, 4], gt_class_ids [B, G], gt_boxes [B, G, 4] normalized,
          *gt fields [B, G, ...] in the order of ``field_names``])
      -> [rois [B, T, 4], target_class_ids [B, T] int32, target_bbox [B, T, 4],
          *one [B, T, ...] per head, in the order of ``head_targets``]

    Not rebuilt from ``get_config`` (it holds the heads' target functions): models are saved as
    weights (:mod:`mrcnn.io.weights`) and rebuilt from their config, never from Keras JSON.

    Args:
      head_targets: {head name: (target function, tf.TensorSpec of one ROI's target)}.
      field_names: names of the gt field inputs after gt_boxes (e.g. ["masks"]), instance axis first.
      train_rois_per_image, roi_positive_ratio, bbox_std_dev: see ``detection_targets``.
    """

    def __init__(self, head_targets, field_names, train_rois_per_image, roi_positive_ratio, bbox_std_dev,
                 **kwargs):
        super().__init__(**kwargs)
        self.head_targets = dict(head_targets)
        self.field_names = list(field_names)
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = [float(v) for v in np.asarray(bbox_std_dev).reshape(-1)]

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in order: the core targets, then one per head."""
        return CORE_TARGETS + tuple(self.head_targets)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, *fields = inputs
        rows = self.train_rois_per_image
        target_fns = {name: fn for name, (fn, _) in self.head_targets.items()}

        def one_image(args):
            proposals, gt_class_ids, gt_boxes, *fields = args
            targets = detection_targets(
                proposals, gt_class_ids, gt_boxes, dict(zip(self.field_names, fields)), target_fns,
                train_rois_per_image=rows, roi_positive_ratio=self.roi_positive_ratio,
                bbox_std_dev=self.bbox_std_dev)
            return tuple(targets[name] for name in self.output_names)

        signature = (tf.TensorSpec([rows, 4], tf.float32), tf.TensorSpec([rows], tf.int32),
                     tf.TensorSpec([rows, 4], tf.float32),
                     *(tf.TensorSpec([rows, *spec.shape], spec.dtype) for _, spec in self.head_targets.values()))
        outputs = tf.map_fn(one_image, (proposals, gt_class_ids, gt_boxes, *fields), fn_output_signature=signature)
        return list(outputs)

    def compute_output_shape(self, input_shape):
        batch, rows = input_shape[0][0], self.train_rois_per_image
        heads = [(batch, rows, *spec.shape) for _, spec in self.head_targets.values()]
        return [(batch, rows, 4), (batch, rows), (batch, rows, 4), *heads]

    def get_config(self):
        config = super().get_config()
        config.update(heads=list(self.head_targets), field_names=self.field_names,
                      train_rois_per_image=self.train_rois_per_image, roi_positive_ratio=self.roi_positive_ratio,
                      bbox_std_dev=self.bbox_std_dev)
        return config
