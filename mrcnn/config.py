"""Model configuration, with matterport's attribute names, defaults and derived values.

Use it the way matterport's users do: subclass ``Config`` and override class
attributes, or load a TOML file with :func:`load_config`::

    class FashionConfig(Config):
        NAME = "deepfashion2"
        NUM_CLASSES = 1 + 13

    config = load_config("configs/deepfashion2.toml")

Derived values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) are
computed in ``__init__`` from the others, as matterport does.
This module imports only the standard library and NumPy.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the key."""


class Config:
    """Base configuration. Every UPPER_CASE attribute is a setting."""

    # Name of the configuration; checkpoints are written under logs/<NAME><timestamp>/.
    NAME: str | None = None

    # GPUs to train on and images per GPU. Batch size = GPU_COUNT * IMAGES_PER_GPU.
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2

    # Training steps per epoch and validation steps at the end of each epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # Backbone: "resnet50" or "resnet101" (matterport's), or the light "resnet18" / "resnet18_half"
    # (ours, for small CPU experiments; no matterport weights exist for them).
    BACKBONE = "resnet101"
    # Not supported (matterport lets it be a callable); kept for attribute parity.
    COMPUTE_BACKBONE_SHAPE = None
    # Strides of the FPN levels P2..P6, in pixels of the molded image.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Width of the two "fully connected" (7x7 and 1x1 conv) layers of the box head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the FPN feature maps.
    TOP_DOWN_PYRAMID_SIZE = 256

    # Number of classes including background.
    NUM_CLASSES = 1
    # Optional display names, background first (len == NUM_CLASSES). Ours, not matterport's.
    CLASS_NAMES: list[str] | None = None

    # Anchor side lengths in pixels, one per FPN level P2..P6.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    # Anchor width / height ratios at every location.
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    # Anchors every RPN_ANCHOR_STRIDE cells of each feature map.
    RPN_ANCHOR_STRIDE = 1
    # IoU threshold of the NMS over RPN proposals.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image sampled to train the RPN.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # Proposals kept by foreground score before NMS.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store instance masks cropped to their box at this size during training.
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)

    # Input resizing: "square", "pad64", "crop" or "none" (see mrcnn.imaging.resize_image).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3

    # RGB mean subtracted from the input image.
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the heads in training, and the positive share of them.
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33

    # ROIAlign output sizes of the box head and the mask head.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    # Output mask size of the mask head.
    MASK_SHAPE = [28, 28]

    # Ground-truth instances kept per image.
    MAX_GT_INSTANCES = 100

    # Standard deviations dividing the (dy, dx, log dh, log dw) box targets.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Detection layer: maximum detections, minimum score (0 keeps all), per-class NMS IoU.
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3

    # SGD with momentum, L2 weight decay, and global-norm gradient clipping.
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    GRADIENT_CLIP_NORM = 5.0

    # Weights of the five losses.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }

    # Stages `fseg train` runs one after the other (ours; matterport's COCO sample hard-codes
    # this schedule): the layer group, the epoch number to stop at, and the learning rate
    # as a multiple of LEARNING_RATE.
    TRAIN_SCHEDULE = [
        {"layers": "heads", "epochs": 40, "lr_scale": 1.0},
        {"layers": "4+", "epochs": 120, "lr_scale": 1.0},
        {"layers": "all", "epochs": 160, "lr_scale": 0.1},
    ]

    # Train the heads on RPN proposals (True) or on given ROIs (False).
    USE_RPN_ROIS = True
    # Train BatchNorm layers (False freezes them in inference mode, as matterport does).
    TRAIN_BN = False

    def __init__(self) -> None:
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM, self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, self.IMAGE_CHANNEL_COUNT])
        # image_meta layout: see mrcnn.image_meta.compose_image_meta.
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    # ------------------------------------------------------------------ access
    def to_dict(self) -> dict[str, Any]:
        """All settings (UPPER_CASE attributes), derived values included."""
        names = sorted(a for a in dir(self) if a.isupper() and not a.startswith("_"))
        return {a: getattr(self, a) for a in names if not callable(getattr(self, a))}

    def to_json(self) -> str:
        def plain(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, tuple):
                return list(v)
            return v

        return json.dumps({k: plain(v) for k, v in self.to_dict().items()}, indent=1, sort_keys=True)

    def display(self) -> None:
        """Print every setting, one per line."""
        print("\nConfigurations:")
        for key, val in self.to_dict().items():
            print(f"{key:30} {val}")
        print()

    def class_names(self) -> list[str]:
        """Display names of the classes, background first."""
        if self.CLASS_NAMES:
            return list(self.CLASS_NAMES)
        return ["BG"] + [f"class_{i}" for i in range(1, self.NUM_CLASSES)]


