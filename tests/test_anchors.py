"""Anchors: shapes, counts, hand-computed values and order, parity with matterport's anchors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mrcnn.ops.anchors import compute_backbone_shapes, generate_pyramid_anchors, get_anchors

SCALES = (32, 64, 128, 256, 512)
RATIOS = (0.5, 1, 2)
STRIDES = (4, 8, 16, 32, 64)


def test_backbone_shapes_round_up():
    expected = [[128, 128], [64, 64], [32, 32], [16, 16], [8, 8]]
    assert compute_backbone_shapes((512, 512, 3), STRIDES).tolist() == expected
    assert compute_backbone_shapes((300, 401), STRIDES).tolist() == [[75, 101], [38, 51], [19, 26], [10, 13], [5, 7]]


def test_anchor_count_at_1024():
    # 3 ratios * (256^2 + 128^2 + 64^2 + 32^2 + 16^2) = 261,888 (matterport's published summary).
    assert get_anchors((1024, 1024)).shape == (261888, 4)


def test_first_anchors_are_centred_on_origin_without_half_stride():
    pixels = generate_pyramid_anchors(SCALES, RATIOS, compute_backbone_shapes((64, 64), STRIDES), STRIDES, 1)
    s2 = math.sqrt(2.0)
    # ratio = w / h: 0.5 -> tall (h = 32*sqrt2, w = 32/sqrt2), 1 -> square, 2 -> wide.
    expected = [[-16 * s2, -8 * s2, 16 * s2, 8 * s2], [-16, -16, 16, 16], [-8 * s2, -16 * s2, 8 * s2, 16 * s2]]
    np.testing.assert_allclose(pixels[:3], expected, rtol=1e-12)


def test_order_is_level_then_y_then_x_then_ratio():
    shapes = compute_backbone_shapes((64, 96), STRIDES)  # P2 16x24, P3 8x12, ...
    pixels = generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1)
    y, x, r = 5, 7, 2
    row = (y * 24 + x) * 3 + r
    centre = (pixels[row, :2] + pixels[row, 2:]) / 2
    size = pixels[row, 2:] - pixels[row, :2]
    np.testing.assert_allclose(centre, [y * 4, x * 4])
    np.testing.assert_allclose(size, [32 / math.sqrt(2), 32 * math.sqrt(2)])
    # First P3 anchor comes right after all P2 anchors, centred on the origin with scale 64.
    first_p3 = 16 * 24 * 3
    np.testing.assert_allclose(pixels[first_p3 + 1], [-32, -32, 32, 32])
    np.testing.assert_allclose(pixels[first_p3 + 3 + 1], [-32, 8 - 32, 32, 8 + 32])


def test_anchor_stride_skips_cells():
    shapes = compute_backbone_shapes((64, 64), STRIDES)
    pixels = generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 2)
    per_level = [math.ceil(h / 2) * math.ceil(w / 2) * 3 for h, w in shapes]
    assert len(pixels) == sum(per_level)
    np.testing.assert_allclose(pixels[3 + 1], [-16, 8 - 16, 16, 8 + 16])  # next x centre is 2 cells * 4 px


def test_get_anchors_normalized_cached_and_read_only():
    anchors = get_anchors((128, 64, 3))
    assert anchors.dtype == np.float32
    assert get_anchors((128, 64)) is anchors
    with pytest.raises(ValueError):
        anchors[0, 0] = 1.0
    pixels = generate_pyramid_anchors(SCALES, RATIOS, compute_backbone_shapes((128, 64), STRIDES), STRIDES, 1)
    np.testing.assert_allclose(anchors, (pixels - [0, 0, 1, 1]) / [127, 63, 127, 63], rtol=1e-6)


@pytest.fixture(scope="module")
def ref0(reference_dir):
    return np.load(reference_dir / "matterport_ref" / "r512" / "ref0.npz")


def test_parity_with_matterport_anchors(ref0):
    np.testing.assert_array_equal(get_anchors((512, 512)), ref0["anchors"])
    pixels = generate_pyramid_anchors(SCALES, RATIOS, compute_backbone_shapes((512, 512), STRIDES), STRIDES, 1)
    np.testing.assert_array_equal(pixels.astype(np.float32), ref0["anchors_pixels"])
