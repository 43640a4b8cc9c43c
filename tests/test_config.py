"""Configs as matterport users write them: Config subclasses, checked like TOML files, and recorded with runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrcnn.config import Config, ConfigError, config_toml, load_config


class Tiny(Config):
    NAME = "tiny"
    NUM_CLASSES = 3
    BACKBONE = "resnet18_half"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1


@pytest.mark.parametrize("settings, message", [
    ({"IMAGE_MAX_DIM": 100}, "IMAGE_MAX_DIM must be a positive multiple of 64"),
    ({"RPN_ANCHOR_SCALES": (16, 32, 64, 128)}, "RPN_ANCHOR_SCALES needs one scale per BACKBONE_STRIDES"),
    ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE must be twice MASK_POOL_SIZE (28, 28)"),
    ({"ROI_POSITIVE_RATIO": 1.5}, "ROI_POSITIVE_RATIO"),
    ({"IMAGE_RESIZE_MODE": "fit"}, "IMAGE_RESIZE_MODE must be square, pad64, crop or none"),
    ({"TRAIN_BN": "yes"}, "TRAIN_BN must be true, false or (in Python) None"),
    ({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 100}, "IMAGE_MIN_DIM must be a multiple of 64 in pad64 mode"),
    ({"BACKBONE": staticmethod(lambda image, stage5=False, train_bn=None: None)},
     'BACKBONE is a name here; register a function that builds C1..C5 with mrcnn.registry.BACKBONES.register'),
])
def test_a_config_subclass_is_checked_when_the_model_is_made(settings, message):
    # Before: the model was built and detect() failed in Keras' FPN ("Dimensions must be equal"), or ran on
    # anchors that did not fit the RPN's outputs.
    from mrcnn.model import MaskRCNN

    config = type("Bad", (Tiny,), settings)()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        MaskRCNN(mode="inference", config=config, model_dir="unused")
    assert str(error.value).startswith("Bad: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("train_bn, learns", [(None, True), (True, True), (False, False)])
def test_train_bn_none_trains_batchnorm_as_in_matterport(train_bn, learns):
    # matterport's TRAIN_BN = None is "the normal mode": BatchNorm learns in training. It was read as False.
    from mrcnn.modeling.backbones import BatchNorm

    layer = BatchNorm(train_bn)
    batch = np.full((4, 2, 2, 3), 5.0, np.float32)
    layer(batch, training=True)
    assert bool(np.abs(np.asarray(layer.moving_mean)).max() > 0) == learns
    inference = np.asarray(layer(batch, training=False))
    mean, variance = np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)
    np.testing.assert_allclose(inference, (batch - mean) / np.sqrt(variance + layer.epsilon), rtol=1e-5)


def test_a_run_records_a_subclass_with_attributes_of_its_own(tmp_path):
    # matterport users add their own attributes; a path, a set or a None in a list has no TOML form, and
    # train() failed writing the run's config.toml. They are named, not written; the rest loads back.
    class Shop(Tiny):
        DATASET_DIR = Path("/data/shop")
        SKIP_IDS = {1, 2}
        CLASS_WEIGHTS = [None, 1.0]
        TRAIN_BN = None

    text = config_toml(Shop())
    assert "# Not written: attributes of Shop that are not settings of mrcnn.config.Config: " in text
    assert "CLASS_WEIGHTS, DATASET_DIR, SKIP_IDS" in text
    (tmp_path / "config.toml").write_text(text)
    again = load_config(tmp_path / "config.toml")
    assert again.to_dict().keys() == Tiny().to_dict().keys()
    assert (again.NAME, again.BACKBONE, again.IMAGE_MAX_DIM) == ("tiny", "resnet18_half", 128)
    assert again.TRAIN_BN is True  # None trains BatchNorm; TOML has no None, so the run records true


class Nucleus(Config):
    """The settings of matterport's nucleus sample (samples/nucleus): random 512 px crops at 2x scale, many small
    objects, a 3-value np.array MEAN_PIXEL, and an inference subclass in "pad64"."""
    NAME = "nucleus"
    IMAGES_PER_GPU = 6
    NUM_CLASSES = 1 + 1
    STEPS_PER_EPOCH = (657 - 25) // 6
    DETECTION_MIN_CONFIDENCE = 0
    BACKBONE = "resnet50"
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGE_MIN_SCALE = 2.0
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    RPN_NMS_THRESHOLD = 0.9
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MEAN_PIXEL = np.array([43.53, 39.56, 48.22])
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 400


class NucleusInference(Nucleus):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    RPN_NMS_THRESHOLD = 0.7


def test_matterports_nucleus_configs_are_valid_and_mold_as_its_sample_expects():
    from mrcnn.config_rules import validate
    from mrcnn.ops.mold import mold_images

    for config in (Nucleus(), NucleusInference()):
        validate(config, type(config).__name__)
    assert list(Nucleus().IMAGE_SHAPE) == [512, 512, 3] and Nucleus().BATCH_SIZE == 6
    c = NucleusInference()
    images = [np.zeros((600, 700, 3), np.uint8)]
    molded, metas, windows = mold_images(images, mode=c.IMAGE_RESIZE_MODE, min_dim=c.IMAGE_MIN_DIM,
                                         max_dim=c.IMAGE_MAX_DIM, min_scale=c.IMAGE_MIN_SCALE,
                                         mean_pixel=c.MEAN_PIXEL, num_classes=c.NUM_CLASSES)
    # IMAGE_MIN_SCALE 2 doubles the photo (1200 x 1400); pad64 centres it in 1216 x 1408.
    assert molded.shape == (1, 1216, 1408, 3)
    np.testing.assert_array_equal(windows[0], [8, 4, 1208, 1404])
    assert metas.shape == (1, 12 + 2) and metas[0, 11] == 2.0  # the scale, after id, shapes and window
