"""Model configuration, with matterport's attribute names, defaults and derived values.

Use it the way matterport's users do: subclass ``Config`` and override class
attributes, or load a TOML file with :func:`load_config`::

    class FashionConfig(Config):
        NAME = "deepfashion2"
        NUM_CLASSES = 1 + 13

    config = load_config("configs/deepfashion2.toml")

Derived values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``, ``NUM_LANDMARKS``) are
computed in ``__init__`` from the others, as matterport does.

Every value is checked when a config is loaded (types, ranges, names of backbones
and heads in ``mrcnn.registry``); errors are one-line ``ConfigError``s naming the
key. :func:`save_config` writes a config back as TOML (each training run keeps the
config it trained with, see ``mrcnn.train.checkpoints``).
Standard library and NumPy only (plus ``mrcnn.registry``, ``mrcnn.ops.image_meta``, ``mrcnn.io.files``).
"""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from mrcnn.config_rules import NUMBER_SETTINGS, ConfigError, validate, validate_schedule  # noqa: F401
from mrcnn.io.files import atomic_write, file_problem
from mrcnn.ops.image_meta import image_meta_size


class Config:
    """Base configuration. Every UPPER_CASE attribute is a setting."""

    # Name of the configuration; checkpoints are written under logs/<NAME><timestamp>/.
    NAME: str | None = None

    # GPUs to train on and images per GPU. Batch size = GPU_COUNT * IMAGES_PER_GPU.
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2

    # CPU threads one TensorFlow op may use in training (intra-op parallelism; mrcnn.train.threads); 0 leaves
    # TensorFlow's default, every core. Small models train faster with 1: the cores run different ops at once.
    TRAIN_THREADS_PER_OP = 0

    # Training steps per epoch and validation steps at the end of each epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # Backbone, by name in mrcnn.registry.BACKBONES: "resnet50" or "resnet101" (matterport's), or
    # the light "resnet18" / "resnet18_half" (ours, for small CPU experiments; no matterport weights).
    BACKBONE = "resnet101"
    # matterport's BACKBONE may be a function (with COMPUTE_BACKBONE_SHAPE for its output shapes); here a
    # function is registered by name: BACKBONES.register("mine", BackboneSpec("custom", build=fn)).
    # COMPUTE_BACKBONE_SHAPE is kept for attribute parity and not read.
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
    # Optional other spellings of class names, {name: [alias, ...]}, used to match the categories
    # of a COCO file to CLASS_NAMES (e.g. DeepFashion2's two naming schemes). Ours.
    CLASS_ALIASES: dict[str, list[str]] | None = None

    # Per-ROI heads beside the box head, by name in mrcnn.registry.ROI_HEADS. matterport's model
    # is ["mask"]; add e.g. your own registered head (see mrcnn.modeling.roi_heads). Ours.
    ROI_HEADS = ["mask"]

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

    # Input resizing: "square", "pad64", "crop" or "none" (see mrcnn.ops.resize.resize_image).
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

    # The landmark head ("landmarks" in ROI_HEADS; ours, Mask R-CNN's keypoint head design): one M x M
    # heatmap per landmark (M = LANDMARK_HEATMAP_SIZE, 2x or 4x LANDMARK_POOL_SIZE) from a stack of
    # LANDMARK_HEAD_CONV_LAYERS 3x3 convolutions of LANDMARK_HEAD_CONV_CHANNELS on ROIAligned features.
    # LANDMARK_COUNTS: landmarks per class for class ids 1, 2, ...; each class owns the next slice of the
    # global table of NUM_LANDMARKS = sum(LANDMARK_COUNTS) (DeepFashion2: configs/deepfashion2.toml, 294).
    LANDMARK_COUNTS: list[int] = []
    LANDMARK_POOL_SIZE = 14
    LANDMARK_HEAD_CONV_LAYERS = 8
    LANDMARK_HEAD_CONV_CHANNELS = 512
    LANDMARK_HEATMAP_SIZE = 56
    # The heatmaps cover the ROI grown by this fraction of its height and width on each side (ours;
    # 0 = the ROI, Mask R-CNN's keypoint head): a detection box a little tighter than the garment
    # then still holds its edge landmarks, which a heatmap over the box itself could not place.
    LANDMARK_ROI_MARGIN = 0.0

    # Ground-truth instances kept per image.
    MAX_GT_INSTANCES = 100

    # Standard deviations dividing the (dy, dx, log dh, log dw) box targets.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Detection layer: maximum detections, minimum score (0 keeps all), per-class NMS IoU.
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3

    # SGD with momentum, L2 weight decay, and global-norm gradient clipping. OPTIMIZER (ours): "sgd"
    # (matterport's) or "adam" (Adam with Keras' defaults, same decay and clipping; mrcnn.train.step).
    OPTIMIZER = "sgd"
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    GRADIENT_CLIP_NORM = 5.0

    # Weights of the losses (matterport's five; an extra ROI head's loss, e.g. the landmark head's
    # "mrcnn_landmark_loss", defaults to 1.0).
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

    # Train the heads on RPN proposals. matterport's False (train them on ROIs given with each image)
    # is not supported: building a training model with it raises.
    USE_RPN_ROIS = True
    # Train BatchNorm layers: False freezes them in inference mode, as matterport does; None (matterport's
    # "normal mode") and True train them (batch statistics in training, moving statistics at inference).
    TRAIN_BN = False

    def __init__(self) -> None:
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM, self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = image_meta_size(self.NUM_CLASSES)
        self.NUM_LANDMARKS = int(sum(self.LANDMARK_COUNTS))

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

    def display_text(self) -> str:
        """matterport's ``display()`` listing: every setting, one per line."""
        return "\n".join(["Configurations:", *(f"{key:30} {val}" for key, val in self.to_dict().items())])

    def display(self) -> None:
        """Print every setting, one per line (matterport's)."""
        print(f"\n{self.display_text()}\n")

    def class_names(self) -> list[str]:
        """Display names of the classes, background first."""
        if self.CLASS_NAMES:
            return list(self.CLASS_NAMES)
        return ["BG"] + [f"class_{i}" for i in range(1, self.NUM_CLASSES)]


