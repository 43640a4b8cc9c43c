"""Small stateless layers that reshape, pick or convert tensors between the model's parts.

Keras 3 wants every TensorFlow op inside a layer; these are the glue ops of the
graphs in :mod:`mrcnn.modeling` (folding ROIs into the batch axis for the per-ROI
heads, picking the positive ROIs, anchors as a constant input, ...). None has weights.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from mrcnn.ops.anchors import get_anchors
from mrcnn.ops.boxes import norm_boxes_graph
from mrcnn.ops.image_meta import META_SIZE_WITHOUT_CLASSES, parse_image_meta_graph


@keras.saving.register_keras_serializable(package="mrcnn")
class FoldRois(layers.Layer):
    """[B, N, ...] -> [B * N, ...]: per-ROI tensors become a batch of images."""

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        b, n = input_shape[:2]
        return (None if b is None or n is None else b * n, *input_shape[2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class UnfoldRois(layers.Layer):
    """[B * N, ...] -> [B, N, ...] for a fixed number of ROIs per image ``num_rois``."""

    def __init__(self, num_rois: int, **kwargs):
        super().__init__(**kwargs)
        self.num_rois = int(num_rois)

    def call(self, x):
        return ops.reshape(x, (-1, self.num_rois, *x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.num_rois, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_rois": self.num_rois}


@keras.saving.register_keras_serializable(package="mrcnn")
class GatherPositiveRois(layers.Layer):
    """([B, N, ...] per-ROI tensor, [B, N] class ids) -> [P, ...], the rows with a class id > 0.

    Row (0, 0) is always taken too (P >= 1), so layers after it never see an empty batch
    (BatchNorm statistics of zero rows would be NaN and poison its moving averages).
    """

    def call(self, inputs):
        x, class_ids = inputs
        return tf.gather_nd(x, _positive_rows(class_ids))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[0][2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class ScatterPositiveRois(layers.Layer):
    """([P, ...] rows from GatherPositiveRois, [B, N] class ids) -> [B, N, ...], zeros elsewhere."""

    def call(self, inputs):
        x, class_ids = inputs
        shape = tf.concat([tf.shape(class_ids, out_type=tf.int64), tf.shape(x, out_type=tf.int64)[1:]], axis=0)
        return tf.scatter_nd(_positive_rows(class_ids), x, shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1], *input_shape[0][1:])


def _positive_rows(class_ids):
    """[K, (image, roi)] int64 indices of the rows with class id > 0, plus row (0, 0), in row order."""
    flat_index = tf.reshape(tf.range(tf.size(class_ids)), tf.shape(class_ids))
    return tf.where(tf.logical_or(class_ids > 0, tf.equal(flat_index, 0)))


@keras.saving.register_keras_serializable(package="mrcnn")
class AnchorsPerImage(layers.Layer):
    """Flattens one RPN conv output [B, h, w, A * k] to [B, h * w * A, k] (anchor order y, x, ratio)."""

    def __init__(self, values_per_anchor: int, **kwargs):
        super().__init__(**kwargs)
        self.values_per_anchor = int(values_per_anchor)

    def call(self, x):
        return ops.reshape(x, (ops.shape(x)[0], -1, self.values_per_anchor))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, self.values_per_anchor)

    def get_config(self):
        return {**super().get_config(), "values_per_anchor": self.values_per_anchor}

@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """[B, D, 6] detections -> [B, D, (y1, x1, y2, x2)] normalized boxes."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 4)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionClassIds(layers.Layer):
    """[B, D, 6] detections -> [B, D] int32 class ids (0 = a padding row)."""

    def call(self, detections):
        return tf.cast(detections[..., 4], tf.int32)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


@keras.saving.register_keras_serializable(package="mrcnn")
class ConstantAnchors(layers.Layer):
    """The anchors of a fixed molded image shape, broadcast to the batch: [B, A, 4] normalized."""

    def __init__(self, image_shape, scales, ratios, strides, anchor_stride, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = [int(v) for v in image_shape[:2]]
        self.scales = [int(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.strides = [int(s) for s in strides]
        self.anchor_stride = int(anchor_stride)

    def call(self, input_image):
        anchors = get_anchors(self.image_shape, self.scales, self.ratios, self.strides, self.anchor_stride)
        anchors = tf.constant(anchors)  # [A, 4]
        return tf.broadcast_to(anchors, tf.concat([tf.shape(input_image)[:1], tf.shape(anchors)], axis=0))

    def compute_output_shape(self, input_shape):
        num = len(get_anchors(self.image_shape, self.scales, self.ratios, self.strides, self.anchor_stride))
        return (input_shape[0], num, 4)

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape, "scales": self.scales,
                "ratios": self.ratios, "strides": self.strides, "anchor_stride": self.anchor_stride}


@keras.saving.register_keras_serializable(package="mrcnn")
class StopGradient(layers.Layer):
    """Identity whose output is a constant for backprop.

    The proposals are treated as fixed inputs of the second stage (as torchvision
    and Detectron do): without this, the box-regression loss would also pull the
    *targets* (computed from the proposals) toward the predictions, sending a
    spurious gradient into the RPN. matterport has no such stop; the loss values
    are the same either way.
    """

    def call(self, x):
        return tf.stop_gradient(x)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="mrcnn")
class NormalizeGtBoxes(layers.Layer):
    """[B, G, 4] pixel boxes -> normalized by the molded image size (taken from the image tensor)."""

    def call(self, inputs):
        boxes, image = inputs
        return norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="mrcnn")
class ActiveClassIds(layers.Layer):
    """[B, 12 + C] image_meta -> [B, C] float32 flags of the classes present in each image's dataset."""

    def call(self, image_meta):
        return parse_image_meta_graph(image_meta)["active_class_ids"]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - META_SIZE_WITHOUT_CLASSES)


@keras.saving.register_keras_serializable(package="mrcnn")
class InstancesFirst(layers.Layer):
    """[B, h, w, G] per-instance masks (matterport's layout) -> [B, G, h, w] (instance axis first)."""

    def call(self, masks):
        return tf.transpose(masks, [0, 3, 1, 2])

    def compute_output_shape(self, input_shape):
        batch, height, width, count = input_shape
        return (batch, count, height, width)
