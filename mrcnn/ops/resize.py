"""Resizing images and masks for the network, and molding (mean subtraction): matterport-exact.

Frames: "original" = the caller's image, "molded" = resized and padded network input.
Pixel boxes are (y1, x1, y2, x2) with (y2, x2) exclusive (see :mod:`mrcnn.ops.boxes`).

The resize rule (:func:`resize_scale`) is written in Python here and in TensorFlow
(:func:`resize_scale_graph`, for the training pipeline and exported models, which
cannot call Python); ``tests/test_twins.py`` keeps the two equal over many shapes.
Exported models (:mod:`mrcnn.export`) also need the resize itself, the padding and
the molding in the graph: :func:`resize_bilinear_graph`, :func:`resize_image_graph`
and :func:`mold_image_graph` are the TensorFlow twins of :func:`resize_bilinear`,
:func:`resize_image` and :func:`mold_image` (``tests/test_export_twins.py`` keeps
them pixel-equal).

Resizing uses ``skimage.transform.resize`` (order 1 = bilinear, mode "constant"
with cval 0, clip, preserve_range, no anti-aliasing) as matterport does. The
resized image is cast back to the input dtype by truncation (``astype``), not
rounding. OpenCV's bilinear resize was measured against matterport's molded
images and differs (it replicates the border instead of blending with 0, and
rounds), so it is not used.

One deliberate exception: the training pipeline (:mod:`mrcnn.data.image_loader`) resizes with
``tf.image.resize`` (bilinear, half-pixel centres, truncated), 5 to 8 times faster than
:func:`resize_bilinear_graph` (0.7 against 4.0 ms at 600x400 -> 192x128, 13 against 105 ms at
600x400 -> 1024x683, measured 2026-12-01). Downscaling gives the same pixels; upscaling differs on
the outermost rows and columns (the edge is repeated instead of blended with 0) and by one level
where a value falls near an integer: 0.6 % of the pixels at 600x400 -> 1024x683. Augmentation
changes training images far more than that.

NumPy, SciPy and scikit-image at import time; the ``_graph`` functions import
TensorFlow when called.
"""
from __future__ import annotations

import random
import warnings

import numpy as np
import scipy.ndimage
import skimage.transform

RESIZE_MODES = ("square", "pad64", "crop", "none")
INFERENCE_RESIZE_MODES = ("square", "pad64", "none")  # "crop" takes a random crop: a training mode
PAD64 = 64  # pad64 mode: both sides padded up to a multiple of this (2 ** number of FPN downsamplings)


def resize_bilinear(image, output_shape, preserve_range=False):
    """matterport's bilinear resize (skimage order 1, zero border, clip, no anti-aliasing); float64 out."""
    return skimage.transform.resize(
        image, output_shape, order=1, mode="constant", cval=0, clip=True,
        preserve_range=preserve_range, anti_aliasing=False)


def resize_scale(height, width, min_dim, max_dim, min_scale, mode):
    """Scale factor of :func:`resize_image` (matterport's rule).

    The short side is scaled up to ``min_dim`` (never down), then to at least ``min_scale``;
    in "square" mode the scale is lowered so the long side, rounded, fits in ``max_dim``.
    Falsy settings (0 / None) are skipped.
    Args:
      height, width: the image's size in pixels.
    Returns:
      float (int 1 when nothing applies).
    """
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


def resize_scale_graph(height, width, min_dim, max_dim, min_scale, mode):
    """:func:`resize_scale` in TensorFlow, for a size known only inside a graph.

    Args:
      height, width: scalar tensors (any numeric dtype), the image's size in pixels.
      min_dim, max_dim, min_scale, mode: Python settings, as in resize_scale.
    Returns:
      float64 scalar tensor, equal to resize_scale's value.
    """
    import tensorflow as tf

    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if min_dim:
        scale = tf.maximum(scale, float(min_dim) / tf.minimum(height, width))
    if min_scale:
        scale = tf.maximum(scale, float(min_scale))
    if max_dim and mode == "square":
        longest = tf.maximum(height, width)
        scale = tf.where(tf.round(longest * scale) > float(max_dim), float(max_dim) / longest, scale)
    return scale


def resized_size(height, width, scale):
    """(h, w) of an image of ``height`` x ``width`` pixels resized by ``scale``: rounded, at least 1 px.

    A very thin image (3 x 4000 into a 1024 square) would otherwise round to 0 rows.
    """
    return max(1, round(height * scale)), max(1, round(width * scale))


def resized_size_graph(hw, scale):
    """:func:`resized_size` in TensorFlow: ``hw`` [2] int (H, W), ``scale`` float64 -> [2] int32 (h, w)."""
    import tensorflow as tf

    return tf.maximum(tf.cast(tf.round(tf.cast(hw, tf.float64) * scale), tf.int32), 1)


def centered_padding(size, target):
    """(before, after) padding that centres ``size`` in ``target`` (the extra pixel of an odd difference goes
    after); Python ints or int tensors alike."""
    before = (target - size) // 2
    return before, target - size - before


