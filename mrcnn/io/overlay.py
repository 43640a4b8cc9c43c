"""Drawing detections on images (NumPy + OpenCV), and cutting garments out as RGBA.

Replaces matterport's matplotlib ``display_instances``: :func:`draw_instances`
returns the annotated picture as an RGB uint8 array instead of plotting it, so
the CLI can save it and tests can inspect it.

Conventions of every function here:
  image:     [H, W, 3] uint8, RGB.
  boxes:     [N, (y1, x1, y2, x2)] int, pixels of ``image``; y2/x2 exclusive
             (matterport's ``rois``).
  masks:     [H, W, N] bool, one full-image mask per detection.
  class_ids: [N] int, 1..NUM_CLASSES-1 (0 is background).

Colours are fixed per class (the same garment type has the same colour in every
picture), fills are translucent, each mask also gets its outline, and every
label sits in a filled box whose text is black or white, whichever contrasts
with the fill, so it stays legible on any background. Line widths and the font
scale grow with the image size.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# Opacity of the colour painted over mask pixels.
MASK_ALPHA = 0.45
# Golden-ratio hue step: consecutive class ids get well-separated hues.
_HUE_STEP = 0.618033988749895
# Fill luminance (0..255) above which the label text is black instead of white.
_LIGHT_FILL = 150.0
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    """The colour of a class: a deterministic, saturated RGB triple (0..255 each)."""
    hue = (int(class_id) * _HUE_STEP) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return (round(r * 255), round(g * 255), round(b * 255))


@dataclass(frozen=True)
class DrawStyle:
    """Sizes in pixels (font_scale is OpenCV's), chosen from the image size."""

    line_width: int
    font_scale: float
    font_thickness: int
    label_padding: int

    @classmethod
    def for_image(cls, height: int, width: int) -> "DrawStyle":
        """Style for an image of height x width pixels: about 12 px text at 512 px, 25 px at 1024."""
        short_side = max(1, min(height, width))
        font_scale = max(0.4, short_side / 900.0)
        return cls(
            line_width=max(1, round(short_side / 350.0)),
            font_scale=font_scale,
            font_thickness=max(1, round(font_scale * 1.6)),
            label_padding=max(2, round(font_scale * 4)),
        )


def text_color_for(fill: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on an RGB ``fill`` (ITU-R BT.601 luminance)."""
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > _LIGHT_FILL else (255, 255, 255)


def blend_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float = MASK_ALPHA) -> None:
    """Paint ``color`` over the pixels of ``mask`` with opacity ``alpha``, in place.

    Args:
      image: [H, W, 3] uint8 RGB, modified in place.
      mask: [H, W] bool.
      color: (r, g, b) 0..255.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))  # the mask's bounding box
    region, inside = image[window], mask[window]
    pixels = region[inside].astype(np.float32)  # [M, 3]
    painted = pixels * (1.0 - alpha) + np.asarray(color, np.float32) * alpha
    region[inside] = np.clip(np.round(painted), 0, 255).astype(np.uint8)


