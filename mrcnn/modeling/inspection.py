"""Finding tensors in a built model for matterport's inspection calls (``MaskRCNN.run_graph``, ``ancestor``).

Two layers of ours run on other rows than matterport's: ``mrcnn_class_logits`` on the folded
[B*N, C] rows and ``mrcnn_mask`` on the detected (or folded) rows only. A notebook that asks for
their output (``get_layer("mrcnn_mask").output``) gets the layer that has matterport's
[B, N, ...] layout instead (:func:`matterport_view`; the tables are the heads' ``MATTERPORT_VIEWS``).
"""
from __future__ import annotations

from mrcnn.modeling import box_head, mask_head

MATTERPORT_VIEWS = {**box_head.MATTERPORT_VIEWS, **mask_head.MATTERPORT_VIEWS}


def matterport_view(keras_model, tensor):
    """``tensor`` (a Keras tensor of ``keras_model``), or the output in matterport's layout that stands for it."""
    layer = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    present = {layer.name for layer in keras_model.layers}
    for name in MATTERPORT_VIEWS.get(getattr(layer, "name", None), ()):
        if name in present:
            return keras_model.get_layer(name).output
    return tensor


def find_ancestor(tensor, name: str, checked: set | None = None):
    """The Keras tensor whose layer is called ``name`` among ``tensor`` and its inputs, theirs, ...; or None.

    Keras 3 tensors record layers, not TensorFlow ops: ``name`` is a layer name ("ROI", "mrcnn_detection";
    a ``:0`` suffix is ignored). matterport's op names inside a layer ("ROI/rpn_non_max_suppression:0")
    give None, which its notebooks already handle.
    """
    checked = set() if checked is None else checked
    pending = [tensor]
    while pending:
        tensor = pending.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) in checked:
            continue
        checked.add(id(tensor))
        if history.operation.name == name.split(":")[0]:
            return tensor
        pending.extend(history.operation._inbound_nodes[history.node_index].input_tensors)
    return None
