"""The toy dataset and config of the ROI-head tests (test_roi_head_seam.py, test_landmark_head.py).

64x64 images with one to three filled rectangles of two classes ("wide" and "tall"), and a tiny
model config that trains on them in seconds. Each test module subclasses ``Rectangles`` with the
``load_instance_fields`` its head needs and passes its own settings to ``toy_config``.
"""
from __future__ import annotations

import numpy as np

from mrcnn.config import config_from_dict
from mrcnn.data.dataset import Dataset

SIDE = 64
NUM_CLASSES = 3  # background, "wide", "tall"


class Rectangles(Dataset):
    """``count`` images of one to three filled rectangles (sides 16 .. ``max_side`` - 1 pixels), seeded."""

    def __init__(self, count: int, seed: int, max_side: int = 48):
        super().__init__()
        self.add_class("toy", 1, "wide")
        self.add_class("toy", 2, "tall")
        rng = np.random.default_rng(seed)
        for i in range(count):
            boxes = []
            for _ in range(rng.integers(1, 4)):
                h, w = rng.integers(16, max_side, size=2)
                y, x = rng.integers(0, SIDE - h), rng.integers(0, SIDE - w)
                boxes.append((int(y), int(x), int(h), int(w), 1 if w >= h else 2))  # (y, x, h, w, class id)
            self.add_image("toy", i, path=None, boxes=boxes)

    def load_image(self, image_id):
        image = np.full((SIDE, SIDE, 3), 40, np.uint8)
        for k, (y, x, h, w, class_id) in enumerate(self.image_info[image_id]["boxes"]):
            image[y:y + h, x:x + w] = (200, 60 + 60 * class_id, 30 * k)
        return image

    def load_mask(self, image_id):
        boxes = self.image_info[image_id]["boxes"]
        masks = np.zeros((SIDE, SIDE, len(boxes)), bool)
        for k, (y, x, h, w, _) in enumerate(boxes):
            masks[y:y + h, x:x + w, k] = True
        return masks, np.array([b[4] for b in boxes], np.int32)


def toy_config(**settings):
    """A tiny model for 64x64 images (resnet18_half, pyramid 16, 16 ROIs); ``settings`` override or add keys."""
    base = dict(NAME="toy", NUM_CLASSES=NUM_CLASSES, BACKBONE="resnet18_half", IMAGE_MIN_DIM=SIDE,
                IMAGE_MAX_DIM=SIDE, IMAGES_PER_GPU=2, TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=16,
                RPN_ANCHOR_SCALES=[16, 24, 32, 48, 64], PRE_NMS_LIMIT=1000, POST_NMS_ROIS_TRAINING=64,
                POST_NMS_ROIS_INFERENCE=32, TRAIN_ROIS_PER_IMAGE=16, MAX_GT_INSTANCES=4,
                DETECTION_MAX_INSTANCES=6, DETECTION_MIN_CONFIDENCE=0.0, STEPS_PER_EPOCH=3, VALIDATION_STEPS=1,
                MINI_MASK_SHAPE=[14, 14], TRAIN_BN=True, LEARNING_RATE=0.01)
    return config_from_dict({**base, **settings})
