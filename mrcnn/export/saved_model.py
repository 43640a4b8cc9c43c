"""Writing an export (atomically, with its class names and facts) and describing one without loading it.

An export folder is a TensorFlow SavedModel plus two files of ours:

    saved_model.pb, variables/     the graph of mrcnn.export.serving and the model's weights
    assets/class_names.txt         one class name per line; line k is class id k (line 0 "BG")
    assets.extra/fseg_export.json  how it was made: config name and values the graph uses, weights file,
                                   thresholds, signatures (TF Serving ignores assets.extra/)

:func:`write_export` checks everything before writing anything, builds the folder under a temporary
name beside the target and renames it into place, so a failed or interrupted export leaves no folder
under the real name (and an existing one, replaced with ``force``, stays whole until the rename).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from mrcnn.io.files import file_problem, temporary_sibling
from mrcnn.ops.resize import INFERENCE_RESIZE_MODES

CLASS_NAMES_FILE = "class_names.txt"
INFO_FILE = "fseg_export.json"
INFO_FOLDER = "assets.extra"
SAVED_MODEL_FILE = "saved_model.pb"


class ExportError(Exception):
    """An export cannot be written or read; the message is one line naming the folder."""


def check_export_target(out_dir: str | os.PathLike, force: bool) -> None:
    """Raise ExportError when ``out_dir`` must not be written: it exists (without ``force``) or is a file.

    ``force`` replaces an earlier export (a folder with a saved_model.pb) or an empty folder, never any other
    folder: ``--out logs --force`` must not delete a user's training runs.
    """
    out_dir = Path(out_dir)
    if out_dir.is_file():
        raise ExportError(f"{out_dir}: a file of that name exists; give a folder name for the export")
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} exists; choose another --out or pass --force to replace it")
    if out_dir.is_dir() and not (out_dir / SAVED_MODEL_FILE).is_file() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not an export (no {SAVED_MODEL_FILE}); --force replaces only an "
                          f"earlier export or an empty folder: choose another --out")


def check_exportable(config) -> None:
    """Raise ExportError for a config whose inference the graph cannot reproduce."""
    if config.IMAGE_RESIZE_MODE not in INFERENCE_RESIZE_MODES:
        raise ExportError(f"IMAGE_RESIZE_MODE {config.IMAGE_RESIZE_MODE!r} is a training mode; exports need one "
                          f"of {', '.join(INFERENCE_RESIZE_MODES)}")


def export_info(config, weights: str, extra: dict | None = None) -> dict:
    """The facts written to ``assets.extra/fseg_export.json``."""
    from mrcnn.export.serving import DETECT_IMAGE, SERVING_DEFAULT

    return {
        "format": "fseg Mask R-CNN SavedModel", "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "weights": str(weights),
        "config_name": config.NAME, "num_classes": int(config.NUM_CLASSES), "class_names": list(config.class_names()),
        "backbone": str(config.BACKBONE), "image_resize_mode": config.IMAGE_RESIZE_MODE,
        "image_min_dim": int(config.IMAGE_MIN_DIM), "image_max_dim": int(config.IMAGE_MAX_DIM),
        "detection_min_confidence": float(config.DETECTION_MIN_CONFIDENCE),
        "detection_max_instances": int(config.DETECTION_MAX_INSTANCES),
        "signatures": [SERVING_DEFAULT, DETECT_IMAGE], **(extra or {}),
    }


def write_export(model, out_dir: str | os.PathLike, info: dict, *, force: bool = False) -> Path:
    """Save an inference ``MaskRCNN`` (weights loaded) as a SavedModel folder ``out_dir``; returns it.

    Raises ExportError (existing target without ``force``, a training resize mode) before anything is
    written; OSError from the file system, TensorFlow's own write errors included (a full disk while the
    variables are saved): the temporary folder and any parent folders made for the export are removed.
    """
    import tensorflow as tf

    from mrcnn.export.serving import ServingModule

    out_dir = Path(out_dir)
    check_export_target(out_dir, force)
    check_exportable(model.config)
    class_names = list(model.config.class_names())
    made = _make_parents(out_dir)
    tmp = temporary_sibling(out_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="fseg-export-") as staging:
            names_file = Path(staging) / CLASS_NAMES_FILE
            names_file.write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
            module = ServingModule(model, class_names, str(names_file))
            try:
                tf.saved_model.save(module, str(tmp), signatures=module.signatures())
            except tf.errors.OpError as exc:  # SaveV2 and the file ops report the OS's errors this way
                raise _as_os_error(exc, out_dir) from None
        (tmp / INFO_FOLDER).mkdir()
        (tmp / INFO_FOLDER / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _replace_folder(tmp, out_dir, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise
    return out_dir


def _make_parents(out_dir: Path) -> list[Path]:
    """Create the missing folders above ``out_dir``; returns them, outermost first."""
    missing = [p for p in reversed(out_dir.absolute().parents) if not p.exists()]
    for folder in missing:
        folder.mkdir()
    return missing


def _as_os_error(exc, path: Path) -> OSError:
    """A TensorFlow error from writing ``path`` as an OSError with a one-line reason (the errno when known)."""
    reason = " ".join(exc.message.split()).split("[Op:")[0].strip()
    for code in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT):
        if os.strerror(code) in reason:
            return OSError(code, os.strerror(code), str(path))
    return OSError(errno.EIO, reason[-200:], str(path))


def _replace_folder(new: Path, target: Path, force: bool) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` (only with ``force``) is moved aside first and
    removed after, or moved back if the rename fails."""
    if not target.exists():
        os.rename(new, target)
        return
    check_export_target(target, force)
    old = temporary_sibling(target)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_export_dir(export_dir: str | os.PathLike) -> Path:
    """``export_dir`` as a Path if it holds a SavedModel, else ExportError (one line)."""
    export_dir = Path(export_dir)
    if not export_dir.exists():
        raise ExportError(f"exported model not found: {export_dir}")
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: is a file; give the folder written by `fseg export`")
    if not (export_dir / SAVED_MODEL_FILE).is_file():
        raise ExportError(f"{export_dir}: not a SavedModel (no {SAVED_MODEL_FILE}); give the folder written by "
                          f"`fseg export`")
    return export_dir