# Settings that must not be set from a file (derived in __init__).
DERIVED = {"BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE", "NUM_LANDMARKS"}
# Settings stored as NumPy arrays in matterport's Config.
ARRAY_SETTINGS = {"MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"}


def _type_ok(default: Any, value: Any) -> bool:
    """True when ``value`` from a file may replace ``default`` (same kind; ints for int settings)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple, np.ndarray)):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return type(value) is type(default)


def _setting_names(cls: type[Config]) -> set[str]:
    """The UPPER_CASE attributes of a Config class: the settings a TOML file may set."""
    return {a for a in dir(cls) if a.isupper()}


def config_from_dict(settings: dict[str, Any], base: type[Config] = Config, source: str = "config") -> Config:
    """Build a ``Config`` subclass instance from ``{SETTING: value}``.

    Raises ``ConfigError`` naming the key for an unknown setting, a derived one,
    a value whose type differs from the default's, or a value out of range (:func:`validate`).
    """
    known = _setting_names(base)
    attrs: dict[str, Any] = {}
    for key, value in settings.items():
        if key in DERIVED:
            raise ConfigError(f"{source}: {key} is derived from other settings and cannot be set")
        if key not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        default = getattr(base, key)
        if not (_type_ok(default, value) or key in NUMBER_SETTINGS and isinstance(value, (int, float))):
            want = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                    dict: "a table"}.get(type(default), "a list")
            raise ConfigError(f"{source}: {key} must be {want}, got {type(value).__name__} {value!r}")
        if key in ARRAY_SETTINGS:
            value = np.array(value, dtype=np.float64)
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        elif isinstance(default, tuple):
            value = tuple(value)
        elif key == "LOSS_WEIGHTS":
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
    except OSError as exc:
        raise ConfigError(file_problem(path, exc, "config file")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (save the config file as UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(settings, base=base, source=str(path))


# ---------------------------------------------------------------- writing TOML
def _toml_value(value: Any) -> str:
    """One value in TOML syntax (strings, booleans, numbers, arrays, inline tables)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def config_toml(config: Config) -> str:
    """Every setting of ``config`` but the derived ones, as a TOML file :func:`load_config` reads back.

    Attributes a ``Config`` subclass adds of its own (matterport users add paths, sets, ...) are not
    settings :func:`load_config` knows: they are named in a comment, and ``display()`` lists their values.
    """
    known = _setting_names(Config)
    lines = [f"# Config {config.NAME!r}, written by mrcnn.config.save_config; load it with load_config()."]
    own = []
    for key, value in config.to_dict().items():
        if key == "TRAIN_BN" and value is None:
            value = True  # matterport's None trains BatchNorm as True does here (TOML has no None)
        if key in DERIVED or value is None or callable(value):
            continue
        if key not in known:
            own.append(key)
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    if own:
        lines.insert(1, f"# Not written: attributes of {type(config).__name__} that are not settings of "
                        f"mrcnn.config.Config: {', '.join(own)}")
    return "\n".join(lines) + "\n"


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as TOML (see :func:`config_toml`), atomically."""
    text = config_toml(config).encode("utf-8")
    atomic_write(path, lambda f: f.write(text))
