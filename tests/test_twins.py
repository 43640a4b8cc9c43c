"""Rules written in NumPy and in TensorFlow (``f`` and ``f_graph`` in mrcnn.ops) give the same results.

The NumPy versions are matterport's (data I/O, its API); the TensorFlow ones run inside the input
pipeline and exported graphs. Many random shapes and settings each.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops.image_meta import compose_image_meta, compose_image_meta_graph
from mrcnn.ops.masks import extract_bboxes, extract_bboxes_graph, minimize_mask, minimize_masks_graph
from mrcnn.ops.resize import resize_bilinear, resize_image, resize_scale, resize_scale_graph


def resize_settings(rng):
    """Random image sizes and resize settings, matterport's edge cases included."""
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 3000, size=2))
        mode = rng.choice(["square", "pad64", "crop", "none"])
        min_dim = int(rng.choice([0, 64, 256, 800, 1024]))
        max_dim = int(rng.choice([0, 256, 512, 1024, 1344]))
        min_scale = float(rng.choice([0, 0, 1.5, 2.0]))
        yield height, width, min_dim, max_dim, min_scale, str(mode)
    # Long sides whose scaled length sits right at max_dim (the rounding decides).
    for longest in (1023, 1024, 1025, 2047, 2048, 2049, 511, 513):
        yield 300, longest, 800, 1024, 0, "square"


def test_resize_scale_python_and_graph_agree_on_many_shapes():
    rng = np.random.default_rng(0)
    for height, width, min_dim, max_dim, min_scale, mode in resize_settings(rng):
        expected = resize_scale(height, width, min_dim, max_dim, min_scale, mode)
        got = float(resize_scale_graph(tf.constant(height), tf.constant(width), min_dim, max_dim, min_scale, mode))
        assert got == expected, (height, width, min_dim, max_dim, min_scale, mode)


def test_resize_scale_is_what_resize_image_applies():
    rng = np.random.default_rng(1)
    for height, width in rng.integers(20, 400, size=(30, 2)):
        image = np.zeros((height, width, 3), np.uint8)
        _, _, scale, _, _ = resize_image(image, min_dim=128, max_dim=256, mode="square")
        assert scale == resize_scale(height, width, 128, 256, 0, "square")


def random_masks(rng, height, width, count):
    masks = np.zeros((height, width, count), bool)
    for k in range(count):
        if rng.random() < 0.15:
            continue  # an empty mask
        y1, y2 = sorted(rng.integers(0, height, size=2))
        x1, x2 = sorted(rng.integers(0, width, size=2))
        masks[y1:y2 + 1, x1:x2 + 1, k] = rng.random((y2 - y1 + 1, x2 - x1 + 1)) > rng.choice([0.0, 0.3, 0.6])
    return masks


def test_tight_boxes_numpy_and_graph_agree():
    rng = np.random.default_rng(2)
    for _ in range(60):
        masks = random_masks(rng, *(int(v) for v in rng.integers(1, 70, size=2)), int(rng.integers(0, 6)))
        boxes, present = extract_bboxes_graph(tf.constant(masks))
        np.testing.assert_array_equal(np.asarray(boxes).astype(np.int32), extract_bboxes(masks))
        np.testing.assert_array_equal(np.asarray(present), masks.any(axis=(0, 1)))


@pytest.mark.parametrize("mini_shape", [(56, 56), (14, 14), (28, 20)])
def test_mini_masks_numpy_and_graph_agree(mini_shape):
    rng = np.random.default_rng(3)
    for _ in range(25):
        masks = random_masks(rng, *(int(v) for v in rng.integers(8, 90, size=2)), int(rng.integers(1, 5)))
        masks = masks[:, :, masks.any(axis=(0, 1))]
        if masks.shape[2] == 0:
            continue
        boxes = extract_bboxes(masks)
        expected = minimize_mask(boxes, masks, mini_shape)
        got = np.asarray(minimize_masks_graph(tf.constant(masks), tf.constant(boxes, tf.float32), mini_shape))
        # They may differ only where the bilinear value is 0.5 to float32 precision (a sample exactly
        # between pixels of 0 and 1: float32 in TF, float64 in skimage fall on either side of the threshold).
        values = np.stack([resize_bilinear(masks[y1:y2, x1:x2, k].astype(np.float64), mini_shape)
                           for k, (y1, x1, y2, x2) in enumerate(boxes)], axis=-1)
        differ = got != expected
        assert np.all(np.abs(values[differ] - 0.5) < 1e-5), values[differ]


def test_image_meta_numpy_and_graph_agree():
    rng = np.random.default_rng(4)
    for _ in range(20):
        classes = int(rng.integers(1, 20))
        args = (int(rng.integers(0, 10 ** 6)), tuple(int(v) for v in rng.integers(1, 3000, 3)),
                (1024, 1024, 3), tuple(int(v) for v in rng.integers(0, 1024, 4)), float(rng.random() * 4),
                rng.integers(0, 2, classes))
        np.testing.assert_array_equal(np.asarray(compose_image_meta_graph(*args)),
                                      compose_image_meta(*args).astype(np.float32))
