"""The rules a config must follow: types, ranges, and the constraints between settings.

:func:`validate` runs whenever a config is loaded or changed (``mrcnn.config``); every
error is a one-line :class:`ConfigError` naming the setting (and the file), raised before
any model is built. Standard library, NumPy and ``mrcnn.registry`` only.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from mrcnn.registry import BACKBONES, ROI_HEADS


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the key."""


# Integer settings and their smallest allowed value.
_MIN_INT = {
    "GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "STEPS_PER_EPOCH": 1, "VALIDATION_STEPS": 0, "NUM_CLASSES": 1,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 1, "TOP_DOWN_PYRAMID_SIZE": 1, "RPN_ANCHOR_STRIDE": 1,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 2, "PRE_NMS_LIMIT": 1, "POST_NMS_ROIS_TRAINING": 1,
    "POST_NMS_ROIS_INFERENCE": 1, "IMAGE_MIN_DIM": 0, "IMAGE_MAX_DIM": 0, "IMAGE_CHANNEL_COUNT": 1,
    "TRAIN_ROIS_PER_IMAGE": 1, "POOL_SIZE": 1, "MASK_POOL_SIZE": 1, "MAX_GT_INSTANCES": 1,
    "DETECTION_MAX_INSTANCES": 1, "LANDMARK_POOL_SIZE": 1, "LANDMARK_HEAD_CONV_LAYERS": 0,
    "LANDMARK_HEAD_CONV_CHANNELS": 1, "LANDMARK_HEATMAP_SIZE": 1, "TRAIN_THREADS_PER_OP": 0,
}
# Number settings and their allowed range (low, high, low inclusive, high inclusive).
_RANGES = {
    "RPN_NMS_THRESHOLD": (0, 1, False, True), "DETECTION_MIN_CONFIDENCE": (0, 1, True, True),
    "DETECTION_NMS_THRESHOLD": (0, 1, False, True), "ROI_POSITIVE_RATIO": (0, 1, False, True),
    "LEARNING_RATE": (0, math.inf, False, False), "LEARNING_MOMENTUM": (0, 1, True, False),
    "WEIGHT_DECAY": (0, math.inf, True, False), "GRADIENT_CLIP_NORM": (0, math.inf, True, False),
    "IMAGE_MIN_SCALE": (0, math.inf, True, False), "LANDMARK_ROI_MARGIN": (0, 1, True, False),
}
# OPTIMIZER values (mrcnn.train.step.make_optimizer builds them).
OPTIMIZERS = ("sgd", "adam")
# Settings that take any number (int or float) in a file.
NUMBER_SETTINGS = frozenset(_RANGES)
# List settings of positive numbers, and their length (None: any).
_POSITIVE_LISTS = {"RPN_ANCHOR_SCALES": None, "RPN_ANCHOR_RATIOS": None, "BACKBONE_STRIDES": None,
                   "MINI_MASK_SHAPE": 2, "MASK_SHAPE": 2, "RPN_BBOX_STD_DEV": 4, "BBOX_STD_DEV": 4}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_values(config, source: str) -> None:
    """Types and ranges of single settings (see the tables above)."""
    for key, low in _MIN_INT.items():
        value = getattr(config, key)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{source}: {key} must be an integer >= {low}, got {value!r}")
    for key, (low, high, low_in, high_in) in _RANGES.items():
        value = getattr(config, key)
        value = 0 if value is None and key == "IMAGE_MIN_SCALE" else value  # matterport's "falsy = off"
        if not (_is_number(value) and math.isfinite(value)) or not (low < value or low_in and value == low) or not (value < high or high_in and value == high):
            bounds = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
            raise ConfigError(f"{source}: {key} must be a finite number in {bounds}, got {value!r}")
    for key, length in _POSITIVE_LISTS.items():
        values = list(np.asarray(getattr(config, key), dtype=object).ravel())
        if (length is not None and len(values) != length) or not values or not all(
                _is_number(v) and math.isfinite(v) and v > 0 for v in values):
            count = f"{length} " if length else ""
            raise ConfigError(f"{source}: {key} must be a list of {count}positive numbers, got {values}")
    mean = list(np.asarray(config.MEAN_PIXEL, dtype=object).ravel())
    if len(mean) != config.IMAGE_CHANNEL_COUNT or not all(_is_number(v) and math.isfinite(v) for v in mean):
        raise ConfigError(f"{source}: MEAN_PIXEL must be {config.IMAGE_CHANNEL_COUNT} finite numbers, got {mean}")
    for key, weight in dict(config.LOSS_WEIGHTS).items():
        if not isinstance(key, str) or not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{source}: LOSS_WEIGHTS[{key!r}] must be a finite number >= 0, got {weight!r}")


