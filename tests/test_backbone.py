"""The light resnet18 backbone: C2..C5 interface, layer names, parameter count, config value."""
from __future__ import annotations

import re

import numpy as np
import pytest


def _resnet18_parameter_count(widths=(64, 128, 256, 512)) -> int:
    """ResNet-18 (He et al. 2016, Table 1) without its classifier, every conv with a bias, BN with 4 arrays."""
    def conv(k, cin, cout):
        return k * k * cin * cout + cout + 4 * cout  # kernel, bias, BatchNorm gamma/beta/mean/variance

    total = conv(7, 3, widths[0])
    cin = widths[0]
    for width in widths:
        for block in range(2):
            total += conv(3, cin, width) + conv(3, width, width)
            if block == 0 and cin != width:
                total += conv(1, cin, width)  # projection shortcut
            cin = width
    return total


def _build(architecture, side=64):
    import keras

    from mrcnn.modeling.backbones import resnet_graph

    image = keras.Input(shape=(side, side, 3))
    return keras.Model(image, resnet_graph(image, architecture, train_bn=True))


def test_resnet18_gives_c2_to_c5_at_strides_4_to_32():
    model = _build("resnet18")
    outputs = model(np.zeros((2, 64, 64, 3), np.float32))
    shapes = [tuple(o.shape) for o in outputs]
    assert shapes == [(2, 16, 16, 64), (2, 16, 16, 64), (2, 8, 8, 128), (2, 4, 4, 256), (2, 2, 2, 512)]


def test_resnet18_has_resnet18_parameter_count():
    assert _build("resnet18").count_params() == _resnet18_parameter_count()


def test_resnet18_half_has_half_the_channels():
    model = _build("resnet18_half")
    shapes = [tuple(o.shape) for o in model(np.zeros((1, 64, 64, 3), np.float32))]
    assert shapes == [(1, 16, 16, 32), (1, 16, 16, 32), (1, 8, 8, 64), (1, 4, 4, 128), (1, 2, 2, 256)]
    assert model.count_params() == _resnet18_parameter_count((32, 64, 128, 256))


def test_resnet18_layer_names_follow_matterport_groups():
    from mrcnn.train.layer_groups import LAYER_GROUPS

    names = [layer.name for layer in _build("resnet18").layers if layer.weights]
    assert names[:2] == ["conv1", "bn_conv1"]
    assert {n for n in names if n.startswith("res5")} == {
        "res5a_branch2a", "res5a_branch2b", "res5a_branch1", "res5b_branch2a", "res5b_branch2b"}
    four_plus = [n for n in names if re.fullmatch(LAYER_GROUPS["4+"], n)]
    assert four_plus and all(n[3] in "45" or n[2] in "45" for n in four_plus)
    assert not any(re.fullmatch(LAYER_GROUPS["4+"], n) for n in names if n.startswith(("res2", "res3", "bn2")))


def test_config_accepts_resnet18_and_names_the_choices_otherwise():
    from mrcnn.config import ConfigError, config_from_dict

    assert config_from_dict({"BACKBONE": "resnet18"}).BACKBONE == "resnet18"
    with pytest.raises(ConfigError, match="resnet18"):
        config_from_dict({"BACKBONE": "resnet34"})


def test_full_model_builds_with_resnet18_and_a_narrow_pyramid():
    from mrcnn.config import config_from_dict
    from mrcnn.model import MaskRCNN

    config = config_from_dict({"BACKBONE": "resnet18", "TOP_DOWN_PYRAMID_SIZE": 32, "IMAGE_MIN_DIM": 128,
                               "IMAGE_MAX_DIM": 128, "NUM_CLASSES": 3, "IMAGES_PER_GPU": 1,
                               "FPN_CLASSIF_FC_LAYERS_SIZE": 64, "POST_NMS_ROIS_INFERENCE": 50,
                               "DETECTION_MAX_INSTANCES": 5})
    model = MaskRCNN(mode="inference", config=config)
    widths = {layer.name: layer.weights[0].shape[-1] for layer in model.keras_model.layers
              if layer.name.startswith("mrcnn_mask_conv")}
    assert widths == {f"mrcnn_mask_conv{i}": 32 for i in range(1, 5)}  # as wide as the pyramid
    rpn = model.keras_model.get_layer("rpn_model").get_layer("rpn_conv_shared")
    assert rpn.weights[0].shape[-1] == 64  # twice the pyramid (matterport: 512 for 256)
    detections = model.detect([np.zeros((100, 120, 3), np.uint8)])
    assert detections[0]["masks"].shape[:2] == (100, 120)
