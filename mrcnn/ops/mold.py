"""Photos -> the network's inputs (NumPy): the inverse of :mod:`mrcnn.ops.unmold`.

Each photo is resized and padded by ``resize_image`` (one of matterport's resize modes), its mean
pixel subtracted (``mold_image``), and its facts packed into an image_meta vector
(``compose_image_meta``). The checks here are the network's, not the photo's: the FPN halves each
side six times (down to P6) and adds the levels back up, so molded sides must be multiples of 64;
a batch is one array, so its molded images must share a size.
"""
from __future__ import annotations

import numpy as np

from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.resize import PAD64, mold_image, resize_image


def mold_images(images, *, mode: str, min_dim: int, max_dim: int, min_scale: float, mean_pixel,
                num_classes: int):
    """Network inputs of a batch of photos.

    Args:
      images: list of [H, W, C] uint8 arrays, any sizes.
      mode, min_dim, max_dim, min_scale: the resize rule (IMAGE_RESIZE_MODE, IMAGE_MIN_DIM, ...), see
        :func:`mrcnn.ops.resize.resize_image`; ``mode`` one of
        ``mrcnn.ops.resize.INFERENCE_RESIZE_MODES``.
      mean_pixel: [C] subtracted from every pixel.
      num_classes: length of the image_meta's active-class flags (all 0 at inference).
    Returns:
      molded [B, h, w, C] float32, image_metas [B, 12 + num_classes] float32,
      windows [B, (y1, x1, y2, x2)] int pixels of each photo inside its molded image, (y2, x2) exclusive.
    Raises:
      ValueError: "crop" mode (matterport detected in a random crop and mapped it onto the whole photo),
        molded sides not multiples of 64 ("none" mode), or molded sizes that differ within the batch.
    """
    if mode == "crop":  # an unknown mode is resize_image's to refuse
        raise ValueError('IMAGE_RESIZE_MODE "crop" is a training mode (a random crop of each image); '
                         'for inference use "pad64" (the same scale, the whole image) or "square"')
    molded_images, image_metas, windows = [], [], []
    for image in images:
        molded, window, scale, _, _ = resize_image(image, min_dim=min_dim, max_dim=max_dim, min_scale=min_scale,
                                                   mode=mode)
        molded = mold_image(molded, mean_pixel)
        image_metas.append(compose_image_meta(0, image.shape, molded.shape, window, scale,
                                              np.zeros([num_classes], dtype=np.int32)))
        molded_images.append(molded)
        windows.append(window)
    odd = [m.shape for m in molded_images if m.shape[0] % PAD64 or m.shape[1] % PAD64]
    if odd:
        raise ValueError(f"the network needs image sides that are multiples of {PAD64}, got "
                         f"{odd[0][0]}x{odd[0][1]} (IMAGE_RESIZE_MODE {mode!r}); use \"pad64\"")
    if any(m.shape != molded_images[0].shape for m in molded_images):  # "pad64", "none": the photos' sizes
        raise ValueError("after resizing, all images of a batch must have the same size, got "
                         + ", ".join(f"{m.shape[0]}x{m.shape[1]}" for m in molded_images))
    return (np.stack(molded_images).astype(np.float32), np.stack(image_metas).astype(np.float32),
            np.stack(windows))
