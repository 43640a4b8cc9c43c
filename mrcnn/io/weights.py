"""Loading matterport-layout ``.h5`` weights into a Keras 3 model by layer name, and saving a model in that layout.

A file weight is matched to a model variable by (sublayer, leaf):
``rpn_model/rpn_conv_shared/kernel:0`` is the ``kernel`` of the layer
``rpn_conv_shared`` inside the top-level layer ``rpn_model``; a
``TimeDistributed`` layer answers to its wrapper's name. Layers are matched by
name, never by position, because matterport's training and inference models
order their layers differently. Every shape is checked before any variable
changes, so a failed load leaves the model untouched.

The file format itself is :mod:`mrcnn.io.h5_legacy`. This module receives a
built ``keras.Model`` and never builds one.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Sequence

import numpy as np

from mrcnn.io.h5_legacy import WeightsError, open_h5, read_file_layers, write_legacy_h5

log = logging.getLogger(__name__)


class WeightsShapeError(WeightsError):
    """A layer's weights in the file have other shapes than in the model.

    Attributes: ``layers`` (names of the mismatched layers, file order) and ``file_classes``
    (the file's class count, from ``mrcnn_class_logits``, or None); the caller that knows the
    model's config can add the fix to the message (``MaskRCNN.load_weights`` does).
    """

    def __init__(self, message: str, layers: list[str], file_classes: int | None):
        super().__init__(message)
        self.layers = layers
        self.file_classes = file_classes


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_weights` did, by layer name (layers with weights only)."""

    path: str
    loaded: list[str]
    excluded: list[str]
    in_file_not_in_model: list[str]
    in_model_not_in_file: list[str]
    parameters_loaded: int = 0

    def summary(self) -> str:
        """Multi-line human-readable report."""
        lines = [f"Loaded {len(self.loaded)} layers ({self.parameters_loaded:,} parameters) "
                 f"from {self.path}"]
        for title, names in (("Excluded", self.excluded),
                             ("In file but not in model (ignored)", self.in_file_not_in_model),
                             ("In model but not in file (left as initialised)",
                              self.in_model_not_in_file)):
            if names:
                lines.append(f"{title} ({len(names)}): {', '.join(names)}")
        return "\n".join(lines)


def _model_variables(layer) -> list[tuple[str, str, object]]:
    """Variables of one top-level layer as ``[(sublayer, leaf, variable)]``, build order.

    ``sublayer`` is the name used in the file: the layer's own name, a nested
    model's inner layer name, or a ``TimeDistributed`` wrapper's name.
    """
    import keras

    if isinstance(layer, keras.layers.TimeDistributed):
        return [(layer.name, v.name, v) for v in layer.layer.weights]
    if isinstance(layer, keras.Model):
        return [entry for inner in layer.layers for entry in _model_variables(inner)]
    entries = [(layer.name, v.name, v) for v in layer.weights]
    if len({(s, leaf) for s, leaf, _ in entries}) < len(entries):  # composite custom layer
        entries = [(v.path.split("/")[-2], v.name, v) for v in layer.weights]
    return entries


def model_weight_layers(model) -> dict[str, list[tuple[str, str, object]]]:
    """Top-level layers of ``model`` that have weights, in model order, with their variables."""
    layers = {}
    for layer in model.layers:
        entries = _model_variables(layer)
        if entries:
            layers[layer.name] = entries
    return layers


def _split_weight_name(weight_name: str, layer_name: str) -> tuple[str, str]:
    """``"rpn_conv_shared/kernel:0"`` -> ``("rpn_conv_shared", "kernel")``; bare leaf -> layer."""
    parts = re.sub(r":\d+$", "", weight_name).split("/")
    return (parts[-2] if len(parts) > 1 else layer_name), parts[-1]




def _pair_layer(name: str, file_weights, model_entries) -> list[tuple[object, object, str]]:
    """Pair one layer's file datasets with model variables: ``[(variable, dataset, leaf)]``.

    Pairs by (sublayer, leaf); when the sublayer names differ (Keras 2 sometimes
    suffixed them, e.g. ``conv1_1/kernel:0``) but the leaves match in order, pairs by position.
    """
    file_keys = [_split_weight_name(w, name) for w, _ in file_weights]
    model_keys = [(sub, leaf) for sub, leaf, _ in model_entries]
    if sorted(file_keys) == sorted(model_keys):
        by_key = dict(zip(file_keys, (ds for _, ds in file_weights)))
        return [(var, by_key[(sub, leaf)], f"{sub}/{leaf}") for sub, leaf, var in model_entries]
    if [leaf for _, leaf in file_keys] == [leaf for _, leaf in model_keys]:
        return [(var, ds, f"{sub}/{leaf}")
                for (sub, leaf, var), (_, ds) in zip(model_entries, file_weights)]
    have = ", ".join("/".join(k) for k in file_keys)
    want = ", ".join("/".join(k) for k in model_keys)
    raise WeightsError(f"layer {name!r} has weights [{have}] in the file but the model expects "
                       f"[{want}]; the file was saved from a different architecture")


def _file_class_count(file_layers) -> int | None:
    for name, weights in file_layers:
        if name == "mrcnn_class_logits" and weights:
            return int(weights[0][1].shape[-1])
    return None


def _check_shapes(pairs, file_layers) -> None:
    """Raise one WeightsShapeError naming the first shape mismatch (and how many layers differ)."""
    bad = [(layer, leaf, tuple(ds.shape), tuple(var.shape))
           for layer, layer_pairs in pairs for var, ds, leaf in layer_pairs
           if tuple(ds.shape) != tuple(var.shape)]
    if not bad:
        return
    layer, leaf, file_shape, model_shape = bad[0]
    layers = list(dict.fromkeys(b[0] for b in bad))
    more = f" (and {len(layers) - 1} more layer{'s' if len(layers) > 2 else ''})" if len(layers) > 1 else ""
    classes = _file_class_count(file_layers)
    known = f"; the file's heads are for {classes} classes" if classes else ""
    raise WeightsShapeError(f"shape mismatch in layer {layer!r}, weight {leaf}: {file_shape} in the file, "
                            f"{model_shape} in the model{more}{known}", layers, classes)


def _check_same_order(file_names: list[str], model_names: list[str]) -> None:
    if file_names == model_names:
        return
    for i, (f_name, m_name) in enumerate(zip(file_names, model_names)):
        if f_name != m_name:
            break
    else:
        i, f_name, m_name = min(len(file_names), len(model_names)), "(end)", "(end)"
    raise WeightsError(
        f"by_name=False needs the file's weighted layers in the model's order, but layer #{i} "
        f"is {f_name!r} in the file and {m_name!r} in the model (training and inference "
        "models order layers differently); load with by_name=True")


def load_weights(model, path, *, exclude: Sequence[str] | None = (),
                 by_name: bool = True) -> LoadReport:
    """Load a legacy Keras 2 / matterport ``.h5`` file into ``model`` by layer name.

    Args:
      model: a built ``keras.Model`` whose weighted layers carry matterport's names.
      exclude: layer names not to load (matterport's semantics: a non-empty list
        forces ``by_name=True``). The file is not filtered.
      by_name: ``False`` is accepted only when the file's weighted layers come in
        exactly the model's order (then it is the same as by name).

    Every shape is checked before any variable changes, so a failed load leaves
    the model untouched. Raises :class:`WeightsError`. Returns a :class:`LoadReport`
    (also logged at INFO; layers left unloaded at WARNING).
    """
    if isinstance(exclude, str):
        exclude = [exclude]
    excluded_names = set(exclude or ())
    model_layers = model_weight_layers(model)
    if not model_layers:
        raise WeightsError("the model has no weights yet; build it before loading weights")
    with open_h5(path) as root:
        file_layers = [(n, w) for n, w in read_file_layers(root, path) if w]
        file_names = [n for n, _ in file_layers]
        if not by_name and not excluded_names:
            _check_same_order(file_names, list(model_layers))
        pairs, report = _plan_load(file_layers, model_layers, excluded_names, model, path)
        _check_shapes(pairs, file_layers)
        for _, layer_pairs in pairs:
            for var, ds, _ in layer_pairs:
                var.assign(np.asarray(ds[()], dtype=var.dtype))
    _log_report(report)
    return report


def _plan_load(file_layers, model_layers, excluded_names, model, path):
    """Decide which file layer goes to which model layer; build the report."""
    all_model_names = {layer.name for layer in model.layers}
    pairs, loaded, excluded, file_only, params = [], [], [], [], 0
    for name, weights in file_layers:
        if name in excluded_names:
            excluded.append(name)
        elif name in model_layers:
            layer_pairs = _pair_layer(name, weights, model_layers[name])
            pairs.append((name, layer_pairs))
            loaded.append(name)
            params += sum(int(np.prod(ds.shape)) for _, ds, _ in layer_pairs)
        elif name in all_model_names:
            raise WeightsError(f"layer {name!r} has {len(weights)} weights in the file "
                               "but none in the model")
        else:
            file_only.append(name)
    in_file = {n for n, _ in file_layers}
    model_only = [n for n in model_layers if n not in in_file and n not in excluded_names]
    unknown = sorted(excluded_names - all_model_names - in_file)
    if unknown:
        log.warning("exclude names no layer of the model or file: %s", ", ".join(unknown))
    report = LoadReport(path=str(path), loaded=loaded, excluded=excluded,
                        in_file_not_in_model=file_only, in_model_not_in_file=model_only,
                        parameters_loaded=params)
    return pairs, report


def _log_report(report: LoadReport) -> None:
    log.info("%s", report.summary())
    if report.in_model_not_in_file:
        log.warning("%d weighted layers of the model are not in %s and keep their initial "
                    "values: %s", len(report.in_model_not_in_file), report.path,
                    ", ".join(report.in_model_not_in_file))


# ----------------------------------------------------------------------------- saving


def save_weights(model, path, *, layer_names: Sequence[str] | None = None, notes: dict | None = None) -> None:
    """Save ``model`` in the legacy Keras 2 layout that matterport's tooling reads.

    ``layer_names`` (default: every top-level layer in model order, weightless ones
    included, as Keras 2 did) chooses which layers get a group and in which order;
    each must be a layer of the model. ``notes``: extra JSON attributes (``h5_legacy.write_legacy_h5``).
    Written atomically (temp file + rename).
    """
    by_name = {layer.name: layer for layer in model.layers}
    names = list(by_name) if layer_names is None else list(layer_names)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise WeightsError(f"layer_names has names the model lacks: {', '.join(unknown)}")
    layers = [(name, [(f"{sub}/{leaf}:0", np.asarray(var.numpy()))
                      for sub, leaf, var in _model_variables(by_name[name])])
              for name in names]
    write_legacy_h5(path, layers, notes=notes)
