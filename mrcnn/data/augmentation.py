"""fseg's built-in training augmentation: flips, scale jitter, brightness and contrast (TensorFlow).

The input pipeline (:mod:`mrcnn.data.pipeline`) applies an :class:`Augmentation` to each
training image; masks, boxes and point fields follow the image. Randomness is stateless:
each decision takes its own ``[2]`` int seed, so a seed gives the same images on every run.
"""
from __future__ import annotations

from dataclasses import dataclass

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


def scale_jitter(augment: Augmentation, seed):
    """The random factor multiplied into the resize scale: float64 scalar in scale_range."""
    low, high = augment.scale_range
    if low == high:
        return tf.constant(low, tf.float64)
    return tf.random.stateless_uniform([], seed, low, high, tf.float64)


def random_flip(augment: Augmentation, image, masks, point_fields: dict, seed):
    """Left-right flip of image [h, w, 3], masks [h, w, N] and point fields together, with flip_probability.

    Args:
      point_fields: {name: ([N, K, 3] points, flip_map or None)}.
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

    flip = tf.random.stateless_uniform([], seed) < augment.flip_probability
    return tf.cond(flip, flipped, lambda: (image, masks, points))


def adjust_colors(augment: Augmentation, image, brightness_seed, contrast_seed):
    """Contrast around the image mean, then a brightness shift; image [h, w, 3] float32 in [0, 255]."""
    low, high = augment.contrast_range
    if (low, high) != (1.0, 1.0):
        factor = tf.random.stateless_uniform([], contrast_seed, low, high)
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if augment.brightness > 0:
        limit = augment.brightness * 255.0
        image = image + tf.random.stateless_uniform([], brightness_seed, -limit, limit)
    return tf.clip_by_value(image, 0.0, 255.0)
