"""Image and mask preparation for the network and back (NumPy / scikit-image), matterport-exact.

Frames: "original" = the caller's image, "molded" = resized and padded network input.
Pixel boxes are (y1, x1, y2, x2) with (y2, x2) exclusive; detections from the
network are normalized to the molded image (see ``boxes``).

Resizing uses ``skimage.transform.resize`` (order 1 = bilinear, mode "constant"
with cval 0, clip, preserve_range, no anti-aliasing) as matterport does. The
resized image is cast back to the input dtype by truncation (``astype``), not
rounding. OpenCV's bilinear resize was measured against matterport's molded
images and differs (it replicates the border instead of blending with 0, and
rounds), so it is not used.
"""
from __future__ import annotations

import random
import warnings

import numpy as np
import scipy.ndimage
import skimage.transform

from mrcnn.boxes import denorm_boxes, norm_boxes

RESIZE_MODES = ("square", "pad64", "crop", "none")
MASK_THRESHOLD = 0.5
PAD64 = 64  # pad64 mode: both sides padded up to a multiple of this (2 ** number of FPN downsamplings)


def _resize(image, output_shape, preserve_range=False):
    """matterport's bilinear resize (order 1, zero border, clip, no anti-aliasing); float64 out."""
    return skimage.transform.resize(
        image, output_shape, order=1, mode="constant", cval=0, clip=True,
        preserve_range=preserve_range, anti_aliasing=False)


def _resize_scale(height, width, min_dim, max_dim, min_scale, mode):
    """Scale factor of resize_image: up to min_dim, at least min_scale, capped by max_dim (square)."""
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(height, width))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        longest = max(height, width)
        if round(longest * scale) > max_dim:
            scale = max_dim / longest
    return scale


def _centered_padding(size, target):
    before = (target - size) // 2
    return before, target - size - before


def _pad64_padding(size):
    if size % PAD64 == 0:
        return 0, 0
    return _centered_padding(size, size - size % PAD64 + PAD64)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square"):
    """Resizes keeping the aspect ratio, then pads or crops (matterport's modes).

    Modes:
      none:   unchanged.
      square: scale so the short side reaches min_dim (never down) unless the long
              side would exceed max_dim; zero-pad centred to max_dim x max_dim.
      pad64:  scale up as above (max_dim ignored), zero-pad centred so both sides are
              multiples of 64 (min_dim must be a multiple of 64).
      crop:   scale up as above, then a random min_dim x min_dim crop (training only;
              uses Python's ``random``).
    Args:
      image: [H, W, C] array (uint8 usually).
    Returns:
      image: [h, w, C] same dtype as the input (resize result truncated, not rounded).
      window: (y1, x1, y2, x2) ints, the image inside the output, pixels, (y2, x2) exclusive.
      scale: float (int 1 when unchanged), the resize factor.
      padding: [(top, bottom), (left, right), (0, 0)] pixels added.
      crop: (y, x, h, w) of the crop in the resized image, or None.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {', '.join(RESIZE_MODES)}")
    image_dtype = image.dtype
    height, width = image.shape[:2]
    window = (0, 0, height, width)
    padding = [(0, 0), (0, 0), (0, 0)]
    if mode == "none":
        return image, window, 1, padding, None

    scale = _resize_scale(height, width, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = _resize(image, (round(height * scale), round(width * scale)), preserve_range=True)
    height, width = image.shape[:2]
    crop = None
    if mode == "square":
        padding = [_centered_padding(height, max_dim), _centered_padding(width, max_dim), (0, 0)]
    elif mode == "pad64":
        if min_dim % PAD64:
            raise ValueError(f"pad64 mode needs min_dim to be a multiple of 64, got {min_dim}")
        padding = [_pad64_padding(height), _pad64_padding(width), (0, 0)]
    if mode == "crop":
        y = random.randint(0, height - min_dim)
        x = random.randint(0, width - min_dim)
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    else:
        image = np.pad(image, padding, mode="constant", constant_values=0)
        top, left = padding[0][0], padding[1][0]
        window = (top, left, height + top, width + left)
    return image.astype(image_dtype), window, scale, padding, crop


def resize_mask(mask, scale, padding, crop=None):
    """Resizes and pads (or crops) masks the way resize_image changed their image.

    Args:
      mask: [H, W, N] bool or uint8 instance masks.
      scale, padding, crop: as returned by resize_image.
    Returns:
      [h, w, N] same dtype, nearest-neighbour resized (scipy zoom, order 0).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that zoom rounds the output shape
        mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