def validate(config, source: str = "config") -> None:
    """Check every setting and the constraints between them; raise ``ConfigError`` naming the setting."""
    _check_values(config, source)
    if config.CLASS_NAMES is not None and len(config.CLASS_NAMES) != config.NUM_CLASSES:
        raise ConfigError(
            f"{source}: CLASS_NAMES has {len(config.CLASS_NAMES)} names but NUM_CLASSES is "
            f"{config.NUM_CLASSES} (background included)"
        )
    _check_aliases(config, source)
    if callable(config.BACKBONE):  # matterport's way to plug in a backbone function
        raise ConfigError(f"{source}: BACKBONE is a name here; register a function that builds C1..C5 with "
                          f"mrcnn.registry.BACKBONES.register(name, BackboneSpec(\"custom\", build=...)) "
                          f"and set BACKBONE to that name")
    if config.BACKBONE not in BACKBONES:
        raise ConfigError(f"{source}: BACKBONE must be one of {', '.join(BACKBONES.names())} "
                          f"(mrcnn.registry.BACKBONES), got {config.BACKBONE!r}")
    heads = list(config.ROI_HEADS)
    unknown = [h for h in heads if h not in ROI_HEADS]
    if unknown or "mask" not in heads or len(set(heads)) != len(heads):
        raise ConfigError(f"{source}: ROI_HEADS must list registered heads once each, \"mask\" included "
                          f"(known: {', '.join(ROI_HEADS.names())}), got {heads}")
    _check_landmarks(config, source)
    if config.OPTIMIZER not in OPTIMIZERS:
        raise ConfigError(f"{source}: OPTIMIZER must be one of {', '.join(OPTIMIZERS)}, got {config.OPTIMIZER!r}")
    if config.IMAGE_RESIZE_MODE not in ("square", "pad64", "crop", "none"):
        raise ConfigError(f"{source}: IMAGE_RESIZE_MODE must be square, pad64, crop or none")
    if config.IMAGE_RESIZE_MODE != "none" and (config.IMAGE_MAX_DIM < 64 or config.IMAGE_MAX_DIM % 64):
        raise ConfigError(f"{source}: IMAGE_MAX_DIM must be a positive multiple of 64, got {config.IMAGE_MAX_DIM}")
    if config.IMAGE_RESIZE_MODE == "pad64" and config.IMAGE_MIN_DIM % 64:
        raise ConfigError(f"{source}: IMAGE_MIN_DIM must be a multiple of 64 in pad64 mode, got {config.IMAGE_MIN_DIM}")
    if config.IMAGE_RESIZE_MODE == "crop" and config.IMAGE_MIN_DIM < 64:
        raise ConfigError(f"{source}: IMAGE_MIN_DIM must be at least 64 in crop mode, got {config.IMAGE_MIN_DIM}")
    validate_schedule(config.TRAIN_SCHEDULE, source)
    if len(config.RPN_ANCHOR_SCALES) != len(config.BACKBONE_STRIDES):
        raise ConfigError(f"{source}: RPN_ANCHOR_SCALES needs one scale per BACKBONE_STRIDES entry")
    if list(config.MASK_SHAPE) != [2 * config.MASK_POOL_SIZE] * 2:  # the mask head upsamples its pool once, by 2
        raise ConfigError(f"{source}: MASK_SHAPE must be twice MASK_POOL_SIZE ({2 * config.MASK_POOL_SIZE}, "
                          f"{2 * config.MASK_POOL_SIZE}), got {list(config.MASK_SHAPE)}")
    if config.TRAIN_BN not in (True, False, None):
        raise ConfigError(f"{source}: TRAIN_BN must be true, false or (in Python) None, got {config.TRAIN_BN!r}")


def _check_landmarks(config, source: str) -> None:
    """LANDMARK_COUNTS: one count >= 0 per class but background (or empty when the head is off);
    the landmark head needs them (some > 0) and a heatmap 2x or 4x its pool size."""
    counts = list(config.LANDMARK_COUNTS)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in counts) or (
            counts and len(counts) != config.NUM_CLASSES - 1):
        raise ConfigError(f"{source}: LANDMARK_COUNTS must list {config.NUM_CLASSES - 1} integers >= 0 (landmarks "
                          f"of class ids 1..{config.NUM_CLASSES - 1}), got {counts}")
    if "landmarks" not in config.ROI_HEADS:
        return
    if not sum(counts):
        raise ConfigError(f"{source}: the landmark head (ROI_HEADS has \"landmarks\") needs LANDMARK_COUNTS "
                          f"(landmarks per class, e.g. DeepFashion2's in configs/deepfashion2.toml)")
    pool, size = config.LANDMARK_POOL_SIZE, config.LANDMARK_HEATMAP_SIZE
    if size not in (2 * pool, 4 * pool):
        raise ConfigError(f"{source}: LANDMARK_HEATMAP_SIZE must be 2 or 4 times LANDMARK_POOL_SIZE "
                          f"({2 * pool} or {4 * pool}), got {size}")


def _check_aliases(config, source: str) -> None:
    aliases = config.CLASS_ALIASES
    if aliases is None:
        return
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v)
            for k, v in aliases.items()):
        raise ConfigError(f"{source}: CLASS_ALIASES must be a table of class name = [other spellings]")
    unknown = sorted(set(aliases) - set(config.CLASS_NAMES or ()))
    if unknown:
        raise ConfigError(f"{source}: CLASS_ALIASES names {', '.join(map(repr, unknown))}, which "
                          f"{'are' if len(unknown) > 1 else 'is'} not in CLASS_NAMES")


def validate_schedule(schedule, source: str = "config") -> None:
    """TRAIN_SCHEDULE: a list of {layers: str, epochs: int, lr_scale: number}, epochs increasing."""
    last = 0
    for i, stage in enumerate(schedule):
        where = f"{source}: TRAIN_SCHEDULE[{i}]"
        if not isinstance(stage, dict) or set(stage) - {"layers", "epochs", "lr_scale"}:
            raise ConfigError(f"{where} must be a table with keys layers, epochs and lr_scale")
        if not isinstance(stage.get("layers"), str):
            raise ConfigError(f"{where}.layers must be a string (heads, 3+, 4+, 5+, all or a regex)")
        epochs = stage.get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= last:
            raise ConfigError(f"{where}.epochs must be an integer above the previous stage's ({last})")
        scale = stage.get("lr_scale", 1.0)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            raise ConfigError(f"{where}.lr_scale must be a positive number")
        last = epochs
