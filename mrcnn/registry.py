"""The parts a model is assembled from, found by name: backbones and ROI heads.

    from mrcnn.registry import BACKBONES, ROI_HEADS

    BACKBONES.register("resnet34", BackboneSpec("basic", (3, 4, 6, 3), (64, 128, 256, 512)))
    ROI_HEADS.register("my_head", MyHead)        # a mrcnn.modeling.roi_heads.RoiHead subclass

A config names its parts (``BACKBONE = "resnet34"``, ``ROI_HEADS = ["mask", "my_head"]``);
config validation, the graph builders and ``fseg weights inspect`` all read these two
tables, so a new part is registered once and used everywhere. Built-in heads are
registered as ``"module:attribute"`` strings and imported the first time they are
looked up, so this module (and the config that reads it) never loads Keras.

Standard library only.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


class RegistryError(ValueError):
    """An unknown or doubly registered name (one-line message listing the known names)."""


class Registry:
    """Name -> entry. An entry given as ``"package.module:attribute"`` is imported on first lookup."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any = None):
        """Register ``entry`` under ``name``; without ``entry``, a decorator that registers what it decorates.

        Registering the same entry twice is allowed (re-imported modules); another entry
        under a taken name raises RegistryError.
        """
        if entry is None:
            def decorator(obj):
                self.register(name, obj)
                return obj
            return decorator
        if name in self._entries and self._entries[name] is not entry:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Any:
        """The entry of ``name`` (imported first if it was registered lazily)."""
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone: a ResNet described by its stages, or any function that builds C1..C5.

    Attributes:
      block: "bottleneck" (1x1-3x3-1x1, matterport's resnet50/101), "basic" (two 3x3 convs,
        resnet18) or "custom" (``build`` does everything).
      stage_blocks: blocks in stages 2, 3, 4 and 5.
      stage_channels: output channels of C2, C3, C4 and C5.
      stem_channels: channels of conv1 (C1).
      build: for "custom": ``build(input_image, train_bn) -> [C1, C2, C3, C4, C5]`` with strides
        4, 4, 8, 16, 32 (Keras tensors).
      matterport_weights: matterport released weights for it (COCO, ImageNet).
    """

    block: str
    stage_blocks: tuple[int, int, int, int] = (0, 0, 0, 0)
    stage_channels: tuple[int, int, int, int] = (0, 0, 0, 0)
    stem_channels: int = 64
    build: Callable | None = None
    matterport_weights: bool = False


BACKBONES = Registry("backbone")
BACKBONES.register("resnet50", BackboneSpec("bottleneck", (3, 4, 6, 3), (256, 512, 1024, 2048),
                                            matterport_weights=True))
BACKBONES.register("resnet101", BackboneSpec("bottleneck", (3, 4, 23, 3), (256, 512, 1024, 2048),
                                             matterport_weights=True))
# Light backbones for training from random weights on small images and CPUs (ours; no matterport weights).
BACKBONES.register("resnet18", BackboneSpec("basic", (2, 2, 2, 2), (64, 128, 256, 512)))
BACKBONES.register("resnet18_half", BackboneSpec("basic", (2, 2, 2, 2), (32, 64, 128, 256), stem_channels=32))

# ROI heads: per-ROI branches beside the box head (see mrcnn.modeling.roi_heads.RoiHead).
ROI_HEADS = Registry("ROI head")
ROI_HEADS.register("mask", "mrcnn.modeling.mask_head:MaskHead")
ROI_HEADS.register("landmarks", "mrcnn.modeling.landmark_head:LandmarkHead")