def draw_mask_outline(image: np.ndarray, mask: np.ndarray, color: Sequence[int], line_width: int) -> None:
    """Draw the outer contours of ``mask`` ([H, W] bool) on ``image`` in place."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in color), line_width, cv2.LINE_AA)


def draw_box(image: np.ndarray, box: Sequence[int], color: Sequence[int], line_width: int) -> None:
    """Draw a rectangle for ``box`` = (y1, x1, y2, x2) pixels, y2/x2 exclusive, in place."""
    y1, x1, y2, x2 = (int(v) for v in box)
    cv2.rectangle(image, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), tuple(int(c) for c in color), line_width)


def draw_landmarks(image: np.ndarray, points: np.ndarray, color: Sequence[int], line_width: int) -> None:
    """Dots of ``color`` ringed in white at the points [K, (x, y, score)] whose score is > 0, in place."""
    radius = line_width + 1
    for x, y, score in np.asarray(points, np.float64).reshape(-1, 3):
        if score > 0:
            centre = (int(round(x)), int(round(y)))
            cv2.circle(image, centre, radius + 1, (255, 255, 255), -1, lineType=cv2.LINE_AA)
            cv2.circle(image, centre, radius, tuple(int(c) for c in color), -1, lineType=cv2.LINE_AA)


def draw_label(image: np.ndarray, text: str, box: Sequence[int], color: Sequence[int], style: DrawStyle) -> None:
    """Write ``text`` in a box filled with ``color`` at the top-left corner of ``box``, in place.

    The label sits just above the box, or just inside its top edge when there
    is no room above; it is shifted left to stay inside the image.
    """
    height, width = image.shape[:2]
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
    pad = style.label_padding
    label_w, label_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    y1, x1 = int(box[0]), int(box[1])
    top = y1 - label_h if y1 - label_h >= 0 else max(0, y1)
    top = min(top, max(0, height - label_h))
    left = min(max(0, x1), max(0, width - label_w))
    cv2.rectangle(image, (left, top), (left + label_w - 1, top + label_h - 1), tuple(int(c) for c in color), -1)
    origin = (left + pad, top + pad + text_h)
    cv2.putText(image, text, origin, _FONT, style.font_scale, text_color_for(color), style.font_thickness, cv2.LINE_AA)


def caption_for(class_id: int, class_names: Sequence[str], score: float | None) -> str:
    """Label text: ``"trousers 0.93"``; ``"class 17"`` when the id has no name."""
    name = class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"
    return name if score is None else f"{name} {score:.2f}"


def draw_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray | None = None,
    *,
    show_mask: bool = True,
    show_bbox: bool = True,
    captions: Sequence[str] | None = None,
    mask_alpha: float = MASK_ALPHA,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """Draw detections (matterport's ``display_instances``, returned instead of plotted).

    Args:
      image: [H, W, 3] uint8 RGB; not modified.
      boxes: [N, (y1, x1, y2, x2)] int pixels, y2/x2 exclusive.
      masks: [H, W, N] bool.
      class_ids: [N] int.
      class_names: names indexed by class id, background first.
      scores: [N] float in [0, 1], or None to leave scores out of the labels.
      captions: [N] label texts replacing "<class name> <score>".
      landmarks: [N, K, (x, y, score)] pixels (``detect``'s "landmarks"); points with score > 0
        (the detection's class slice) are drawn as small dots.
    Returns:
      overlay: [H, W, 3] uint8 RGB. Masks first, then boxes, landmarks, then labels, in
      ascending score order so the most confident detection ends up on top.
    """
    overlay = np.array(image, dtype=np.uint8, copy=True)
    count = len(class_ids)
    if count == 0:
        return overlay
    if masks.shape[:2] != image.shape[:2] or masks.shape[2] != count or len(boxes) != count:
        raise ValueError(f"draw_instances: {count} class ids, {len(boxes)} boxes, masks {masks.shape}, "
                         f"image {image.shape}")
    style = DrawStyle.for_image(*image.shape[:2])
    order = np.argsort(scores, kind="stable") if scores is not None else np.arange(count)
    colors = [class_color(int(c)) for c in class_ids]
    if show_mask:
        for i in order:
            blend_mask(overlay, masks[:, :, i], colors[i], mask_alpha)
        for i in order:
            draw_mask_outline(overlay, masks[:, :, i], colors[i], style.line_width)
    if show_bbox:
        for i in order:
            draw_box(overlay, boxes[i], colors[i], style.line_width)
    if landmarks is not None:
        for i in order:
            draw_landmarks(overlay, landmarks[i], colors[i], style.line_width)
    for i in order:
        text = captions[i] if captions is not None else caption_for(
            int(class_ids[i]), class_names, None if scores is None else float(scores[i]))
        draw_label(overlay, text, boxes[i], colors[i], style)
    return overlay


def cutout_rgba(image: np.ndarray, mask: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """Cut one detection out of the photo: its box, with pixels outside the mask transparent.

    Args:
      image: [H, W, 3] uint8 RGB.
      mask: [H, W] bool, the detection's full-image mask.
      box: (y1, x1, y2, x2) int pixels, y2/x2 exclusive; clipped to the image.
    Returns:
      crop: [y2 - y1, x2 - x1, 4] uint8 RGBA; alpha 255 on the mask, 0 elsewhere.
    Raises:
      ValueError: the box, clipped to the image, is empty.
    """
    height, width = image.shape[:2]
    y1, x1 = max(0, int(box[0])), max(0, int(box[1]))
    y2, x2 = min(height, int(box[2])), min(width, int(box[3]))
    if y2 <= y1 or x2 <= x1:
        raise ValueError(f"cutout_rgba: empty box {tuple(int(v) for v in box)} in a {height}x{width} image")
    alpha = np.where(mask[y1:y2, x1:x2], 255, 0).astype(np.uint8)  # [h, w]
    return np.dstack([image[y1:y2, x1:x2], alpha])
