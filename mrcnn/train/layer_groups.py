"""Which layers train: matterport's named layer groups ("heads", "3+", "4+", "5+", "all") or a regex.

``MaskRCNN.train(layers=...)`` and the config's TRAIN_SCHEDULE name a group; this
module turns it into the ``trainable`` flag of every layer with weights.
Keras only; no TensorFlow ops.
"""
from __future__ import annotations

import re

import keras

# matterport's named layer groups for train(layers=...); anything else is used as a regex.
LAYER_GROUPS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


def layer_regex(layers: str, heads=()) -> str:
    """The regex of a named group, or ``layers`` itself when it is already a regex.

    ``heads``: the model's ROI heads; every named group also trains their layers
    (``RoiHead.layer_pattern``), as it trains matterport's ``mrcnn_*`` head layers.
    """
    regex = LAYER_GROUPS.get(layers, layers)
    if layers in LAYER_GROUPS:
        regex = "|".join([regex, *(f"({head.layer_pattern})" for head in heads)])
    re.compile(regex)  # a bad regex fails here, with re's message
    return regex


def set_trainable(model: keras.Model, regex: str) -> list[str]:
    """Makes the layers with weights whose name fully matches ``regex`` trainable, freezes the rest.

    Nested models (``rpn_model``) are searched recursively. Returns the names of
    the trainable layers.
    """
    trainable = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = set_trainable(layer, regex)
            layer.trainable = bool(inner)
            if inner:  # setting trainable on a model resets its layers: apply the regex again
                set_trainable(layer, regex)
            trainable += inner
            continue
        if not layer.weights:
            continue
        layer.trainable = re.fullmatch(regex, layer.name) is not None
        if layer.trainable:
            trainable.append(layer.name)
    return trainable


def matching_layers(model: keras.Model, regex: str) -> list[str]:
    """Names of the layers with weights (nested models searched) whose name fully matches ``regex``; changes
    nothing (:func:`set_trainable` is the one that sets the flags)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += matching_layers(layer, regex)
        elif layer.weights and re.fullmatch(regex, layer.name):
            found.append(layer.name)
    return found


def no_layer_message(layers: str) -> str:
    """The one-line error for a ``layers`` value that selects no layer (a misspelt group, a regex of no name)."""
    return (f"layers {layers!r} selects no layer with weights: use a group ({', '.join(LAYER_GROUPS)}) or a "
            f"regex that matches layer names (e.g. \"mrcnn_.*\")")