def minimize_mask(bbox, mask, mini_shape):
    """Crops each mask to its box and resizes it to mini_shape (training memory saver).

    Args:
      bbox: [N, (y1, x1, y2, x2)] int pixels, (y2, x2) exclusive.
      mask: [H, W, N] bool.
      mini_shape: (height, width), e.g. (56, 56).
    Returns:
      [mini_h, mini_w, N] bool (bilinear resize, rounded).
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        cut = mask[y1:y2, x1:x2, i].astype(np.float64)
        if cut.size == 0:
            raise ValueError(f"instance {i} has a zero-area box {tuple(bbox[i][:4])}")
        mini_mask[:, :, i] = np.around(_resize(cut, mini_shape)).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Inverse of minimize_mask: pastes each mini mask back into a full-size mask.

    Args:
      bbox: [N, (y1, x1, y2, x2)] int pixels, (y2, x2) exclusive.
      mini_mask: [mini_h, mini_w, N] bool.
      image_shape: (H, W[, C]).
    Returns:
      [H, W, N] bool.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        resized = _resize(mini_mask[:, :, i].astype(np.float64), (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = np.around(resized).astype(bool)
    return mask


def mold_image(images, mean_pixel):
    """Network input from RGB images: float minus the mean pixel (no std scaling).

    Args:
      images: [..., H, W, 3] RGB, any numeric dtype.
      mean_pixel: [3] RGB mean (matterport's MEAN_PIXEL, [123.7, 116.8, 103.9]).
    Returns:
      [..., H, W, 3] float32 (subtracted in float64 as matterport does, then cast).
    """
    return (images.astype(np.float32) - np.asarray(mean_pixel, dtype=np.float64)).astype(np.float32)


def unmold_image(molded_images, mean_pixel):
    """Inverse of mold_image. Returns uint8 (truncated)."""
    return (molded_images + np.asarray(mean_pixel)).astype(np.uint8)


def unmold_mask(mask, bbox, image_shape):
    """A full-image binary mask from a small mask predicted for a box.

    Args:
      mask: [h, w] float in [0, 1], e.g. 28x28 mask-head output.
      bbox: (y1, x1, y2, x2) int pixels of the target image, (y2, x2) exclusive, inside it.
      image_shape: (H, W[, C]) of the target image.
    Returns:
      [H, W] bool: the mask resized (bilinear) to the box, >= 0.5, zero elsewhere.
    """
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    _paste_mask(full_mask, mask, bbox)
    return full_mask


def _paste_mask(full_mask, mask, bbox):
    """Writes ``mask`` resized to ``bbox`` and thresholded into ``full_mask`` [H, W] bool, in place."""
    y1, x1, y2, x2 = bbox
    full_mask[y1:y2, x1:x2] = _resize(mask, (y2 - y1, x2 - x1)) >= MASK_THRESHOLD


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """Network output of one image -> boxes, classes, scores, masks of the original image.

    Args:
      detections: [D, (y1, x1, y2, x2, class_id, score)] float, normalized to the molded
        image; zero-padded (the first row with class_id 0 ends the list).
      mrcnn_mask: [D, mh, mw, C] float mask probabilities, one channel per class.
      original_image_shape: (H, W[, C]) of the image given to the model.
      image_shape: (h, w[, C]) of the molded image.
      window: (y1, x1, y2, x2) pixels of the original image inside the molded image.
    Returns:
      boxes: [n, (y1, x1, y2, x2)] int32 pixels of the original image, (y2, x2) exclusive.
      class_ids: [n] int32. scores: [n] float32. masks: [H, W, n] bool.
      Detections whose box has zero area in the original image are dropped.
    """
    class_column = detections[:, 4]
    padding_rows = np.where(class_column == 0)[0]
    count = padding_rows[0] if padding_rows.size else detections.shape[0]
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5].astype(np.float32)
    masks = mrcnn_mask[np.arange(count), :, :, class_ids]  # [n, mh, mw]

    # Normalized molded-image frame -> normalized original-image frame -> pixels.
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window), image_shape[:2])
    shift = np.array([wy1, wx1, wy1, wx1])
    extent = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = denorm_boxes((detections[:count, :4] - shift) / extent, original_image_shape[:2])

    positive = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids, scores, masks = boxes[positive], class_ids[positive], scores[positive], masks[positive]
    # Masks are filled one contiguous [H, W] plane at a time (4x faster than stacking
    # full-size masks along the last axis) and returned as an [H, W, n] view.
    full_masks = np.zeros((len(boxes),) + tuple(original_image_shape[:2]), dtype=bool)  # [n, H, W]
    for i in range(len(boxes)):
        _paste_mask(full_masks[i], masks[i], boxes[i])
    return boxes, class_ids, scores, np.moveaxis(full_masks, 0, -1)
