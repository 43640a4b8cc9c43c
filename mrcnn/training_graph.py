"""matterport's training-mode graph: the inference graph's front plus in-graph targets.

``build_training_model(config)`` returns a functional Keras model:

    inputs   input_image        [B, S, S, 3]   float32, molded images
             input_image_meta   [B, 12 + C]    float32 (active_class_ids filled)
             input_rpn_match    [B, A, 1]      int32, 1 positive / -1 negative / 0 neutral anchor
             input_rpn_bbox     [B, T_rpn, 4]  float32, deltas of the positive anchors (÷ RPN_BBOX_STD_DEV)
             input_gt_class_ids [B, G]         int32, 0 = padding, negative = crowd
             input_gt_boxes     [B, G, 4]      float32, (y1, x1, y2, x2) pixels of the molded image
             input_gt_masks     [B, m, m, G]   bool, mini masks (m = MINI_MASK_SHAPE) or full masks
    outputs  a dict of the tensors the losses need (see ``TRAINING_OUTPUTS``).

Losses are not part of the graph: ``mrcnn.trainer`` computes them in ``train_step``.

Mixed precision: as in ``mrcnn.graph``, every layer that handles boxes (anchors, proposals,
ROI targets, ROI Align) computes in float32 (``FLOAT32``) under a mixed-precision policy.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from mrcnn.anchors import get_anchors
from mrcnn.boxes import norm_boxes_graph
from mrcnn.graph import FLOAT32, build_backbone_and_rpn, classifier_roi_align, mask_roi_align, proposal_layer
from mrcnn.heads import fpn_classifier_head, fpn_mask_head
from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.targets import DetectionTargetLayer

TRAINING_INPUTS = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
                   "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")
TRAINING_OUTPUTS = ("rpn_class_logits", "rpn_bbox", "rpn_rois", "rois", "target_class_ids", "target_bbox",
                    "target_mask", "mrcnn_class_logits", "mrcnn_bbox", "mrcnn_mask", "active_class_ids")


@keras.saving.register_keras_serializable(package="mrcnn")
class ConstantAnchors(layers.Layer):
    """The anchors of a fixed molded image shape, broadcast to the batch: [B, A, 4] normalised."""

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
    """[B, G, 4] pixel boxes -> normalised by the molded image size (taken from the image tensor)."""

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
        return (input_shape[0], input_shape[1] - 12)


def training_inputs(config) -> dict:
    """The ``keras.Input`` tensors of the training model, keyed by name."""
    image_shape = [int(v) for v in config.IMAGE_SHAPE]
    mask_shape = list(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else image_shape[:2]
    gt = config.MAX_GT_INSTANCES
    num_anchors = len(get_anchors(image_shape, config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                  config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE))
    return {
        "input_image": keras.Input(shape=image_shape, name="input_image"),
        "input_image_meta": keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta"),
        "input_rpn_match": keras.Input(shape=(num_anchors, 1), dtype="int32", name="input_rpn_match"),
        "input_rpn_bbox": keras.Input(shape=(config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), name="input_rpn_bbox"),
        "input_gt_class_ids": keras.Input(shape=(gt,), dtype="int32", name="input_gt_class_ids"),
        "input_gt_boxes": keras.Input(shape=(gt, 4), name="input_gt_boxes"),
        "input_gt_masks": keras.Input(shape=(*mask_shape, gt), dtype="bool", name="input_gt_masks"),
    }


def build_training_model(config) -> keras.Model:
    """matterport's training-mode Mask R-CNN (see module docstring)."""
    if not config.USE_RPN_ROIS:
        raise ValueError("USE_RPN_ROIS = False (training the heads on given ROIs) is not supported")
    inputs = training_inputs(config)
    image, image_meta = inputs["input_image"], inputs["input_image_meta"]

    feature_maps, (rpn_class_logits, rpn_class, rpn_bbox) = build_backbone_and_rpn(image, config)
    anchors = ConstantAnchors(config.IMAGE_SHAPE, config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                              config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE, name="anchors", dtype=FLOAT32)(image)
    rpn_rois = proposal_layer(config, config.POST_NMS_ROIS_TRAINING)(
        [rpn_class, rpn_bbox, anchors])  # [B, POST_NMS_ROIS_TRAINING, 4] normalised
    rpn_rois = StopGradient(name="rpn_rois_fixed", dtype=FLOAT32)(rpn_rois)

    gt_boxes = NormalizeGtBoxes(name="input_gt_boxes_normalized", dtype=FLOAT32)([inputs["input_gt_boxes"], image])
    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        roi_positive_ratio=config.ROI_POSITIVE_RATIO,
        bbox_std_dev=config.BBOX_STD_DEV,
        mask_shape=config.MASK_SHAPE,
        use_mini_mask=config.USE_MINI_MASK,
        name="proposal_targets",
        dtype=FLOAT32,
    )([rpn_rois, inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]])

    num_rois = config.TRAIN_ROIS_PER_IMAGE
    pooled = classifier_roi_align(config)([rois, image_meta, *feature_maps])
    mrcnn_class_logits, _, mrcnn_bbox = fpn_classifier_head(
        pooled, num_rois, config.NUM_CLASSES, config.FPN_CLASSIF_FC_LAYERS_SIZE, config.TRAIN_BN)
    pooled_masks = mask_roi_align(config)([rois, image_meta, *feature_maps])
    # The mask loss reads positive ROIs only, so the mask head runs on those (3x faster steps).
    mrcnn_mask = fpn_mask_head(pooled_masks, num_rois, config.NUM_CLASSES, config.TRAIN_BN,
                               roi_class_ids=target_class_ids)

    outputs = {
        "rpn_class_logits": rpn_class_logits, "rpn_bbox": rpn_bbox, "rpn_rois": rpn_rois, "rois": rois,
        "target_class_ids": target_class_ids, "target_bbox": target_bbox, "target_mask": target_mask,
        "mrcnn_class_logits": mrcnn_class_logits, "mrcnn_bbox": mrcnn_bbox, "mrcnn_mask": mrcnn_mask,
        "active_class_ids": ActiveClassIds(name="active_class_ids", dtype=FLOAT32)(image_meta),
    }
    return keras.Model(inputs, outputs, name="mask_rcnn_training")
