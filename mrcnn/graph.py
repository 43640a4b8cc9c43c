"""Wires backbone, FPN, RPN, proposals, ROIAlign, heads and detection into Keras models.

``build_inference_model(config)`` returns matterport's inference graph:

    inputs   input_image       [B, H, W, 3]   float32, molded (resized, padded, mean-subtracted RGB)
             input_image_meta  [B, 12 + C]    float32, see mrcnn.image_meta
             input_anchors     [B, A, 4]      float32, (y1, x1, y2, x2) normalised to the molded image
    outputs  mrcnn_detection   [B, D, 6]      (y1, x1, y2, x2, class_id, score), normalised, zero-padded
             mrcnn_class       [B, R, C]      class probabilities of the R proposals
             mrcnn_bbox        [B, R, C, 4]   class-specific deltas of the proposals (÷ BBOX_STD_DEV)
             mrcnn_mask        [B, D, 28, 28, C] mask probabilities of the detections
             ROI               [B, R, 4]      proposals, normalised
             rpn_class         [B, A, 2]      RPN (background, foreground) probabilities
             rpn_bbox          [B, A, 4]      RPN deltas (÷ RPN_BBOX_STD_DEV)
with D = DETECTION_MAX_INSTANCES, R = POST_NMS_ROIS_INFERENCE, C = NUM_CLASSES.

Mixed precision: under the ``mixed_float16`` policy the backbone and the heads compute in
float16, but every layer that handles boxes (proposals with their NMS, ROI Align's crop boxes,
the detection layer; in training also anchors and ROI targets) is built with
``dtype="float32"`` (``FLOAT32``): Keras casts its float inputs to float32, so box coordinates
never round to float16's 11-bit precision. Both graphs build these layers with the helpers here.
"""
from __future__ import annotations

import keras
from keras import layers

from mrcnn.backbone import fpn_graph, resnet_graph
from mrcnn.detection import DetectionLayer
from mrcnn.heads import build_rpn_model, fpn_classifier_head, fpn_mask_head
from mrcnn.proposals import ProposalLayer
from mrcnn.roi_align import PyramidROIAlign


# Layers that handle box coordinates compute in float32 whatever the global dtype policy.
FLOAT32 = "float32"


def proposal_layer(config, proposal_count: int) -> ProposalLayer:
    """matterport's "ROI" layer: RPN outputs + anchors -> [B, proposal_count, 4] normalised proposals."""
    return ProposalLayer(
        proposal_count=proposal_count,
        nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
        name="ROI",
        dtype=FLOAT32,
    )


def classifier_roi_align(config) -> PyramidROIAlign:
    """ROI Align for the box head: [B, N, POOL_SIZE, POOL_SIZE, C]."""
    return PyramidROIAlign((config.POOL_SIZE, config.POOL_SIZE), name="roi_align_classifier", dtype=FLOAT32)


def mask_roi_align(config) -> PyramidROIAlign:
    """ROI Align for the mask head: [B, N, MASK_POOL_SIZE, MASK_POOL_SIZE, C]."""
    return PyramidROIAlign((config.MASK_POOL_SIZE, config.MASK_POOL_SIZE), name="roi_align_mask", dtype=FLOAT32)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """[B, D, 6] detections -> [B, D, (y1, x1, y2, x2)] normalised boxes."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 4)


def _rpn_over_pyramid(rpn_feature_maps, config):
    """Runs the shared RPN model on every level and concatenates along the anchor axis."""
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE)
    per_level = [rpn(p) for p in rpn_feature_maps]  # per level: [logits, probs, bbox]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    return [layers.Concatenate(axis=1, name=name)([level[i] for level in per_level]) for i, name in enumerate(names)]


def build_backbone_and_rpn(input_image, config):
    """Shared front of both modes: ResNet, FPN and RPN. Returns (mrcnn_feature_maps, rpn outputs)."""
    _, c2, c3, c4, c5 = resnet_graph(input_image, config.BACKBONE, train_bn=config.TRAIN_BN)
    p2, p3, p4, p5, p6 = fpn_graph(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    rpn_class_logits, rpn_class, rpn_bbox = _rpn_over_pyramid([p2, p3, p4, p5, p6], config)
    return [p2, p3, p4, p5], (rpn_class_logits, rpn_class, rpn_bbox)


def build_inference_model(config) -> keras.Model:
    """matterport's inference-mode Mask R-CNN as a functional Keras model (see module docstring)."""
    input_image = keras.Input(shape=(None, None, config.IMAGE_SHAPE[2]), name="input_image")
    input_image_meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    input_anchors = keras.Input(shape=(None, 4), name="input_anchors")

    feature_maps, (_, rpn_class, rpn_bbox) = build_backbone_and_rpn(input_image, config)

    num_proposals = config.POST_NMS_ROIS_INFERENCE
    rpn_rois = proposal_layer(config, num_proposals)([rpn_class, rpn_bbox, input_anchors])  # [B, R, 4]

    pooled = classifier_roi_align(config)([rpn_rois, input_image_meta, *feature_maps])
    _, mrcnn_class, mrcnn_bbox = fpn_classifier_head(
        pooled, num_proposals, config.NUM_CLASSES, config.FPN_CLASSIF_FC_LAYERS_SIZE, config.TRAIN_BN)

    detections = DetectionLayer(
        bbox_std_dev=config.BBOX_STD_DEV,
        min_confidence=config.DETECTION_MIN_CONFIDENCE,
        max_instances=config.DETECTION_MAX_INSTANCES,
        nms_threshold=config.DETECTION_NMS_THRESHOLD,
        name="mrcnn_detection",
        dtype=FLOAT32,
    )([rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])  # [B, D, 6]

    detection_boxes = DetectionBoxes(name="detection_boxes", dtype=FLOAT32)(detections)
    pooled_masks = mask_roi_align(config)([detection_boxes, input_image_meta, *feature_maps])
    mrcnn_mask = fpn_mask_head(pooled_masks, config.DETECTION_MAX_INSTANCES, config.NUM_CLASSES, config.TRAIN_BN)

    return keras.Model(
        [input_image, input_image_meta, input_anchors],
        [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox],
        name="mask_rcnn",
    )
