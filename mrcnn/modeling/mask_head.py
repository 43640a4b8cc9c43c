"""The mask head (matterport's): a small FCN per ROI predicting one 28x28 mask per class.

Layer names match matterport's (``mrcnn_mask_conv1..4``, ``mrcnn_mask_bn1..4``,
``mrcnn_mask_deconv``, ``mrcnn_mask``) so its ``.h5`` weights load by name. As in the box
head, ROIs are folded into the batch axis instead of Keras 3's slow ``TimeDistributed``.

:class:`MaskHead` plugs the layers into the model as a :class:`~mrcnn.modeling.roi_heads.RoiHead`:
targets from :func:`mrcnn.ops.roi_targets.mask_targets`, the loss
:func:`mrcnn.ops.losses.mrcnn_mask_loss`, and masks pasted into the image by
:func:`mrcnn.ops.masks.paste_masks`.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import layers

from mrcnn.layers import OUTPUT_DTYPE
from mrcnn.layers.glue import FoldRois, GatherPositiveRois, ScatterPositiveRois, UnfoldRois
from mrcnn.layers.roi_align import roi_align_layer
from mrcnn.modeling.backbones import BatchNorm
from mrcnn.modeling.roi_heads import RoiHead
from mrcnn.ops.losses import mrcnn_mask_loss
from mrcnn.ops.masks import paste_masks
from mrcnn.ops.roi_targets import mask_targets

# ``mrcnn_mask`` itself runs on the detected (or folded) rows only; the layer giving matterport's
# [B, N, 28, 28, C] is read instead by MaskRCNN.run_graph (zeros in the padding rows of the detected path).
MATTERPORT_VIEWS = {"mrcnn_mask": ("mrcnn_mask_scatter", "mrcnn_mask_unfold")}

def fpn_mask_head(pooled_rois, num_rois: int, num_classes: int, train_bn: bool = False, roi_class_ids=None):
    """Mask head: four 3x3 convs, a 2x up-convolution and a per-class sigmoid.

    The convs are as wide as the pooled features (matterport: 256 = TOP_DOWN_PYRAMID_SIZE).

    Args:
        pooled_rois: [B, N, 14, 14, D] ROIAligned features (D = TOP_DOWN_PYRAMID_SIZE).
        roi_class_ids: optional [B, N] int class ids: the sampled ROIs' targets in training, the
            detections' classes in inference. When given, the layers run only on the rows with a class
            id > 0 (the positive ROIs the mask loss reads; the real detections) and the other rows of
            the output are 0: in training most ROIs are negatives, in inference most of the
            DETECTION_MAX_INSTANCES rows are padding, so this saves most of the head's work. With
            TRAIN_BN the BatchNorm statistics are then those of the positive ROIs (matterport: all ROIs).
    Returns:
        masks [B, N, 28, 28, num_classes] float32 in [0, 1].
    """
    width = pooled_rois.shape[-1]
    if roi_class_ids is not None:
        x = GatherPositiveRois(name="mrcnn_mask_positive_rois")([pooled_rois, roi_class_ids])  # [P, 14, 14, D]
        masks = _mask_layers(x, width, num_classes, train_bn)  # [P, 28, 28, C]
        return ScatterPositiveRois(name="mrcnn_mask_scatter", dtype=OUTPUT_DTYPE)([masks, roi_class_ids])
    x = FoldRois(name="mrcnn_mask_fold")(pooled_rois)  # [B*N, 14, 14, D]
    x = _mask_layers(x, width, num_classes, train_bn)  # [B*N, 28, 28, C]
    return UnfoldRois(num_rois, name="mrcnn_mask_unfold", dtype=OUTPUT_DTYPE)(x)


def _mask_layers(x, width: int, num_classes: int, train_bn: bool):
    """The mask head's layers on a batch of ROIs: [R, 14, 14, D] -> [R, 28, 28, num_classes] sigmoid."""
    for i in range(1, 5):
        x = layers.Conv2D(width, 3, padding="same", name=f"mrcnn_mask_conv{i}")(x)
        x = BatchNorm(train_bn, name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = layers.Conv2DTranspose(width, 2, strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    return layers.Conv2D(num_classes, 1, activation="sigmoid", name="mrcnn_mask", dtype=OUTPUT_DTYPE)(x)


class MaskHead(RoiHead):
    """matterport's mask branch as an ROI head (registered as "mask")."""

    name = "mask"
    loss_name = "mrcnn_mask_loss"
    output_name = "mrcnn_mask"
    result_key = "masks"
    class_specific_layers = ("mrcnn_mask",)
    layer_pattern = r"mrcnn\_mask.*"

    def target_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec(list(self.config.MASK_SHAPE), tf.float32)

    def roi_targets(self, positive_rois, matched_gt, gt):
        return mask_targets(positive_rois, matched_gt, gt, mask_shape=self.config.MASK_SHAPE,
                            use_mini_mask=self.config.USE_MINI_MASK)

    def _pooled(self, feature_maps, boxes, image_meta):
        pool = self.config.MASK_POOL_SIZE
        return roi_align_layer(pool, "roi_align_mask")([boxes, image_meta, *feature_maps])  # [B, N, pool, pool, D]

    def build_training(self, feature_maps, rois, image_meta, target_class_ids):
        # The mask loss reads positive ROIs only, so the mask head runs on those (3x faster steps).
        c = self.config
        return fpn_mask_head(self._pooled(feature_maps, rois, image_meta), c.TRAIN_ROIS_PER_IMAGE,
                             c.NUM_CLASSES, c.TRAIN_BN, roi_class_ids=target_class_ids)

    def loss(self, targets, predictions, target_class_ids):
        return mrcnn_mask_loss(targets, target_class_ids, predictions)

    def build_inference(self, feature_maps, detection_boxes, image_meta, detection_class_ids):
        # Real detections only: on a photo a handful of the DETECTION_MAX_INSTANCES rows.
        c = self.config
        return fpn_mask_head(self._pooled(feature_maps, detection_boxes, image_meta), c.DETECTION_MAX_INSTANCES,
                             c.NUM_CLASSES, c.TRAIN_BN, roi_class_ids=detection_class_ids)

    def unmold(self, predictions, class_ids, boxes, image_shape):
        """[H, W, n] bool masks: each detection's class channel, pasted into its box."""
        masks = predictions[np.arange(len(class_ids)), :, :, class_ids]  # [n, mh, mw]
        return paste_masks(masks, boxes, image_shape)

    def export_outputs(self, predictions, class_ids, boxes, image_hw):
        """``detection_masks`` [n, mh, mw] float32: each detection's class channel, box-relative
        probabilities (the exported ``detect_image`` also pastes them, as :meth:`unmold` does)."""
        per_class = tf.transpose(predictions, [0, 3, 1, 2])  # [n, C, mh, mw]
        return {"detection_masks": tf.gather(per_class, class_ids, axis=1, batch_dims=1)}

    def export_output_specs(self):
        return {"detection_masks": tf.TensorSpec(list(self.config.MASK_SHAPE), tf.float32)}
