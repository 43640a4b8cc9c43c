"""matterport's module-level functions of ``mrcnn.model``, with its signatures (most take the config).

``mrcnn.model`` re-exports every name here, so ``modellib.log(...)``, ``modellib.load_image_gt(...)``,
``modellib.mold_image(images, config)`` ... run as in matterport's notebooks and scripts. Each is a thin
adapter over the function that owns the rule (``mrcnn.ops``, ``mrcnn.data``).
"""
from __future__ import annotations

import numpy as np

from mrcnn.data.ground_truth import data_generator, load_image_gt  # noqa: F401  (matterport's names)
from mrcnn.data.roi_inspection import build_detection_targets, generate_random_rois  # noqa: F401
from mrcnn.ops import anchors as anchor_ops
from mrcnn.ops import resize as resize_ops
from mrcnn.ops import rpn_targets
from mrcnn.ops.image_meta import compose_image_meta, parse_image_meta, parse_image_meta_graph  # noqa: F401


def log(text, array=None) -> None:
    """Print ``text``, and for an array its shape, min, max and dtype (matterport's debugging print)."""
    if array is not None:
        array = np.asarray(array)
        text = f"{text:<25}shape: {str(array.shape):20}  "
        text += f"min: {array.min():10.5f}  max: {array.max():10.5f}" if array.size else f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    print(text)


def mold_image(images, config):
    """RGB images minus the config's MEAN_PIXEL, float32 (the network's input)."""
    return resize_ops.mold_image(np.asarray(images), config.MEAN_PIXEL)


def unmold_image(normalized_images, config):
    """Inverse of :func:`mold_image`: uint8 RGB."""
    return resize_ops.unmold_image(np.asarray(normalized_images), config.MEAN_PIXEL)


def compute_backbone_shapes(config, image_shape):
    """[levels, (height, width)] of the feature maps for a molded image of ``image_shape``."""
    return anchor_ops.compute_backbone_shapes(image_shape, config.BACKBONE_STRIDES)


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config):
    """RPN targets of one image, matterport's NumPy interface over ``mrcnn.ops.rpn_targets``.

    Args:
      image_shape: unused (kept for matterport's signature).
      anchors: [A, (y1, x1, y2, x2)] pixels. gt_class_ids: [G]. gt_boxes: [G, 4] pixels.
    Returns:
      rpn_match [A] int32 (1, -1, 0) and rpn_bbox [RPN_TRAIN_ANCHORS_PER_IMAGE, 4] float32.
    """
    del image_shape
    match, bbox = rpn_targets.build_rpn_targets(np.asarray(anchors, np.float64), np.asarray(gt_class_ids),
                                                np.asarray(gt_boxes), anchors_per_image=config.RPN_TRAIN_ANCHORS_PER_IMAGE,
                                                rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV)
    return np.asarray(match), np.asarray(bbox)
