"""Pyramid ROIAlign: level assignment hand cases, pooling against a slow NumPy bilinear reference."""
from __future__ import annotations

import json
import math

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.layers.roi_align import PyramidROIAlign, pyramid_roi_align, roi_pyramid_level


def _square(side, top=0.1, left=0.1):
    return [top, left, top + side, left + side]


def test_level_hand_cases():
    # Molded image 1024x1024: a box of 224 pixels per side (0.21875 normalized) maps to P4.
    image_shape = tf.constant([1024.0, 1024.0, 3.0])
    boxes = tf.constant([_square(224 / 1024), _square(112 / 1024), _square(448 / 1024), _square(56 / 1024),
                         _square(8 / 1024), _square(0.9, 0.0, 0.0), [0.0, 0.0, 0.0, 0.0]])
    assert roi_pyramid_level(boxes, image_shape).numpy().tolist() == [4, 3, 5, 2, 2, 5, 2]


def test_level_depends_on_image_size():
    # The same normalized box is 224 px in a 1024 image but 112 px in a 512 image.
    box = tf.constant([_square(224 / 1024)])
    assert roi_pyramid_level(box, tf.constant([512.0, 512.0, 3.0])).numpy().tolist() == [3]


def _sides_near(side, count=200):
    """float32 values within `count` ulps of `side`, as [2 * count + 1]."""
    bits = np.float32(side).view(np.int32) + np.arange(-count, count + 1, dtype=np.int32)
    return bits.view(np.float32)


def test_level_rounds_half_to_even():
    # log2 ratio exactly +0.5 -> round 0 -> P4 (half away from zero would give P5);
    # exactly -0.5 -> round 0 -> P4 (half away from zero would give P3). Boxes [0, 0, s, s] with s
    # near 224/1024 * 2^(+-0.5); the log2 ratio is recomputed with the same TF ops on the same
    # tensor shape, and only sides where it is exactly +-0.5 in float32 are the half-way cases.
    image_side = 1024.0
    for target in (0.5, -0.5):
        sides = _sides_near(224.0 / image_side * 2.0 ** target)
        boxes = np.zeros((len(sides), 4), np.float32)
        boxes[:, 2:] = sides[:, None]
        height, width = tf.constant(sides), tf.constant(sides)
        area = tf.constant(image_side, tf.float32) * tf.constant(image_side, tf.float32)
        log2_ratio = (tf.math.log(tf.sqrt(height * width) / (224.0 / tf.sqrt(area))) / tf.math.log(2.0)).numpy()
        levels = roi_pyramid_level(tf.constant(boxes), tf.constant([image_side, image_side])).numpy()
        halfway = log2_ratio == target
        assert halfway.any(), f"no float32 side gives log2 ratio exactly {target}"
        assert (levels[halfway] == 4).all()
        assert (levels[log2_ratio > 0.5] == 5).all() and (levels[log2_ratio < -0.5] == 3).all()


def _bilinear_crop(feature, box, pool):
    """Slow reference of tf.image.crop_and_resize (bilinear, extrapolation 0) for one box."""
    height, width, channels = feature.shape
    y1, x1, y2, x2 = box
    out = np.zeros(pool + (channels,))
    for i in range(pool[0]):
        y = y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (pool[0] - 1)
        for j in range(pool[1]):
            x = x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (pool[1] - 1)
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue
            top, left = int(math.floor(y)), int(math.floor(x))
            bottom, right = min(top + 1, height - 1), min(left + 1, width - 1)
            dy, dx = y - top, x - left
            upper = feature[top, left] * (1 - dx) + feature[top, right] * dx
            lower = feature[bottom, left] * (1 - dx) + feature[bottom, right] * dx
            out[i, j] = upper * (1 - dy) + lower * dy
    return out


def _random_case(seed=0):
    rng = np.random.RandomState(seed)
    # In an 896x896 molded image, normalized sides 1/16, 1/8, 1/4, 1/2 map to P2..P5.
    sides = np.array([[0.06, 0.13, 0.25, 0.5, 0.0], [0.5, 0.26, 0.12, 0.062, 0.27]])
    top = rng.uniform(0, 0.4, (2, 5, 2))
    aspect = rng.uniform(0.8, 1.25, (2, 5, 1))
    size = np.concatenate([sides[..., None] * aspect, sides[..., None] / aspect], -1)
    boxes = np.concatenate([top, top + size], -1).astype(np.float32)
    boxes[0, 4] = 0.0  # a zero-padding row
    feature_maps = [rng.normal(0, 1, (2, s, s, 3)).astype(np.float32) for s in (16, 8, 4, 2)]
    return boxes, feature_maps


def test_pyramid_roi_align_matches_numpy_reference():
    boxes, feature_maps = _random_case()
    image_shape = (896.0, 896.0)
    levels = roi_pyramid_level(tf.constant(boxes), tf.constant(image_shape)).numpy()
    assert levels.tolist() == [[2, 3, 4, 5, 2], [5, 4, 3, 2, 4]]
    out = pyramid_roi_align(tf.constant(boxes), tf.constant(image_shape), feature_maps, (3, 4)).numpy()
    assert out.shape == (2, 5, 3, 4, 3)
    for b in range(2):
        for n in range(5):
            expected = _bilinear_crop(feature_maps[levels[b, n] - 2][b], boxes[b, n], (3, 4))
            np.testing.assert_allclose(out[b, n], expected, rtol=1e-5, atol=1e-5, err_msg=f"box {b},{n}")


def test_layer_reads_image_shape_from_meta_and_builds_symbolically():
    boxes, feature_maps = _random_case(1)
    meta = compose_image_meta(0, (600, 800, 3), (896, 896, 3), (0, 0, 896, 896), 1.0, [0, 0])
    layer = PyramidROIAlign((3, 4), name="roi_align_classifier")
    inputs = [keras.Input((5, 4)), keras.Input((14,))] + [keras.Input((s, s, 3)) for s in (16, 8, 4, 2)]
    output = layer(inputs)
    assert tuple(output.shape) == (None, 5, 3, 4, 3)
    model = keras.Model(inputs, output)
    out = np.asarray(model([boxes, np.stack([meta, meta]).astype(np.float32)] + feature_maps))
    direct = pyramid_roi_align(tf.constant(boxes), tf.constant([896.0, 896.0]), feature_maps, (3, 4)).numpy()
    np.testing.assert_array_equal(out, direct)


def test_layer_config_round_trip():
    layer = PyramidROIAlign([14, 14], name="roi_align_mask")
    config = layer.get_config()
    json.dumps(config)
    clone = PyramidROIAlign.from_config(config)
    assert clone.pool_shape == (14, 14) and clone.name == "roi_align_mask"
