"""matterport's training-mode graph: the inference graph's front plus in-graph ROI targets.

``build_training_model(config, heads)`` returns a functional Keras model:

    inputs   input_image        [B, S, S, 3]   float32, molded images
             input_image_meta   [B, 12 + C]    float32 (active_class_ids filled)
             input_rpn_match    [B, A, 1]      int32, 1 positive / -1 negative / 0 neutral anchor
             input_rpn_bbox     [B, T_rpn, 4]  float32, deltas of the positive anchors (÷ RPN_BBOX_STD_DEV)
             input_gt_class_ids [B, G]         int32, 0 = padding, negative = crowd
             input_gt_boxes     [B, G, 4]      float32, (y1, x1, y2, x2) pixels of the molded image
             input_gt_masks     [B, m, m, G]   bool, mini masks (m = MINI_MASK_SHAPE) or full masks
             input_gt_<field>   [B, G, ...]    each extra head's instance fields (mrcnn.ops.instance_fields)
    outputs  a dict (see ``training_output_names``):
             rpn_class_logits [B, A, 2], rpn_bbox [B, A, 4], rpn_rois [B, P, 4], rois [B, T, 4],
             target_class_ids [B, T] int32, target_bbox [B, T, 4], mrcnn_class_logits [B, T, C],
             mrcnn_bbox [B, T, C, 4], active_class_ids [B, C], and for every ROI head
             target_<name> [B, T, ...] and <output_name> [B, T, ...] (mask: target_mask, mrcnn_mask).

Losses are not part of the graph: ``mrcnn.train.step`` computes them in ``train_step``
from these outputs (``mrcnn.train.losses``).

Mixed precision: as in :mod:`mrcnn.modeling.inference`, every layer that handles boxes
(anchors, proposals, ROI targets, ROI Align) computes in float32 (``BOX_DTYPE``).
"""
from __future__ import annotations

import keras

from mrcnn.layers import BOX_DTYPE
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.layers.glue import ActiveClassIds, ConstantAnchors, InstancesFirst, NormalizeGtBoxes, StopGradient
from mrcnn.modeling.backbones import build_feature_maps
from mrcnn.modeling.box_head import box_head_on_rois
from mrcnn.modeling.roi_heads import instance_fields
from mrcnn.modeling.rpn import proposal_layer, rpn_over_pyramid
from mrcnn.ops.anchors import get_anchors

CORE_INPUTS = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
               "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")
CORE_OUTPUTS = ("rpn_class_logits", "rpn_bbox", "rpn_rois", "rois", "target_class_ids", "target_bbox",
                "mrcnn_class_logits", "mrcnn_bbox", "active_class_ids")


def training_output_names(heads) -> tuple[str, ...]:
    """Keys of the training model's output dict: the core ones, then two per ROI head."""
    return CORE_OUTPUTS + tuple(name for h in heads for name in (f"target_{h.name}", h.output_name))


def training_inputs(config, heads) -> dict:
    """The ``keras.Input`` tensors of the training model, keyed by name (see module docstring)."""
    image_shape = [int(v) for v in config.IMAGE_SHAPE]
    mask_shape = list(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else image_shape[:2]
    gt = config.MAX_GT_INSTANCES
    num_anchors = len(get_anchors(image_shape, config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                  config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE))
    inputs = {
        "input_image": keras.Input(shape=image_shape, name="input_image"),
        "input_image_meta": keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta"),
        "input_rpn_match": keras.Input(shape=(num_anchors, 1), dtype="int32", name="input_rpn_match"),
        "input_rpn_bbox": keras.Input(shape=(config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), name="input_rpn_bbox"),
        "input_gt_class_ids": keras.Input(shape=(gt,), dtype="int32", name="input_gt_class_ids"),
        "input_gt_boxes": keras.Input(shape=(gt, 4), name="input_gt_boxes"),
        "input_gt_masks": keras.Input(shape=(*mask_shape, gt), dtype="bool", name="input_gt_masks"),
    }
    for field in instance_fields(heads):
        inputs[field.input_name] = keras.Input(shape=(gt, *field.shape), dtype=field.dtype, name=field.input_name)
    return inputs


def build_training_model(config, heads) -> keras.Model:
    """matterport's training-mode Mask R-CNN with ``heads`` (see module docstring)."""
    if not config.USE_RPN_ROIS:
        raise ValueError("USE_RPN_ROIS = False (training the heads on given ROIs) is not supported")
    inputs = training_inputs(config, heads)
    image, image_meta = inputs["input_image"], inputs["input_image_meta"]

    feature_maps, rpn_feature_maps = build_feature_maps(image, config)
    rpn_class_logits, rpn_class, rpn_bbox = rpn_over_pyramid(rpn_feature_maps, config)
    anchors = ConstantAnchors(config.IMAGE_SHAPE, config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                              config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE, name="anchors",
                              dtype=BOX_DTYPE)(image)
    rpn_rois = proposal_layer(config, config.POST_NMS_ROIS_TRAINING)(
        [rpn_class, rpn_bbox, anchors])  # [B, POST_NMS_ROIS_TRAINING, 4] normalized
    rpn_rois = StopGradient(name="rpn_rois_fixed", dtype=BOX_DTYPE)(rpn_rois)

    gt_boxes = NormalizeGtBoxes(name="input_gt_boxes_normalized", dtype=BOX_DTYPE)([inputs["input_gt_boxes"], image])
    fields = {"masks": InstancesFirst(name="input_gt_masks_by_instance")(inputs["input_gt_masks"])}
    fields.update({field.name: inputs[field.input_name] for field in instance_fields(heads)})
    target_layer = DetectionTargetLayer(
        head_targets={head.name: (head.roi_targets, head.target_spec()) for head in heads},
        field_names=list(fields),
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        roi_positive_ratio=config.ROI_POSITIVE_RATIO,
        bbox_std_dev=config.BBOX_STD_DEV,
        name="proposal_targets",
        dtype=BOX_DTYPE,
    )
    rois, target_class_ids, target_bbox, *head_targets = target_layer(
        [rpn_rois, inputs["input_gt_class_ids"], gt_boxes, *fields.values()])

    mrcnn_class_logits, _, mrcnn_bbox = box_head_on_rois(feature_maps, rois, image_meta, config,
                                                         config.TRAIN_ROIS_PER_IMAGE)
    outputs = {
        "rpn_class_logits": rpn_class_logits, "rpn_bbox": rpn_bbox, "rpn_rois": rpn_rois, "rois": rois,
        "target_class_ids": target_class_ids, "target_bbox": target_bbox,
        "mrcnn_class_logits": mrcnn_class_logits, "mrcnn_bbox": mrcnn_bbox,
        "active_class_ids": ActiveClassIds(name="active_class_ids", dtype=BOX_DTYPE)(image_meta),
    }
    for head, targets in zip(heads, head_targets):
        outputs[f"target_{head.name}"] = targets
        outputs[head.output_name] = head.build_training(feature_maps, rois, image_meta, target_class_ids)
    return keras.Model(inputs, outputs, name="mask_rcnn_training")
