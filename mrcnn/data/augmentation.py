"""Training augmentation: fseg's built-in one (TensorFlow) and imgaug-style augmenters (matterport's).

Two kinds of ``augmentation`` are accepted by ``MaskRCNN.train`` and the input pipeline:

* :class:`Augmentation`, fseg's built-in flips, scale jitter, brightness and contrast, in TensorFlow
  inside the pipeline; masks, boxes and point fields follow the image. Randomness is stateless: each
  decision takes its own ``[2]`` int seed, so a seed gives the same images on every run.
* an imgaug-style augmenter, matterport's way: any object with ``to_deterministic()`` whose result has
  ``augment_image(image, hooks=None)`` (imgaug's augmenters, or your own). It runs on the padded image
  and its masks (:func:`augment_image_and_masks`); only the augmenters matterport lets touch masks
  (:data:`MASK_AUGMENTERS`, by class name) are applied to them. imgaug itself (0.4.0, unmaintained) does
  not import with NumPy 2; the protocol needs no import of it.

``None`` (or False) means no augmentation, as in matterport.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mrcnn.ops.instance_fields import flip_points


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training image (masks, boxes and points follow the image).

    Attributes:
      flip_probability: chance of a left-right flip.
      scale_range: (low, high) factor multiplied into the resize scale; > 1 zooms in (the
        image is then cropped at a random offset), < 1 zooms out (more padding).
      brightness: maximum shift of the pixel values, as a fraction of 255.
      contrast_range: (low, high) factor applied around the image's mean value.
    """

    flip_probability: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.25)
    brightness: float = 0.1
    contrast_range: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self):
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("scale_range", "contrast_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")
        if not 0.0 <= self.brightness <= 1.0:
            raise ValueError(f"brightness must be in [0, 1] (a fraction of 255), got {self.brightness}")


NO_AUGMENTATION = Augmentation(flip_probability=0.0, scale_range=(1.0, 1.0), brightness=0.0,
                               contrast_range=(1.0, 1.0))


# matterport's rule: these augmenters (by class name) move the masks with the image; all others
# (colour, blur, noise, ...) change the image alone.
MASK_AUGMENTERS = frozenset({"Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud", "CropAndPad",
                             "Affine", "PiecewiseAffine"})


def is_augmenter(augmentation) -> bool:
    """True for an imgaug-style augmenter (has ``to_deterministic``), False for fseg's Augmentation or None."""
    return augmentation is not None and hasattr(augmentation, "to_deterministic")


def resolve(augmentation):
    """``augmentation`` as the pipeline uses it: an :class:`Augmentation` (True = the default one,
    None/False = none) or an imgaug-style augmenter, returned as is."""
    if augmentation is True:
        return Augmentation()
    if augmentation is None or augmentation is False:
        return NO_AUGMENTATION
    if isinstance(augmentation, Augmentation) or is_augmenter(augmentation):
        return augmentation
    raise TypeError(f"augmentation must be None, True, an mrcnn.data.Augmentation or an imgaug-style augmenter "
                    f"(with to_deterministic()), not {type(augmentation).__name__}")


# ---------------------------------------------------------------- fseg's Augmentation (TensorFlow)
def scale_jitter(augment: Augmentation, seed, enabled=True):
    """The random factor multiplied into the resize scale: float64 scalar in scale_range (1 when not ``enabled``)."""
    low, high = augment.scale_range
    if low == high:
        return tf.constant(low, tf.float64)
    jitter = tf.random.stateless_uniform([], seed, low, high, tf.float64)
    return tf.where(enabled, jitter, tf.constant(1.0, tf.float64))


def random_flip(augment: Augmentation, image, masks, point_fields: dict, seed, enabled=True):
    """Left-right flip of image [h, w, 3], masks [h, w, N] and point fields together, with flip_probability.

    Args:
      point_fields: {name: ([N, K, 3] points, flip_map or None)}.
      enabled: bool scalar; False leaves everything as it is (``no_augmentation_sources``).
    Returns:
      image, masks, {name: points}.
    """
    points = {name: value for name, (value, _) in point_fields.items()}
    if augment.flip_probability <= 0:
        return image, masks, points
    width = tf.shape(image)[1]

    def flipped():
        moved = {name: flip_points(value, width, flip_map) for name, (value, flip_map) in point_fields.items()}
        return tf.reverse(image, [1]), tf.reverse(masks, [1]), moved

    flip = tf.logical_and(tf.random.stateless_uniform([], seed) < augment.flip_probability, enabled)
    return tf.cond(flip, flipped, lambda: (image, masks, points))


def adjust_colors(augment: Augmentation, image, brightness_seed, contrast_seed, enabled=True):
    """Contrast around the image mean, then a brightness shift; image [h, w, 3] float32 in [0, 255]."""
    enabled = tf.cast(enabled, tf.float32)
    low, high = augment.contrast_range
    if (low, high) != (1.0, 1.0):
        factor = tf.random.stateless_uniform([], contrast_seed, low, high)
        factor = 1.0 + (factor - 1.0) * enabled
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if augment.brightness > 0:
        limit = augment.brightness * 255.0
        image = image + tf.random.stateless_uniform([], brightness_seed, -limit, limit) * enabled
    return tf.clip_by_value(image, 0.0, 255.0)


# ---------------------------------------------------------------- imgaug-style augmenters (NumPy)
class MaskHooks:
    """imgaug's hooks interface, written out so no imgaug import is needed: on masks, only the
    augmenters of :data:`MASK_AUGMENTERS` run."""

    def is_activated(self, images, augmenter, parents, default):
        return type(augmenter).__name__ in MASK_AUGMENTERS

    def is_propagating(self, images, augmenter, parents, default):
        return default

    def preprocess(self, images, augmenter, parents):
        return images

    def postprocess(self, images, augmenter, parents):
        return images


def augment_image_and_masks(augmenter, image: np.ndarray, masks: np.ndarray):
    """One deterministic draw of ``augmenter`` applied to the image and (mask-safe parts only) its masks.

    Args:
      image: [H, W, 3] uint8. masks: [H, W, N] bool.
    Returns:
      image [H, W, 3] uint8, masks [H, W, N] bool.
    Raises:
      ValueError: the augmenter changed the image or mask size (matterport's rule too).
    """
    deterministic = augmenter.to_deterministic()
    augmented = np.asarray(deterministic.augment_image(image))
    if augmented.shape != image.shape:
        raise ValueError(f"augmentation changed the image size from {image.shape} to {augmented.shape}")
    if masks.shape[-1] == 0:
        return augmented.astype(np.uint8), masks
    moved = np.asarray(deterministic.augment_image(masks.astype(np.uint8), hooks=MaskHooks()))
    if moved.shape != masks.shape:
        raise ValueError(f"augmentation changed the mask size from {masks.shape} to {moved.shape}")
    return augmented.astype(np.uint8), moved.astype(bool)
