"""matterport's inference graph: backbone, FPN, RPN, proposals, box head, detection, ROI heads.

``build_inference_model(config, heads)`` returns a functional Keras model:

    inputs   input_image       [B, H, W, 3]   float32, molded (resized, padded, mean-subtracted RGB)
             input_image_meta  [B, 12 + C]    float32, see mrcnn.ops.image_meta
             input_anchors     [B, A, 4]      float32, (y1, x1, y2, x2) normalized to the molded image
    outputs  detections        [B, D, 6]      (y1, x1, y2, x2, class_id, score), normalized, zero-padded
    (a list, mrcnn_class       [B, R, C]      class probabilities of the R proposals
    named by mrcnn_bbox        [B, R, C, 4]   class-specific deltas of the proposals (÷ BBOX_STD_DEV)
    output_  mrcnn_mask        [B, D, 28, 28, C] mask probabilities of the detections (the mask head)
    names()) rpn_rois          [B, R, 4]      proposals, normalized
             rpn_class         [B, A, 2]      RPN (background, foreground) probabilities
             rpn_bbox          [B, A, 4]      RPN deltas (÷ RPN_BBOX_STD_DEV)
             <extra heads>     [B, D, ...]    each extra ROI head's output, in config.ROI_HEADS order
with D = DETECTION_MAX_INSTANCES, R = POST_NMS_ROIS_INFERENCE, C = NUM_CLASSES. The first
seven are matterport's, in its order (``keras_model.predict`` callers unpack them by position).

Mixed precision: under the ``mixed_float16`` policy the backbone and the heads compute in
float16, but every layer that handles boxes (proposals with their NMS, ROI Align's crop boxes,
the detection layer; in training also anchors and ROI targets) is built with
``dtype=BOX_DTYPE`` (float32): Keras casts its float inputs to float32, so box coordinates
never round to float16's 11-bit precision.
"""
from __future__ import annotations

import keras

from mrcnn.layers import BOX_DTYPE
from mrcnn.layers.detection import DetectionLayer
from mrcnn.layers.glue import DetectionBoxes, DetectionClassIds
from mrcnn.modeling.backbones import build_feature_maps
from mrcnn.modeling.box_head import box_head_on_rois
from mrcnn.modeling.rpn import proposal_layer, rpn_over_pyramid

# matterport's outputs, in its order; the mask head's output takes the "mrcnn_mask" slot.
MATTERPORT_OUTPUTS = ("detections", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois", "rpn_class", "rpn_bbox")


def output_names(heads) -> tuple[str, ...]:
    """Names of the inference model's outputs, in order: matterport's seven, then the extra heads'."""
    return MATTERPORT_OUTPUTS + tuple(h.output_name for h in heads if h.output_name not in MATTERPORT_OUTPUTS)


def build_inference_model(config, heads) -> keras.Model:
    """matterport's inference-mode Mask R-CNN with ``heads`` (see module docstring).

    Args:
      config: the model ``Config``.
      heads: the ROI heads (``mrcnn.modeling.roi_heads.build_roi_heads(config)``); must include the mask head.
    """
    input_image = keras.Input(shape=(None, None, config.IMAGE_SHAPE[2]), name="input_image")
    input_image_meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    input_anchors = keras.Input(shape=(None, 4), name="input_anchors")

    feature_maps, rpn_feature_maps = build_feature_maps(input_image, config)
    _, rpn_class, rpn_bbox = rpn_over_pyramid(rpn_feature_maps, config)

    num_proposals = config.POST_NMS_ROIS_INFERENCE
    rpn_rois = proposal_layer(config, num_proposals)([rpn_class, rpn_bbox, input_anchors])  # [B, R, 4]
    _, mrcnn_class, mrcnn_bbox = box_head_on_rois(feature_maps, rpn_rois, input_image_meta, config, num_proposals)

    detections = DetectionLayer(
        bbox_std_dev=config.BBOX_STD_DEV,
        min_confidence=config.DETECTION_MIN_CONFIDENCE,
        max_instances=config.DETECTION_MAX_INSTANCES,
        nms_threshold=config.DETECTION_NMS_THRESHOLD,
        name="mrcnn_detection",
        dtype=BOX_DTYPE,
    )([rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])  # [B, D, 6]
    detection_boxes = DetectionBoxes(name="detection_boxes", dtype=BOX_DTYPE)(detections)  # [B, D, 4]
    detection_class_ids = DetectionClassIds(name="detection_class_ids")(detections)  # [B, D], 0 = padding

    outputs = {"detections": detections, "mrcnn_class": mrcnn_class, "mrcnn_bbox": mrcnn_bbox,
               "rpn_rois": rpn_rois, "rpn_class": rpn_class, "rpn_bbox": rpn_bbox}
    for head in heads:
        outputs[head.output_name] = head.build_inference(feature_maps, detection_boxes, input_image_meta,
                                                         detection_class_ids)
    return keras.Model([input_image, input_image_meta, input_anchors],
                       [outputs[name] for name in output_names(heads)], name="mask_rcnn")
