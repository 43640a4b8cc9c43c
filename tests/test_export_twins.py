"""The TensorFlow twins an exported graph runs give what ``MaskRCNN.detect``'s NumPy steps give.

Each ``f_graph`` in mrcnn.ops (and the in-graph decoder of mrcnn.export.decode) against its NumPy
``f`` on random sizes and settings: equal pixels, windows, scales, anchors, boxes and masks.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mrcnn.export.decode import decode_image_graph
from mrcnn.io.images import read_image_rgb
from mrcnn.ops.anchors import get_anchors, get_anchors_graph
from mrcnn.ops.keypoint_targets import class_landmarks, class_landmarks_graph, landmark_index_table
from mrcnn.ops.masks import paste_masks, paste_masks_graph
from mrcnn.ops.resize import (mold_image, mold_image_graph, resize_bilinear, resize_bilinear_graph, resize_image,
                              resize_image_graph)
from mrcnn.ops.unmold import unmold_boxes, unmold_boxes_graph


def test_bilinear_resize_equals_skimage_on_photos_and_masks():
    rng = np.random.default_rng(0)
    for _ in range(25):
        h, w, oh, ow = (int(v) for v in rng.integers(1, 90, size=4))
        photo = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        if rng.random() < 0.5:
            photo = np.maximum(photo, 40)  # no 0 anywhere: the clip to [min, max] decides the border
        expected = resize_bilinear(photo, (oh, ow), preserve_range=True)
        got = resize_bilinear_graph(tf.constant(photo), (oh, ow)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got.astype(np.uint8), expected.astype(np.uint8))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        mask = rng.random((28, 28)).astype(np.float32)
        np.testing.assert_allclose(resize_bilinear_graph(tf.constant(mask), (oh, ow)).numpy(),
                                   resize_bilinear(mask, (oh, ow)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode,min_dim,max_dim,min_scale", [
    ("square", 128, 256, 0), ("square", 64, 96, 0), ("square", 128, 160, 1.5), ("pad64", 64, 0, 0),
    ("pad64", 128, 256, 0), ("none", 0, 0, 0)])
def test_resize_image_equals_numpy(mode, min_dim, max_dim, min_scale):
    rng = np.random.default_rng(hash(mode) % 1000 + min_dim)
    sizes = [(97, 143), (160, 40), (256, 256), (31, 200), (128, 128), (1, 700), (3, 4000)]  # the thin: >= 1 row
    for h, w in sizes + [tuple(rng.integers(5, 300, 2))]:
        image = rng.integers(0, 256, (int(h), int(w), 3)).astype(np.uint8)
        expected, window, scale, _, _ = resize_image(image, min_dim, max_dim, min_scale, mode)
        got, got_window, got_scale = resize_image_graph(tf.constant(image), min_dim, max_dim, min_scale, mode)
        assert got.dtype == tf.uint8
        np.testing.assert_array_equal(got.numpy(), expected)
        assert tuple(int(v) for v in got_window) == tuple(window), (h, w)
        assert float(got_scale) == float(scale), (h, w)
        np.testing.assert_array_equal(mold_image_graph(got, (123.7, 116.8, 103.9)).numpy(),
                                      mold_image(expected, (123.7, 116.8, 103.9)))


def test_resize_image_graph_refuses_training_crop():
    with pytest.raises(ValueError, match="crop"):
        resize_image_graph(tf.zeros([8, 8, 3], tf.uint8), 64, 64, 0, "crop")


@pytest.mark.parametrize("hw", [(256, 256), (128, 192), (320, 64), (100, 37)])
def test_anchors_graph_is_bit_equal(hw):
    settings = ((16, 32, 64, 128, 256), (0.5, 1, 2), (4, 8, 16, 32, 64), 1)
    expected = get_anchors(hw, *settings)
    got = get_anchors_graph(tf.constant(hw), *settings).numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(get_anchors_graph(hw, (32,), (1,), (8,), 2).numpy(), get_anchors(hw, (32,), (1,),
                                                                                                    (8,), 2))


def random_detections(rng, count, padded):
    """[padded, 6] detections normalised to the molded image: count valid rows, then zeros."""
    y = np.sort(rng.random((count, 2)), axis=1)
    x = np.sort(rng.random((count, 2)), axis=1)
    thin = rng.random(count) < 0.2  # some boxes collapse to zero area in the original image
    y[thin, 1] = y[thin, 0]
    rows = np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1], rng.integers(1, 14, count), rng.random(count)], axis=1)
    return np.concatenate([rows, np.zeros((padded - count, 6))]).astype(np.float32)


def test_unmold_boxes_equals_numpy():
    rng = np.random.default_rng(3)
    for count in (0, 1, 7, 20):
        detections = random_detections(rng, count, 20)
        original, molded = (int(rng.integers(20, 900)), int(rng.integers(20, 900))), (256, 256)
        window = (int(rng.integers(0, 60)), int(rng.integers(0, 60)), int(rng.integers(190, 257)),
                  int(rng.integers(190, 257)))
        cases = [(original, window), ((3, original[1]), (128, window[1], 129, window[3]))]  # + a 1 px high window
        for image_hw, image_window in cases:
            expected = unmold_boxes(detections, image_hw, molded, image_window)
            got = unmold_boxes_graph(tf.constant(detections), tf.constant(image_hw), tf.constant(molded),
                                     tf.constant(image_window))
            for e, g in zip(expected, got):
                np.testing.assert_array_equal(g.numpy(), e)


def test_paste_masks_equals_numpy():
    rng = np.random.default_rng(4)
    height, width = 90, 130
    for n in (0, 1, 5):
        y1 = rng.integers(0, height - 1, n)
        x1 = rng.integers(0, width - 1, n)
        boxes = np.stack([y1, x1, y1 + rng.integers(1, height - y1 + 1), x1 + rng.integers(1, width - x1 + 1)],
                         axis=1).astype(np.int32).reshape(n, 4)
        masks = rng.random((n, 28, 28)).astype(np.float32)
        expected = np.moveaxis(paste_masks(masks, boxes, (height, width)), -1, 0)
        got = paste_masks_graph(tf.constant(masks), tf.constant(boxes), tf.constant([height, width])).numpy()
        assert got.shape == (n, height, width)
        np.testing.assert_array_equal(got, expected)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sample_images(rng):
    """(name, Pillow image, format) of every kind the in-graph decoder handles."""
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3)).astype(np.uint8))
    rgba = np.dstack([rng.integers(0, 256, (37, 53, 3)), rng.integers(0, 256, (37, 53))]).astype(np.uint8)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    gray16 = Image.fromarray(rng.integers(0, 65536, (21, 30)).astype(np.uint16))
    return [("jpeg rgb", rgb, "JPEG"), ("jpeg gray", rgb.convert("L"), "JPEG"), ("png rgb", rgb, "PNG"),
            ("png rgba", Image.fromarray(rgba), "PNG"), ("png gray", rgb.convert("L"), "PNG"),
            ("png gray+alpha", Image.fromarray(rgba).convert("LA"), "PNG"), ("png gray16", gray16, "PNG"),
            ("png palette+transparency", palette, "PNG"), ("bmp", rgb, "BMP")]


def test_class_landmarks_graph_is_bit_equal():
    """Each detection's category slice in image pixels (kept in the image), zero elsewhere; no detection gives
    an empty array."""
    table = landmark_index_table([3, 2, 4])  # 9 landmarks: class 1 owns 0-2, class 2 3-4, class 3 5-8
    rng = np.random.default_rng(0)
    for n in (0, 1, 6):
        peaks = rng.random((n, 9, 3)).astype(np.float32)
        class_ids = rng.integers(1, 4, n).astype(np.int32)
        boxes = np.sort(rng.integers(0, 500, (n, 4)), axis=1).astype(np.int32)  # y1 <= x1 <= y2 <= x2
        peaks[..., :2] = peaks[..., :2] * 1.4 - 0.2  # units in [-0.2, 1.2]: some points leave the image
        expected = class_landmarks(peaks, class_ids, boxes, table, (480, 450))
        got = class_landmarks_graph(tf.constant(peaks), tf.constant(class_ids), tf.constant(boxes), table,
                                    tf.constant([480, 450])).numpy()
        assert got.shape == (n, 9, 3) and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        if n:
            assert got[..., 0].max() <= 450 and got[..., 1].max() <= 480 and got[..., :2].min() >= 0


def test_decode_equals_read_image_rgb(tmp_path):
    rng = np.random.default_rng(5)
    for name, image, fmt in sample_images(rng):
        data = encoded(image, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        path = tmp_path / f"{name.replace(' ', '_')}.{fmt.lower()}"
        path.write_bytes(data)
        got = decode_image_graph(tf.constant(data)).numpy()
        np.testing.assert_array_equal(got, read_image_rgb(path), err_msg=name)


def test_decode_rejects_bytes_that_are_no_image():
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_image_graph(tf.constant(b"not an image at all"))
