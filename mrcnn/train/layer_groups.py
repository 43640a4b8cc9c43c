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


def matching_layers(model: keras.Model, regex: str) -> list[str]:
    """Names of the layers with weights whose name fully matches ``regex``, nested models (``rpn_model``)
    searched, in the model's layer order. Changes nothing: :func:`set_trainable` sets the flags."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += matching_layers(layer, regex)
        elif layer.weights and re.fullmatch(regex, layer.name):
            found.append(layer.name)
    return found


def set_trainable(model: keras.Model, regex: str) -> list[str]:
    """Makes the layers of :func:`matching_layers` trainable and freezes every other layer with weights.

    A nested model is trainable when any of its layers is. Returns the names of the trainable layers.
    """
    chosen = matching_layers(model, regex)
    _set_flags(model, set(chosen))
    return chosen


def _set_flags(model: keras.Model, chosen: set[str]) -> bool:
    """Sets ``trainable`` of ``model``'s layers to membership of ``chosen``; True if any is trainable."""
    any_trainable = False
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = True  # setting a model's flag resets its layers' flags: set it first
            inner = _set_flags(layer, chosen)
            if not inner:
                layer.trainable = False
            any_trainable |= inner
        elif layer.weights:
            layer.trainable = layer.name in chosen
            any_trainable |= layer.trainable
    return any_trainable


def no_layer_message(layers: str) -> str:
    """The one-line error for a ``layers`` value that selects no layer (a misspelt group, a regex of no name)."""
    return (f"layers {layers!r} selects no layer with weights: use a group ({', '.join(LAYER_GROUPS)}) or a "
            f"regex that matches layer names (e.g. \"mrcnn_.*\")")
