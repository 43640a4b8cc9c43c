"""ImageNet weights for the ResNet backbone: Keras' released ResNet-50/101 files under matterport's layer names.

``MaskRCNN.get_imagenet_weights()`` (matterport's method) returns the path of a legacy ``.h5`` file to
load by name. matterport downloaded an old Keras file whose layers already had its names; the file
Keras publishes today names them its own way, so it is downloaded into the Keras cache (``keras.utils.get_file``,
``$KERAS_HOME``, checked against its MD5) and converted once, next to it, to matterport's names:

    conv1_conv / conv1_bn                ->  conv1 / bn_conv1
    conv{s}_block{b}_{k}_conv / _bn      ->  res{s}{letter b}_branch2{a,b,c for k = 1,2,3} / bn...
    conv{s}_block{b}_0_conv / _bn        ->  res{s}{letter b}_branch1 / bn{s}{letter b}_branch1

Both networks are Caffe-style bottleneck ResNets (stride on the first 1x1 conv, biases on every conv),
so the arrays fit unchanged. Without network access (or when the download fails) a one-line
error says where to put the file yourself.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from mrcnn.io.h5_legacy import WeightsError, read_weights, write_legacy_h5

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# Keras' ImageNet files without the classifier, and their MD5 (as Keras checks them).
KERAS_NO_TOP_FILES = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", "88cf7a10940856eca736dc7b7e228a21"),
}
_BRANCH = {"1": "2a", "2": "2b", "3": "2c", "0": "1"}


def matterport_layer_name(keras_name: str) -> str | None:
    """matterport's name of a layer of Keras' ResNet (see the module docstring); None for other layers."""
    if keras_name == "conv1_conv":
        return "conv1"
    if keras_name == "conv1_bn":
        return "bn_conv1"
    match = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", keras_name)
    if match is None:
        return None
    stage, block, part, kind = match.groups()
    letter = chr(ord("a") + int(block) - 1)
    return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{_BRANCH[part]}"


def convert_to_matterport_names(keras_file, out_path) -> Path:
    """Rewrite a Keras ResNet weights file with matterport's layer names (other layers are left out)."""
    source = read_weights(keras_file)
    layers = []
    for name in source.weighted_layer_names:
        new_name = matterport_layer_name(name)
        if new_name is not None:
            layers.append((new_name, [(f"{new_name}/{w.split('/')[-1]}", value) for w, value in source.layers[name]]))
    if not layers:
        raise WeightsError(f"{keras_file} has no layer of Keras' ResNet (conv1_conv, conv2_block1_1_conv, ...)")
    write_legacy_h5(out_path, layers, keras_version="keras-applications (renamed for matterport)")
    return Path(out_path)


def imagenet_weights_path(backbone: str) -> Path:
    """The ImageNet weights of ``backbone`` under matterport's names: downloaded and converted on first use.

    Raises:
      WeightsError: an unsupported backbone, or the file cannot be downloaded (one line with the URL
        and the cache folder to put it in).
    """
    if backbone not in KERAS_NO_TOP_FILES:
        raise WeightsError(f"no ImageNet weights for backbone {backbone!r} (Keras publishes "
                           f"{', '.join(KERAS_NO_TOP_FILES)})")
    import keras

    file_name, md5 = KERAS_NO_TOP_FILES[backbone]
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")  # Keras' own rule
    cache = keras_home / "models"
    try:
        keras_file = Path(keras.utils.get_file(file_name, KERAS_BASE_URL + file_name, cache_dir=str(keras_home),
                                               cache_subdir="models", file_hash=md5))
    except Exception as exc:  # keras raises plain Exception for URL and hash failures
        raise WeightsError(f"cannot download {KERAS_BASE_URL + file_name} ({str(exc).splitlines()[0]}); "
                           f"download it yourself and put it in {cache}/") from None
    converted = keras_file.with_name(keras_file.stem + "_matterport_names.h5")
    if not converted.is_file():
        convert_to_matterport_names(keras_file, converted)
    return converted
