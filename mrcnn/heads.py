"""The trainable heads: the RPN (shared over FPN levels), the box/class head and the mask head.

Layer names match matterport's so its ``.h5`` weights load by name. matterport
wraps the per-ROI layers in ``TimeDistributed``; Keras 3's ``TimeDistributed``
loops over the ROI axis (1,000 convolutions per image), so here the ROI axis is
folded into the batch axis instead ([B, N, ...] -> [B*N, ...]) and the same
Conv2D/BatchNorm/Dense layers, under the same names, run once on all ROIs.
The weights and the arithmetic are identical.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from mrcnn.backbone import BatchNorm


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


def build_rpn_model(anchor_stride: int, anchors_per_location: int, depth: int) -> keras.Model:
    """The Region Proposal Network, one small model applied to every FPN level.

    Input: a feature map [B, h, w, depth].
    The shared 3x3 conv has 2 * depth channels (matterport's 512 for its depth 256), so a
    config with a narrower pyramid (TOP_DOWN_PYRAMID_SIZE) gets a proportionally lighter RPN.
    Outputs:
        rpn_class_logits [B, h*w*A, 2] (background, foreground) logits
        rpn_probs        [B, h*w*A, 2] softmax of the logits
        rpn_bbox         [B, h*w*A, (dy, dx, log(dh), log(dw))] deltas, divided by RPN_BBOX_STD_DEV
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(2 * depth, 3, padding="same", activation="relu", strides=anchor_stride,
                           name="rpn_conv_shared")(feature_map)
    x = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw")(shared)
    rpn_class_logits = AnchorsPerImage(2, name="rpn_class_logits_flat")(x)
    rpn_probs = layers.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred")(shared)
    rpn_bbox = AnchorsPerImage(4, name="rpn_bbox_flat")(x)
    return keras.Model(feature_map, [rpn_class_logits, rpn_probs, rpn_bbox], name="rpn_model")


def fpn_classifier_head(pooled_rois, num_rois: int, num_classes: int, fc_layers_size: int,
                        train_bn: bool = False):
    """Box head: classifies each ROI and regresses a class-specific box refinement.

    Args:
        pooled_rois: [B, N, pool, pool, 256] ROIAligned features (N = num_rois).
    Returns:
        mrcnn_class_logits [B, N, num_classes]
        mrcnn_probs        [B, N, num_classes] softmax
        mrcnn_bbox         [B, N, num_classes, (dy, dx, log(dh), log(dw))], divided by BBOX_STD_DEV
    """
    pool = pooled_rois.shape[2]
    x = FoldRois(name="mrcnn_class_fold")(pooled_rois)  # [B*N, pool, pool, 256]
    # Two 1024-wide "fully connected" layers, written as a pool x pool conv and a 1x1 conv.
    x = layers.Conv2D(fc_layers_size, pool, padding="valid", name="mrcnn_class_conv1")(x)
    x = BatchNorm(train_bn, name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(fc_layers_size, 1, name="mrcnn_class_conv2")(x)
    x = BatchNorm(train_bn, name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((fc_layers_size,), name="pool_squeeze")(x)  # [B*N, fc]

    logits = layers.Dense(num_classes, name="mrcnn_class_logits")(shared)
    mrcnn_class_logits = UnfoldRois(num_rois, name="mrcnn_class_logits_unfold")(logits)  # [B, N, C]
    mrcnn_probs = layers.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)

    x = layers.Dense(num_classes * 4, name="mrcnn_bbox_fc")(shared)  # [B*N, C*4], class-major
    x = layers.Reshape((num_classes, 4), name="mrcnn_bbox_reshape")(x)  # [B*N, C, 4]
    mrcnn_bbox = UnfoldRois(num_rois, name="mrcnn_bbox")(x)  # [B, N, C, 4]
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def fpn_mask_head(pooled_rois, num_rois: int, num_classes: int, train_bn: bool = False, roi_class_ids=None):
    """Mask head: four 3x3 convs, a 2x up-convolution and a per-class sigmoid.

    The convs are as wide as the pooled features (matterport: 256 = TOP_DOWN_PYRAMID_SIZE).

    Args:
        pooled_rois: [B, N, 14, 14, D] ROIAligned features (D = TOP_DOWN_PYRAMID_SIZE).
        roi_class_ids: optional [B, N] int target class ids (training). When given, the layers
            run only on the positive ROIs (class id > 0), the only ones the mask loss reads, and
            the other rows of the output are 0; in training most ROIs are negatives, so this
            saves most of the head's work. With TRAIN_BN the BatchNorm statistics are then those
            of the positive ROIs (matterport: all ROIs).
    Returns:
        masks [B, N, 28, 28, num_classes] float32 in [0, 1].
    """
    width = pooled_rois.shape[-1]
    if roi_class_ids is not None:
        x = GatherPositiveRois(name="mrcnn_mask_positive_rois")([pooled_rois, roi_class_ids])  # [P, 14, 14, D]
        return ScatterPositiveRois(name="mrcnn_mask_scatter")([_mask_layers(x, width, num_classes, train_bn),
                                                              roi_class_ids])
    x = FoldRois(name="mrcnn_mask_fold")(pooled_rois)  # [B*N, 14, 14, D]
    x = _mask_layers(x, width, num_classes, train_bn)  # [B*N, 28, 28, C]
    return UnfoldRois(num_rois, name="mrcnn_mask_unfold")(x)


def _mask_layers(x, width: int, num_classes: int, train_bn: bool):
    """The mask head's layers on a batch of ROIs: [R, 14, 14, D] -> [R, 28, 28, num_classes] sigmoid."""
    for i in range(1, 5):
        x = layers.Conv2D(width, 3, padding="same", name=f"mrcnn_mask_conv{i}")(x)
        x = BatchNorm(train_bn, name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = layers.Conv2DTranspose(width, 2, strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    return layers.Conv2D(num_classes, 1, activation="sigmoid", name="mrcnn_mask")(x)
