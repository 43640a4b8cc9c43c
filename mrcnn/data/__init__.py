"""Data: matterport's ``Dataset`` API, a COCO reader, and the tf.data training pipeline.

    dataset      Dataset, DatasetError: images, classes, masks and instance fields (NumPy)
    coco         CocoDataset: a COCO instances file (such as ``fseg convert``'s output) (NumPy, pycocotools)
    augmentation Augmentation: fseg's built-in flips, scale jitter and colour changes (TensorFlow)
    image_loader decoding, masks and instance fields at the resized size, unreadable images skipped (TensorFlow)
    pipeline     build_training_dataset / build_validation_dataset: tf.data batches of the training inputs
    ground_truth matterport's load_image_gt and data_generator (NumPy, for scripts and notebooks)
    roi_inspection matterport's random ROIs and their detection targets, for its inspect notebooks

May import :mod:`mrcnn.ops` and :mod:`mrcnn.io`. ``dataset`` and ``coco`` never import TensorFlow
(the names of ``augmentation`` and ``pipeline`` are loaded on first use, e.g.
``mrcnn.data.build_training_dataset``).
"""
from __future__ import annotations

import importlib

from mrcnn.data.dataset import Dataset, DatasetError

# Names re-exported on first use, so ``import mrcnn.data`` stays free of TensorFlow.
_LAZY = {
    "CocoDataset": "mrcnn.data.coco",
    "Augmentation": "mrcnn.data.augmentation",
    "NO_AUGMENTATION": "mrcnn.data.augmentation",
    "build_training_dataset": "mrcnn.data.pipeline",
    "build_validation_dataset": "mrcnn.data.pipeline",
}

__all__ = ["Dataset", "DatasetError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mrcnn.data' has no attribute {name!r}")
