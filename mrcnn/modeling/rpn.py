"""The Region Proposal Network: one small model shared by every FPN level (matterport's layer names).

    rpn_class_logits, rpn_class, rpn_bbox = rpn_over_pyramid([P2, P3, P4, P5, P6], config)

Outputs are concatenated level by level, P2 first, in the anchors' order
(``mrcnn.ops.anchors``), so output row i belongs to anchor i.
"""
from __future__ import annotations

import keras
from keras import layers

from mrcnn.layers import BOX_DTYPE, OUTPUT_DTYPE
from mrcnn.layers.glue import AnchorsPerImage
from mrcnn.layers.proposals import ProposalLayer


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
    x = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw", dtype=OUTPUT_DTYPE)(shared)
    rpn_class_logits = AnchorsPerImage(2, name="rpn_class_logits_flat", dtype=OUTPUT_DTYPE)(x)
    # "rpn_class_xxx" is matterport's own name for this layer (its notebooks ask for it), not a placeholder.
    rpn_probs = layers.Activation("softmax", name="rpn_class_xxx", dtype=OUTPUT_DTYPE)(rpn_class_logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred", dtype=OUTPUT_DTYPE)(shared)
    rpn_bbox = AnchorsPerImage(4, name="rpn_bbox_flat", dtype=OUTPUT_DTYPE)(x)
    return keras.Model(feature_map, [rpn_class_logits, rpn_probs, rpn_bbox], name="rpn_model")


def rpn_over_pyramid(rpn_feature_maps, config):
    """Runs the shared RPN model on every level and concatenates along the anchor axis."""
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE)
    per_level = [rpn(p) for p in rpn_feature_maps]  # per level: [logits, probs, bbox]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    return [layers.Concatenate(axis=1, name=name, dtype=OUTPUT_DTYPE)([level[i] for level in per_level])
            for i, name in enumerate(names)]


def proposal_layer(config, proposal_count: int) -> ProposalLayer:
    """matterport's "ROI" layer: RPN outputs + anchors -> [B, proposal_count, 4] normalized proposals."""
    return ProposalLayer(
        proposal_count=proposal_count,
        nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
        name="ROI",
        dtype=BOX_DTYPE,
    )
