"""matterport's ``.h5`` weight files, the legacy Keras 2 layout: read and write (h5py, no Keras).

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
same groups under ``/model_weights``) is read too. Every failure (missing,
truncated, damaged, not HDF5, not a Keras weights file) is a one-line
:class:`WeightsError` naming the file.

h5py and NumPy only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from mrcnn.io.files import atomic_path

# HDF5 object headers hold at most 64 KiB; Keras 2 split longer attributes into
# numbered chunks (layer_names0, layer_names1, ...) above this many bytes.
_MAX_ATTR_BYTES = 64512
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Root attributes of ours in a weights file start with this (e.g. fseg_epoch_record).
NOTE_PREFIX = "fseg_"

# (layer name, [(weight name, array)]) in file order, e.g. ("conv1", [("conv1/kernel:0", arr)]).
LayerWeights = tuple[str, list[tuple[str, np.ndarray]]]


class WeightsError(Exception):
    """A weights file is missing, damaged or does not fit the model (one-line message)."""


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


# ----------------------------------------------------------------------------- reading


def _to_str(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise WeightsError(f"a name attribute is not UTF-8 text: {bytes(value)[:40]!r}") from None
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


def attr_text(attrs, name: str) -> str | None:
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
def open_h5(path) -> Iterator:
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
        try:
            root = _weights_root(h5, path)
            yield root
        except (OSError, KeyError, RuntimeError) as exc:  # h5py's ways of saying a block is unreadable
            raise WeightsError(f"{path} is damaged: {str(exc).splitlines()[0].strip(chr(39))}") from None
        except WeightsError as exc:
            if type(exc) is not WeightsError or str(path) in str(exc):  # subclasses carry their own details
                raise
            raise WeightsError(f"{path}: {exc}") from None  # every message names the file


def _weights_root(h5, path):
    """The group holding ``layer_names``: the file's root, or ``/model_weights`` of a Keras 2 full-model save."""
    root = h5
    if _attr(root.attrs, "layer_names") is None and "model_weights" in h5:
        root = h5["model_weights"]
    if _attr(root.attrs, "layer_names") is None:
        hint = " (it looks like a Keras 3 .weights.h5 file)" if "layers" in h5 or "vars" in h5 else ""
        raise WeightsError(f"{path} is an HDF5 file but not a Keras 2 weights file: "
                           f"no layer_names attribute{hint}")
    return root


def read_file_layers(root, path) -> list[tuple[str, list[tuple[str, object]]]]:
    """Every layer of the file: ``[(layer, [(weight_name, h5py.Dataset)])]``, file order."""
    import h5py

    layers = []
    for name in _attr_names(root.attrs, "layer_names"):
        try:
            group = root[name]
        except KeyError:
            raise WeightsError(f"{path} is damaged: layer {name!r} is listed but has no group") from None
        weights = []
        for weight_name in _attr_names(group.attrs, "weight_names"):
            try:
                dataset = group[weight_name]
            except KeyError:
                raise WeightsError(f"{path} is damaged: weight {name}/{weight_name} is missing") from None
            if not isinstance(dataset, h5py.Dataset):
                raise WeightsError(f"{path} is damaged: weight {name}/{weight_name} is a group, not an array")
            weights.append((weight_name, dataset))
        layers.append((name, weights))
    return layers


def read_weights(path) -> WeightsFile:
    """Read a legacy Keras 2 weights file completely into memory.

    Returns a :class:`WeightsFile`; arrays keep the file's dtype (float32 for
    matterport) and shapes (Conv2D kernels HWIO; Conv2DTranspose (kh, kw, out, in)).
    """
    with open_h5(path) as root:
        layers = {name: [(w, ds[()]) for w, ds in weights]
                  for name, weights in read_file_layers(root, path)}
        return WeightsFile(path=str(path), layer_names=list(layers), layers=layers,
                           backend=attr_text(root.attrs, "backend"),
                           keras_version=attr_text(root.attrs, "keras_version"))


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


def write_legacy_h5(path, layers: Sequence[LayerWeights], *, backend: str = "tensorflow",
                    keras_version: str = "2.1.6", str_attrs: str = "vlen", notes: dict | None = None) -> None:
    """Write a legacy Keras 2 ``save_weights`` file, atomically (temp file + rename).

    Args:
      layers: ``[(layer_name, [(weight_name, array), ...]), ...]`` in ``layer_names``
        order; weight names relative to the layer, e.g. ``"conv1/kernel:0"`` or
        ``"rpn_conv_shared/kernel:0"``; weightless layers have ``[]``.
      str_attrs: how strings are stored. ``"vlen"``: name lists as fixed-length
        byte arrays and backend/keras_version as variable-length strings (matterport's
        files); ``"bytes"``: everything fixed-length bytes; ``"str"``: everything
        variable-length UTF-8 strings.
      notes: extra root attributes {name: JSON-able value}, stored as JSON text under
        ``fseg_<name>`` (readers of matterport's layout ignore them; see :func:`read_notes`).
    """
    import h5py

    if str_attrs not in ("vlen", "bytes", "str"):
        raise ValueError(f"str_attrs must be 'vlen', 'bytes' or 'str', not {str_attrs!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        _set_names(h5.attrs, "layer_names", [name for name, _ in layers], str_attrs)
        _set_text(h5.attrs, "backend", backend, str_attrs)
        _set_text(h5.attrs, "keras_version", keras_version, str_attrs)
        for key, value in (notes or {}).items():
            _set_text(h5.attrs, f"{NOTE_PREFIX}{key}", json.dumps(value), "str")
        for name, weights in layers:
            group = h5.create_group(name)
            _set_names(group.attrs, "weight_names", [w for w, _ in weights], str_attrs)
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=np.asarray(value))


def read_notes(path) -> dict:
    """The ``notes`` a file was written with (see :func:`write_legacy_h5`), {} when it has none."""
    with open_h5(path) as root:
        attrs = root.file.attrs
        return {name[len(NOTE_PREFIX):]: json.loads(attr_text(attrs, name))
                for name in attrs if name.startswith(NOTE_PREFIX)}