def read_class_names(export_dir: str | os.PathLike) -> list[str]:
    """The class names of an export (``assets/class_names.txt``), index = class id."""
    path = check_export_dir(export_dir) / "assets" / CLASS_NAMES_FILE
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ExportError(f"{export_dir}: not an fseg export ({file_problem(path, exc, 'class names file')})") \
            from None


def read_export_info(export_dir: str | os.PathLike) -> dict:
    """``assets.extra/fseg_export.json`` of an export ({} if absent or unreadable)."""
    path = check_export_dir(export_dir) / INFO_FOLDER / INFO_FILE
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def read_signatures(export_dir: str | os.PathLike) -> dict:
    """{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}} from ``saved_model.pb``, without
    loading the graph (fast; shapes use -1 for unknown sizes)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes

    path = check_export_dir(export_dir) / SAVED_MODEL_FILE
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(path.read_bytes())
    except OSError as exc:
        raise ExportError(file_problem(path, exc, "SavedModel")) from None
    except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError has no stable public home)
        raise ExportError(f"{path}: damaged SavedModel ({type(exc).__name__})") from None
    if not proto.meta_graphs:
        raise ExportError(f"{path}: the SavedModel holds no graph")

    def tensors(mapping):
        return {name: (dtypes.as_dtype(t.dtype).name,
                       None if t.tensor_shape.unknown_rank else [d.size for d in t.tensor_shape.dim])
                for name, t in sorted(mapping.items())}

    return {name: {"inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
            for name, sig in sorted(proto.meta_graphs[0].signature_def.items()) if not name.startswith("__")}


def describe_export(export_dir: str | os.PathLike) -> str:
    """Text for ``fseg export --inspect``: what the export was made from, its classes and signatures."""
    export_dir = check_export_dir(export_dir)
    info, signatures = read_export_info(export_dir), read_signatures(export_dir)
    size = sum(p.stat().st_size for p in export_dir.rglob("*") if p.is_file())
    lines = [f"Export:      {export_dir} ({size / 1e6:.1f} MB)"]
    if info:
        lines += [f"Made from:   {info.get('weights')} (config {info.get('config_name')}, {info.get('backbone')}, "
                  f"{info.get('created')})",
                  f"Images:      resized by {info.get('image_resize_mode')!r}, min {info.get('image_min_dim')}, "
                  f"max {info.get('image_max_dim')}",
                  f"Detections:  up to {info.get('detection_max_instances')}, score >= "
                  f"{info.get('detection_min_confidence')}"]
    names = read_class_names(export_dir)
    lines.append(f"Classes:     {len(names)} ({', '.join(names[1:6])}{', ...' if len(names) > 6 else ''})")
    for name, sig in signatures.items():
        lines.append(f"Signature {name}:")
        for kind in ("inputs", "outputs"):
            for key, (dtype, shape) in sig[kind].items():
                dims = "?" if shape is None else "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"
                lines.append(f"  {kind[:-1]:6} {key:22} {dtype:8} {dims}")
    return "\n".join(lines)
