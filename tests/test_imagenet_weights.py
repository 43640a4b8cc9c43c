"""MaskRCNN.get_imagenet_weights: Keras' ImageNet ResNet file, renamed to matterport's layers, loads onto the backbone.

No network here: the test writes a file in the layout Keras publishes (Keras' own ResNet50 layer names,
random values) into a private Keras cache, so ``keras.utils.get_file`` finds it instead of downloading.
"""
from __future__ import annotations

import hashlib

import keras
import numpy as np
import pytest

from mrcnn.config import config_from_dict
from mrcnn.io import imagenet
from mrcnn.io.h5_legacy import WeightsError, write_legacy_h5
from mrcnn.model import MaskRCNN


def keras_resnet50_file(path):
    """Keras' ResNet50 (no top) with random values, saved in the legacy layout Keras' release uses."""
    resnet = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    layers = [(layer.name, [(f"{layer.name}/{w.name}:0", w.numpy()) for w in layer.weights])
              for layer in resnet.layers]
    write_legacy_h5(path, layers, keras_version="2.2.4")
    return {layer.name: [w.numpy() for w in layer.weights] for layer in resnet.layers if layer.weights}


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def test_names_map_onto_matterports():
    assert imagenet.matterport_layer_name("conv1_conv") == "conv1"
    assert imagenet.matterport_layer_name("conv1_bn") == "bn_conv1"
    assert imagenet.matterport_layer_name("conv2_block1_1_conv") == "res2a_branch2a"
    assert imagenet.matterport_layer_name("conv3_block4_3_bn") == "bn3d_branch2c"
    assert imagenet.matterport_layer_name("conv4_block23_2_conv") == "res4w_branch2b"  # resnet101's last block
    assert imagenet.matterport_layer_name("conv5_block1_0_conv") == "res5a_branch1"
    assert imagenet.matterport_layer_name("predictions") is None


def test_imagenet_weights_load_onto_the_backbone(keras_cache, monkeypatch):
    keras_cache.mkdir(parents=True)
    file_name = imagenet.KERAS_NO_TOP_FILES["resnet50"][0]
    values = keras_resnet50_file(keras_cache / file_name)
    md5 = hashlib.md5((keras_cache / file_name).read_bytes()).hexdigest()
    monkeypatch.setitem(imagenet.KERAS_NO_TOP_FILES, "resnet50", (file_name, md5))

    config = config_from_dict(dict(NAME="inet", NUM_CLASSES=3, BACKBONE="resnet50", IMAGE_MIN_DIM=64,
                                   IMAGE_MAX_DIM=64, IMAGES_PER_GPU=1, POST_NMS_ROIS_INFERENCE=16,
                                   DETECTION_MAX_INSTANCES=4))
    model = MaskRCNN(mode="inference", config=config, model_dir="unused")
    path = model.get_imagenet_weights()
    assert path.endswith("_matterport_names.h5")
    report = model.load_weights(path, by_name=True)
    assert len(report.loaded) == 106 and not report.in_file_not_in_model  # every Keras layer found its place
    km = model.keras_model
    for keras_name, ours in (("conv1_conv", "conv1"), ("conv4_block3_2_conv", "res4c_branch2b"),
                             ("conv5_block1_0_bn", "bn5a_branch1")):
        for expected, variable in zip(values[keras_name], km.get_layer(ours).weights):
            np.testing.assert_array_equal(variable.numpy(), expected)
    assert "fpn_p2" in report.in_model_not_in_file  # the rest of Mask R-CNN keeps its initialisation


def test_offline_the_error_says_where_to_put_the_file(keras_cache):
    with pytest.raises(WeightsError) as info:
        imagenet.imagenet_weights_path("resnet50")
    message = str(info.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and str(keras_cache) in message
    assert "\n" not in message
    with pytest.raises(WeightsError, match="no ImageNet weights for backbone 'resnet18'"):
        imagenet.imagenet_weights_path("resnet18")
