"""matterport's ``mrcnn.visualize`` module path: drawing detections.

The CLI's drawing (OpenCV, returns arrays) lives in :mod:`mrcnn.io.overlay` and is
re-exported here.
"""
from __future__ import annotations

from mrcnn.io.overlay import (MASK_ALPHA, DrawStyle, blend_mask, caption_for, class_color,  # noqa: F401
                              cutout_rgba, draw_box, draw_instances, draw_label, draw_mask_outline,
                              text_color_for)
