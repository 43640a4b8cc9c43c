"""matterport's ``.h5`` weight files: read, write, load into a Keras 3 model, inspect.

The file format is the legacy Keras 2 ``save_weights`` HDF5 layout, which
matterport's released weights (``mask_rcnn_coco.h5``) and checkpoints use:

    /                       attrs: layer_names  [L] names of every layer, model order
                                   backend, keras_version  (scalar strings)
    /<layer>                attrs: weight_names [W] e.g. "conv1/kernel:0"
                                   (an empty float64 array when the layer has none)
    /<layer>/<weight name>  dataset, e.g. /conv1/conv1/kernel:0, float32
                            /rpn_model/rpn_conv_shared/bias:0 (nested model)

String attributes come back from h5py as ``bytes``, ``numpy.bytes_`` or ``str``
depending on who wrote them; all are accepted. A Keras 2 full-model save (the
same groups under ``/model_weights``) is read too.

A file weight is matched to a model variable by (sublayer, leaf):
``rpn_model/rpn_conv_shared/kernel:0`` is the ``kernel`` of the layer
``rpn_conv_shared`` inside the top-level layer ``rpn_model``; a
``TimeDistributed`` layer answers to its wrapper's name. Layers are matched by
name, never by position, because matterport's training and inference models
order their layers differently.

This module needs h5py and NumPy; it receives a built ``keras.Model`` and never
builds one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

# The heads whose shapes depend on NUM_CLASSES; matterport's standard exclude list.
HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
# HDF5 object headers hold at most 64 KiB; Keras 2 split longer attributes into
# numbered chunks (layer_names0, layer_names1, ...) above this many bytes.
_MAX_ATTR_BYTES = 64512
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# (layer name, [(weight name, array)]) in file order, e.g. ("conv1", [("conv1/kernel:0", arr)]).
LayerWeights = tuple[str, list[tuple[str, np.ndarray]]]


class WeightsError(Exception):
    """A weights file is missing, damaged or does not fit the model (one-line message)."""


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass
class WeightsFile:
    """Everything in a legacy weights file.

    ``layers`` maps every name of ``layer_names`` (file order) to its weights,
    ``[(weight_name, array)]`` in ``weight_names`` order; weightless layers map to ``[]``.
    """

    path: str
    layer_names: list[str]
    layers: dict[str, list[tuple[str, np.ndarray]]]
    backend: str | None = None
    keras_version: str | None = None

    @property
    def weighted_layer_names(self) -> list[str]:
        return [name for name in self.layer_names if self.layers[name]]


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


@dataclasses.dataclass
class WeightsInfo:
    """Summary of a weights file, from names and shapes only (values are not read)."""

    path: str
    file_bytes: int
    layout: str
    backend: str | None
    keras_version: str | None
    mode: str            # "training", "inference" or "unknown"
    mode_evidence: str
    backbone: str        # "resnet50", "resnet101" or "unknown (N res4 blocks)"
    num_classes: int | None
    num_parameters: int
    num_non_trainable: int  # BatchNorm moving mean/variance
    num_layers: int
    num_weighted_layers: int
    num_arrays: int
    layers: list[tuple[str, list[tuple[str, tuple[int, ...]]]]]  # weighted layers, file order

    def to_dict(self, with_layers: bool = False) -> dict:
        """JSON-ready dict; ``layers`` (name, weights as [name, shape]) only when asked."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "layers"}
        if with_layers:
            data["layers"] = [{"name": n, "weights": [[w, list(s)] for w, s in ws]}
                              for n, ws in self.layers]
        return data

    def text(self) -> str:
        """Human-readable summary, one fact per line."""
        classes = "unknown" if self.num_classes is None else str(self.num_classes)
        return "\n".join([
            f"file:            {self.path} ({self.file_bytes:,} bytes)",
            f"layout:          {self.layout}",
            f"saved by:        backend {self.backend or '?'}, Keras {self.keras_version or '?'}",
            f"mode:            {self.mode} ({self.mode_evidence})",
            f"backbone:        {self.backbone}",
            f"classes:         {classes} (including background)",
            f"parameters:      {self.num_parameters:,} "
            f"({self.num_non_trainable:,} BatchNorm moving statistics)",
            f"layers:          {self.num_layers} ({self.num_weighted_layers} with weights, "
            f"{self.num_arrays} arrays)",
        ])


# ----------------------------------------------------------------------------- reading


