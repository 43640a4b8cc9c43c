"""What is in a matterport-layout ``.h5`` file, from names and shapes only: ``fseg weights inspect``.

Mode (training or inference save), backbone (matched against the stage layouts
registered in ``mrcnn.registry.BACKBONES``), class count, parameter counts.
Values are never read, so a 257 MB file is described in a fraction of a second.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from mrcnn.io.h5_legacy import attr_text, open_h5, read_file_layers
from mrcnn.registry import BACKBONES


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
    backbone: str        # a registered backbone name, or "unknown (...)"
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


# Layers only matterport's training model has, and only its inference model has.
_TRAINING_MARKERS = ("proposal_targets", "input_gt_boxes", "input_rpn_match", "mrcnn_mask_loss")
_INFERENCE_MARKERS = ("mrcnn_detection",)


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


def _stage_layout(layers) -> tuple[str, tuple[int, ...], int | None] | None:
    """(block type, blocks per stage 2..5, C2 channels) read from the res* layer names and shapes."""
    shapes = dict(layers)
    names = [n for n, _ in layers]
    blocks = tuple(len({m.group(1) for n in names if (m := re.fullmatch(rf"res{stage}(\w+)_branch2a", n))})
                   for stage in range(2, 6))
    if not any(blocks):
        return None
    block = "bottleneck" if any(n.endswith("_branch2c") for n in names) else "basic"
    last_conv = "res2a_branch2c" if block == "bottleneck" else "res2a_branch2b"
    kernel = [s for w, s in shapes.get(last_conv, []) if "kernel" in w]
    return block, blocks, (int(kernel[0][-1]) if kernel else None)


def _detect_backbone(layers) -> str:
    """The registered backbone whose stage layout the file's layers have, or "unknown (...)"."""
    layout = _stage_layout(layers)
    if layout is None:
        return "unknown (no ResNet layers)"
    block, blocks, c2_channels = layout
    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        if (spec.block, tuple(spec.stage_blocks), spec.stage_channels[0]) == (block, blocks, c2_channels):
            return name
    return f"unknown ({block} blocks {'-'.join(map(str, blocks))}, C2 {c2_channels} channels)"


def _detect_classes(layers) -> int | None:
    """Class count (background included) from the heads' output widths (None when no head says it)."""
    shapes = {name: [s for _, s in ws] for name, ws in layers}
    for head, per_class in (("mrcnn_class_logits", 1), ("mrcnn_mask", 1), ("mrcnn_bbox_fc", 4)):
        if head in shapes and shapes[head][0]:  # a scalar (a damaged head) says nothing
            return int(shapes[head][0][-1]) // per_class
    return None


def inspect_weights(path) -> WeightsInfo:
    """Describe a weights file without reading its values (fast on 257 MB files)."""
    with open_h5(path) as root:
        all_layers = read_file_layers(root, path)
        layers = [(n, [(w, tuple(ds.shape)) for w, ds in ws]) for n, ws in all_layers if ws]
        layout = ("Keras 2 full-model save (weights under /model_weights)" if root.name != "/"
                  else "Keras 2 save_weights (legacy HDF5, matterport)")
        backend = attr_text(root.attrs, "backend") or attr_text(root.file.attrs, "backend")
        keras_version = (attr_text(root.attrs, "keras_version")
                         or attr_text(root.file.attrs, "keras_version"))
    layer_names = [n for n, _ in all_layers]
    weighted = [n for n, _ in layers]
    mode, evidence = _detect_mode(layer_names, weighted)
    shapes = [(w, s) for _, ws in layers for w, s in ws]
    return WeightsInfo(
        path=str(path), file_bytes=Path(path).stat().st_size, layout=layout,
        backend=backend, keras_version=keras_version, mode=mode, mode_evidence=evidence,
        backbone=_detect_backbone(layers), num_classes=_detect_classes(layers),
        num_parameters=sum(int(np.prod(s)) for _, s in shapes),
        num_non_trainable=sum(int(np.prod(s)) for w, s in shapes if "moving_" in w),
        num_layers=len(layer_names), num_weighted_layers=len(layers), num_arrays=len(shapes),
        layers=layers)