def _pad64_padding(size):
    if size % PAD64 == 0:
        return 0, 0
    return centered_padding(size, size - size % PAD64 + PAD64)


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

    scale = resize_scale(height, width, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = resize_bilinear(image, resized_size(height, width, scale), preserve_range=True)
    height, width = image.shape[:2]
    crop = None
    if mode == "square":
        padding = [centered_padding(height, max_dim), centered_padding(width, max_dim), (0, 0)]
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


# ---------------------------------------------------------------- TensorFlow twins (exported graphs)
def _bilinear_taps(in_size, out_size):
    """Sample positions of a half-pixel-centred resize along one axis, in a frame padded by one pixel.

    Returns (low, high, weight): [out] int32 indices of the two neighbours in the padded axis
    (index 0 and in_size + 1 are the zero border) and [out] float64 weight of ``high``.
    """
    import tensorflow as tf

    in_f, out_f = tf.cast(in_size, tf.float64), tf.cast(out_size, tf.float64)
    source = (tf.range(out_size, dtype=tf.float64) + 0.5) * (in_f / out_f) - 0.5  # [out], input pixel frame
    low = tf.floor(source)
    low_index = tf.cast(low, tf.int32) + 1  # padded frame
    return low_index, low_index + 1, source - low


def resize_bilinear_graph(image, output_hw):
    """:func:`resize_bilinear` in TensorFlow, for non-negative images (uint8 photos, mask probabilities).

    skimage's order-1 resize: half-pixel centres, samples up to half a pixel outside the image
    blend with a zero border (``tf.image.resize`` would repeat the edge instead), and the result
    is clipped to the input's [min, max] over all pixels and channels (so a border pixel of an
    image without a 0 never darkens). The four neighbours are weighted and summed in float64 in
    the order scipy.ndimage uses, so the values, and their truncation to uint8, are the same.
    Args:
      image: [H, W] or [H, W, C] tensor, any real dtype, values >= 0.
      output_hw: (height, width), ints or int32 scalar tensors, each >= 1.
    Returns:
      [height, width] or [height, width, C] float64.
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    flat = image.shape.rank == 2
    source = image[:, :, None] if flat else image  # [H, W, C]
    in_hw = tf.shape(source)[:2]
    padded = tf.pad(source, [[1, 1], [1, 1], [0, 0]])  # [H + 2, W + 2, C], zero border
    y_low, y_high, wy = _bilinear_taps(in_hw[0], output_hw[0])
    x_low, x_high, wx = _bilinear_taps(in_hw[1], output_hw[1])
    wy, wx = wy[:, None, None], wx[None, :, None]

    def corner(rows, cols):
        return tf.cast(tf.gather(tf.gather(padded, rows), cols, axis=1), tf.float64)  # [h, w, C]

    out = (corner(y_low, x_low) * (1 - wy) * (1 - wx) + corner(y_low, x_high) * (1 - wy) * wx
           + corner(y_high, x_low) * wy * (1 - wx) + corner(y_high, x_high) * wy * wx)
    out = tf.clip_by_value(out, tf.cast(tf.reduce_min(source), tf.float64),
                           tf.cast(tf.reduce_max(source), tf.float64))
    return out[:, :, 0] if flat else out


def resize_image_graph(image, min_dim=None, max_dim=None, min_scale=None, mode="square"):
    """:func:`resize_image` in TensorFlow for the inference modes "square", "pad64" and "none".

    ("crop" picks a random crop with Python's ``random``: a training mode, refused here.)
    Args:
      image: [H, W, C] tensor (uint8 usually), any size.
      min_dim, max_dim, min_scale, mode: Python settings, as in resize_image.
    Returns:
      image: [h, w, C] same dtype (resize result truncated, as resize_image's ``astype``).
      window: [(y1, x1, y2, x2)] int32, the image inside the output, pixels, (y2, x2) exclusive.
      scale: float64 scalar, the resize factor (1.0 when unchanged).
    """
    import tensorflow as tf

    if mode not in INFERENCE_RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} cannot run in a graph; use square, pad64 or none")
    if mode == "pad64" and min_dim % PAD64:
        raise ValueError(f"pad64 mode needs min_dim to be a multiple of 64, got {min_dim}")
    image = tf.convert_to_tensor(image)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if mode == "none":
        return image, tf.stack([0, 0, height, width]), tf.constant(1.0, tf.float64)

    scale = resize_scale_graph(height, width, min_dim, max_dim, min_scale, mode)
    new_hw = resized_size_graph(tf.stack([height, width]), scale)
    image = tf.cond(tf.equal(scale, 1.0), lambda: image,
                    lambda: tf.cast(resize_bilinear_graph(image, new_hw), image.dtype))  # cast truncates
    height, width = new_hw[0], new_hw[1]
    if mode == "square":
        top, bottom = centered_padding(height, max_dim)
        left, right = centered_padding(width, max_dim)
    else:  # pad64: up to the next multiple of 64, centred; nothing when already a multiple
        target_h = tf.where(height % PAD64 == 0, height, height - height % PAD64 + PAD64)
        target_w = tf.where(width % PAD64 == 0, width, width - width % PAD64 + PAD64)
        top, bottom = centered_padding(height, target_h)
        left, right = centered_padding(width, target_w)
    image = tf.pad(image, [[top, bottom], [left, right], [0, 0]])
    return image, tf.stack([top, left, height + top, width + left]), scale


def mold_image_graph(image, mean_pixel):
    """:func:`mold_image` in TensorFlow: [..., H, W, 3] any numeric dtype -> float32 minus the mean
    (subtracted in float64, then cast, as mold_image does)."""
    import tensorflow as tf

    mean = tf.constant(np.asarray(mean_pixel, dtype=np.float64))
    return tf.cast(tf.cast(tf.cast(image, tf.float32), tf.float64) - mean, tf.float32)