def _to_str(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise WeightsError(f"expected a string attribute, found {value!r}")


def _attr(attrs, name: str):
    """Attribute ``name``, joining Keras 2's numbered chunks (name0, name1, ...)."""
    if name in attrs:
        return attrs[name]
    chunks, i = [], 0
    while f"{name}{i}" in attrs:
        chunks.append(np.asarray(attrs[f"{name}{i}"]).ravel())
        i += 1
    return np.concatenate(chunks) if chunks else None


def _attr_names(attrs, name: str) -> list[str]:
    """A list-of-strings attribute (S-array, vlen str array or empty float array)."""
    value = _attr(attrs, name)
    if value is None:
        return []
    array = np.asarray(value).ravel()
    if array.size == 0:
        return []
    return [_to_str(v) for v in array]


def _attr_text(attrs, name: str) -> str | None:
    if name not in attrs:
        return None
    value = attrs[name]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    return _to_str(value)


def _has_hdf5_signature(path: Path) -> bool:
    """HDF5 puts its signature at byte 0, or after a user block at 512, 1024, 2048, ..."""
    size, offset = path.stat().st_size, 0
    with open(path, "rb") as fh:
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if path.is_dir():
        raise WeightsError(f"{path} is a directory, not a weights file")
    try:
        is_hdf5 = _has_hdf5_signature(path)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not is_hdf5:
        raise WeightsError(f"{path} is not an HDF5 file (a Keras .h5 weights file was expected)")


@contextlib.contextmanager
def _open_h5(path) -> Iterator:
    """Open ``path`` read-only; yield the group holding ``layer_names``.

    Every failure (missing, truncated, not HDF5, not a Keras weights file) becomes a
    one-line :class:`WeightsError`.
    """
    import h5py

    path = Path(path)
    _check_readable(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        if "truncated" in str(exc):
            expected = re.search(r"stored_eof\s*=\s*(\d+)", str(exc))
            of = f" of {int(expected.group(1)):,}" if expected else ""
            raise WeightsError(f"{path} is truncated ({path.stat().st_size:,}{of} bytes); the "
                               "download or copy was incomplete, fetch the file again") from None
        raise WeightsError(f"cannot read {path} as HDF5: {str(exc).splitlines()[0]}") from None
    with h5:
        root = h5
        if _attr(root.attrs, "layer_names") is None and "model_weights" in h5:
            root = h5["model_weights"]
        if _attr(root.attrs, "layer_names") is None:
            hint = " (it looks like a Keras 3 .weights.h5 file)" if "layers" in h5 or "vars" in h5 else ""
            raise WeightsError(f"{path} is an HDF5 file but not a Keras 2 weights file: "
                               f"no layer_names attribute{hint}")
        try:
            yield root
        except OSError as exc:
            raise WeightsError(f"{path} is damaged: {str(exc).splitlines()[0]}") from None


def _file_layers(root, path) -> list[tuple[str, list[tuple[str, object]]]]:
    """Every layer of the file: ``[(layer, [(weight_name, h5py.Dataset)])]``, file order."""
    layers = []
    for name in _attr_names(root.attrs, "layer_names"):
        try:
            group = root[name]
        except KeyError:
            raise WeightsError(f"{path} is damaged: layer {name!r} is listed but has no group") from None
        weights = []
        for weight_name in _attr_names(group.attrs, "weight_names"):
            try:
                weights.append((weight_name, group[weight_name]))
            except KeyError:
                raise WeightsError(f"{path} is damaged: weight {name}/{weight_name} is missing") from None
        layers.append((name, weights))
    return layers


def read_weights(path) -> WeightsFile:
    """Read a legacy Keras 2 weights file completely into memory.

    Returns a :class:`WeightsFile`; arrays keep the file's dtype (float32 for
    matterport) and shapes (Conv2D kernels HWIO; Conv2DTranspose (kh, kw, out, in)).
    """
    with _open_h5(path) as root:
        layers = {name: [(w, ds[()]) for w, ds in weights]
                  for name, weights in _file_layers(root, path)}
        return WeightsFile(path=str(path), layer_names=list(layers), layers=layers,
                           backend=_attr_text(root.attrs, "backend"),
                           keras_version=_attr_text(root.attrs, "keras_version"))


# ----------------------------------------------------------------------------- writing


def _string_array(names: Sequence[str], str_attrs: str):
    import h5py

    if str_attrs == "str":
        return np.array(names, dtype=h5py.string_dtype("utf-8"))
    return np.array([n.encode("utf-8") for n in names])  # fixed-length "S" array


def _set_names(attrs, key: str, names: Sequence[str], str_attrs: str) -> None:
    """Write a list of names, as an empty float64 array when empty (as Keras 2 did)."""
    if not names:
        attrs[key] = np.asarray([])
        return
    array = _string_array(names, str_attrs)
    n_chunks = 1 if str_attrs == "str" else -(-array.nbytes // _MAX_ATTR_BYTES)
    if n_chunks == 1:
        attrs[key] = array
        return
    for i, chunk in enumerate(np.array_split(array, n_chunks)):
        attrs[f"{key}{i}"] = chunk


def _set_text(attrs, key: str, text: str, str_attrs: str) -> None:
    import h5py

    if str_attrs == "vlen":  # what Keras 2 + h5py 2 wrote; h5py 3 reads it back as str
        attrs.create(key, data=text.encode("ascii"), dtype=h5py.string_dtype("ascii"))
    elif str_attrs == "bytes":
        attrs[key] = np.bytes_(text.encode("utf-8"))
    else:
        attrs[key] = text


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: h5py creates the file itself, with the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_legacy_h5(path, layers: Sequence[LayerWeights], *, backend: str = "tensorflow",
                    keras_version: str = "2.1.6", str_attrs: str = "vlen") -> None:
    """Write a legacy Keras 2 ``save_weights`` file, atomically (temp file + rename).

    Args:
      layers: ``[(layer_name, [(weight_name, array), ...]), ...]`` in ``layer_names``
        order; weight names relative to the layer, e.g. ``"conv1/kernel:0"`` or
        ``"rpn_conv_shared/kernel:0"``; weightless layers have ``[]``.
      str_attrs: how strings are stored. ``"vlen"``: name lists as fixed-length
        byte arrays and backend/keras_version as variable-length strings (matterport's
        files); ``"bytes"``: everything fixed-length bytes; ``"str"``: everything
        variable-length UTF-8 strings.
    """
    import h5py

    if str_attrs not in ("vlen", "bytes", "str"):
        raise ValueError(f"str_attrs must be 'vlen', 'bytes' or 'str', not {str_attrs!r}")
    with _atomic_output(Path(path)) as tmp, h5py.File(tmp, "w") as h5:
        _set_names(h5.attrs, "layer_names", [name for name, _ in layers], str_attrs)
        _set_text(h5.attrs, "backend", backend, str_attrs)
        _set_text(h5.attrs, "keras_version", keras_version, str_attrs)
        for name, weights in layers:
            group = h5.create_group(name)
            _set_names(group.attrs, "weight_names", [w for w, _ in weights], str_attrs)
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=np.asarray(value))


# ----------------------------------------------------------------------------- model side


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


# ----------------------------------------------------------------------------- loading


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
    """Raise one WeightsError naming the first shape mismatch (and how many layers differ)."""
    bad = [(layer, leaf, tuple(ds.shape), tuple(var.shape))
           for layer, layer_pairs in pairs for var, ds, leaf in layer_pairs
           if tuple(ds.shape) != tuple(var.shape)]
    if not bad:
        return
    layer, leaf, file_shape, model_shape = bad[0]
    others = len({b[0] for b in bad}) - 1
    more = f" (and {others} more layer{'s' if others > 1 else ''})" if others else ""
    classes = _file_class_count(file_layers)
    count = f" ({classes})" if classes else ""
    raise WeightsError(
        f"shape mismatch in layer {layer!r}, weight {leaf}: {file_shape} in the file, "
        f"{model_shape} in the model{more}. Set NUM_CLASSES to the file's class count{count}, "
        f"or exclude the heads: exclude={list(HEAD_LAYERS)}")


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
    with _open_h5(path) as root:
        file_layers = [(n, w) for n, w in _file_layers(root, path) if w]
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


def save_weights(model, path, *, layer_names: Sequence[str] | None = None) -> None:
    """Save ``model`` in the legacy Keras 2 layout that matterport's tooling reads.

    ``layer_names`` (default: every top-level layer in model order, weightless ones
    included, as Keras 2 did) chooses which layers get a group and in which order;
    each must be a layer of the model. Written atomically (temp file + rename).
    """
    by_name = {layer.name: layer for layer in model.layers}
    names = list(by_name) if layer_names is None else list(layer_names)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise WeightsError(f"layer_names has names the model lacks: {', '.join(unknown)}")
    layers = [(name, [(f"{sub}/{leaf}:0", np.asarray(var.numpy()))
                      for sub, leaf, var in _model_variables(by_name[name])])
              for name in names]
    write_legacy_h5(path, layers)


# ----------------------------------------------------------------------------- inspecting

# Layers only matterport's training model has, and only its inference model has.
_TRAINING_MARKERS = ("proposal_targets", "input_gt_boxes", "input_rpn_match", "mrcnn_mask_loss")
_INFERENCE_MARKERS = ("mrcnn_detection",)
_RES4_BLOCKS_TO_BACKBONE = {6: "resnet50", 23: "resnet101"}


def _detect_mode(layer_names: list[str], weighted_names: list[str]) -> tuple[str, str]:
    """("training" | "inference" | "unknown", evidence) from the layer names and order."""
    names = set(layer_names)
    found = [m for m in _TRAINING_MARKERS if m in names]
    if found:
        return "training", f"has training-only layers: {', '.join(found)}"
    found = [m for m in _INFERENCE_MARKERS if m in names]
    if found:
        return "inference", f"has inference-only layer {found[0]}"
    if "mrcnn_mask_conv1" in weighted_names and "mrcnn_class_conv1" in weighted_names:
        mask_first = weighted_names.index("mrcnn_mask_conv1") < weighted_names.index("mrcnn_class_conv1")
        return (("training", "mask head layers come before the class head")
                if mask_first else ("inference", "class head layers come before the mask head"))
    return "unknown", "no Mask R-CNN head layers"


def _detect_backbone(weighted_names: list[str]) -> str:
    blocks = {m.group(1) for n in weighted_names if (m := re.fullmatch(r"res4(\w+)_branch2a", n))}
    if not blocks:
        return "unknown (no res4 blocks)"
    if not any(n.endswith("_branch2c") for n in weighted_names):  # basic blocks: two 3x3 convs, no 2c
        return "resnet18 or resnet18_half (basic blocks)" if len(blocks) == 2 else "basic-block ResNet"
    return _RES4_BLOCKS_TO_BACKBONE.get(len(blocks), f"unknown ({len(blocks)} res4 blocks)")


def _detect_classes(layers) -> int | None:
    """Class count (background included) from the heads' output widths."""
    shapes = {name: [s for _, s in ws] for name, ws in layers}
    if "mrcnn_class_logits" in shapes:
        return int(shapes["mrcnn_class_logits"][0][-1])
    if "mrcnn_mask" in shapes:
        return int(shapes["mrcnn_mask"][0][-1])
    if "mrcnn_bbox_fc" in shapes:
        return int(shapes["mrcnn_bbox_fc"][0][-1]) // 4
    return None


def inspect_weights(path) -> WeightsInfo:
    """Describe a weights file without reading its values (fast on 257 MB files)."""
    with _open_h5(path) as root:
        all_layers = _file_layers(root, path)
        layers = [(n, [(w, tuple(ds.shape)) for w, ds in ws]) for n, ws in all_layers if ws]
        layout = ("Keras 2 full-model save (weights under /model_weights)" if root.name != "/"
                  else "Keras 2 save_weights (legacy HDF5, matterport)")
        backend = _attr_text(root.attrs, "backend") or _attr_text(root.file.attrs, "backend")
        keras_version = (_attr_text(root.attrs, "keras_version")
                         or _attr_text(root.file.attrs, "keras_version"))
    layer_names = [n for n, _ in all_layers]
    weighted = [n for n, _ in layers]
    mode, evidence = _detect_mode(layer_names, weighted)
    shapes = [(w, s) for _, ws in layers for w, s in ws]
    return WeightsInfo(
        path=str(path), file_bytes=Path(path).stat().st_size, layout=layout,
        backend=backend, keras_version=keras_version, mode=mode, mode_evidence=evidence,
        backbone=_detect_backbone(weighted), num_classes=_detect_classes(layers),
        num_parameters=sum(int(np.prod(s)) for _, s in shapes),
        num_non_trainable=sum(int(np.prod(s)) for w, s in shapes if "moving_" in w),
        num_layers=len(layer_names), num_weighted_layers=len(layers), num_arrays=len(shapes),
        layers=layers)