# Settings that must not be set from a file (derived in __init__).
DERIVED = {"BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE"}
# Settings stored as NumPy arrays in matterport's Config.
ARRAY_SETTINGS = {"MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"}


def _type_ok(default: Any, value: Any) -> bool:
    """True when ``value`` from a file may replace ``default``."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple, np.ndarray)):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict) and set(value) <= set(default)
    return type(value) is type(default)


def config_from_dict(settings: dict[str, Any], base: type[Config] = Config, source: str = "config") -> Config:
    """Build a ``Config`` subclass instance from ``{SETTING: value}``.

    Raises ``ConfigError`` naming the key for an unknown setting, a derived one,
    or a value whose type differs from the default's.
    """
    known = {a for a in dir(base) if a.isupper()}
    attrs: dict[str, Any] = {}
    for key, value in settings.items():
        if key in DERIVED:
            raise ConfigError(f"{source}: {key} is derived from other settings and cannot be set")
        if key not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        default = getattr(base, key)
        if not _type_ok(default, value):
            want = type(default).__name__ if not isinstance(default, np.ndarray) else "list"
            raise ConfigError(f"{source}: {key} must be a {want}, got {type(value).__name__} {value!r}")
        if key in ARRAY_SETTINGS:
            value = np.array(value, dtype=np.float64)
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        elif isinstance(default, tuple):
            value = tuple(value)
        elif isinstance(default, dict):
            value = {**default, **value}
        attrs[key] = value
    cls = type(f"{attrs.get('NAME') or 'Loaded'}Config", (base,), attrs)
    config = cls()
    validate(config, source)
    return config


def with_overrides(config: Config, source: str = "overrides", **settings) -> Config:
    """A copy of ``config`` with some settings changed (derived values recomputed, all checked)."""
    return config_from_dict(settings, base=type(config), source=source)


def load_config(path: str | Path, base: type[Config] = Config) -> Config:
    """Read a TOML config file (flat ``KEY = value`` pairs) into a ``Config``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            settings = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(settings, base=base, source=str(path))


def validate(config: Config, source: str = "config") -> None:
    """Check cross-setting constraints; raise ``ConfigError`` naming the setting."""
    if config.NUM_CLASSES < 1:
        raise ConfigError(f"{source}: NUM_CLASSES must be >= 1 (background included)")
    if config.CLASS_NAMES is not None and len(config.CLASS_NAMES) != config.NUM_CLASSES:
        raise ConfigError(
            f"{source}: CLASS_NAMES has {len(config.CLASS_NAMES)} names but NUM_CLASSES is "
            f"{config.NUM_CLASSES} (background included)"
        )
    if config.BACKBONE not in ("resnet50", "resnet101", "resnet18", "resnet18_half"):
        raise ConfigError(f"{source}: BACKBONE must be resnet50, resnet101, resnet18 or resnet18_half, "
                          f"got {config.BACKBONE!r}")
    if config.IMAGE_RESIZE_MODE not in ("square", "pad64", "crop", "none"):
        raise ConfigError(f"{source}: IMAGE_RESIZE_MODE must be square, pad64, crop or none")
    if config.IMAGE_RESIZE_MODE != "none" and config.IMAGE_MAX_DIM % 64:
        raise ConfigError(f"{source}: IMAGE_MAX_DIM must be a multiple of 64, got {config.IMAGE_MAX_DIM}")
    validate_schedule(config.TRAIN_SCHEDULE, source)
    if len(config.RPN_ANCHOR_SCALES) != len(config.BACKBONE_STRIDES):
        raise ConfigError(f"{source}: RPN_ANCHOR_SCALES needs one scale per BACKBONE_STRIDES entry")


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
