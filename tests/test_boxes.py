"""Box math: hand cases, encode/decode round trip, IoU, clip, norm/denorm."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from mrcnn.ops.boxes import apply_box_deltas, box_iou, box_refinement, clip_boxes, nonzero_box_mask, norm_boxes_graph
from mrcnn.ops.box_frames import denorm_boxes, norm_boxes


def test_apply_box_deltas_hand_case():
    # h=10, w=20, centre (5, 10); shift by (0.1*10, -0.2*20) -> (6, 6); h*2 -> 20, w*1 -> 20.
    boxes = tf.constant([[0.0, 0.0, 10.0, 20.0]])
    deltas = tf.constant([[0.1, -0.2, math.log(2.0), 0.0]])
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas).numpy(), [[-4.0, -4.0, 16.0, 16.0]], atol=1e-5)


def test_apply_zero_deltas_is_identity_and_keeps_batch_dims():
    boxes = tf.random.uniform([2, 5, 4], seed=1)
    boxes = tf.concat([tf.minimum(boxes[..., :2], boxes[..., 2:]), tf.maximum(boxes[..., :2], boxes[..., 2:])], -1)
    out = apply_box_deltas(boxes, tf.zeros([2, 5, 4]))
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(out.numpy(), boxes.numpy(), atol=1e-6)


def test_refinement_then_apply_round_trip():
    rng = np.random.RandomState(0)
    corner = rng.uniform(0, 100, (50, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 50, (50, 2))], 1).astype(np.float32)
    corner = rng.uniform(0, 100, (50, 2))
    targets = np.concatenate([corner, corner + rng.uniform(1, 50, (50, 2))], 1).astype(np.float32)
    deltas = box_refinement(boxes, targets)
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas).numpy(), targets, rtol=1e-5, atol=1e-4)


def test_box_refinement_hand_case():
    # box centre (5, 5) size 10x10; target centre (10, 0) size 20x5.
    deltas = box_refinement([[0.0, 0.0, 10.0, 10.0]], [[0.0, -2.5, 20.0, 2.5]]).numpy()
    np.testing.assert_allclose(deltas, [[0.5, -0.5, math.log(2.0), math.log(0.5)]], atol=1e-6)


def test_clip_boxes():
    boxes = tf.constant([[-0.5, 0.2, 0.5, 1.5], [2.0, 2.0, 3.0, 3.0], [0.1, 0.1, 0.2, 0.2]])
    out = clip_boxes(boxes, tf.constant([0.0, 0.0, 1.0, 1.0])).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.2, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.2, 0.2]])


def test_clip_boxes_to_inner_window():
    out = clip_boxes(tf.constant([[0.0, 0.0, 1.0, 1.0]]), tf.constant([0.125, 0.0, 0.875, 1.0])).numpy()
    np.testing.assert_allclose(out, [[0.125, 0.0, 0.875, 1.0]])


def test_box_iou_hand_cases():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 11.0]])
    b = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 2.0, 4.0], [1.0, 1.0, 3.0, 3.0]])
    expected = [[1.0, 2.0 / 6.0, 0.0, 1.0 / 7.0], [0.0, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(box_iou(a, b).numpy(), expected, atol=1e-6)


def test_box_iou_matches_numpy_loop():
    rng = np.random.RandomState(3)
    corner = rng.uniform(0, 1, (7, 2))
    a = np.concatenate([corner, corner + rng.uniform(0.05, 0.5, (7, 2))], 1).astype(np.float32)
    corner = rng.uniform(0, 1, (5, 2))
    b = np.concatenate([corner, corner + rng.uniform(0.05, 0.5, (5, 2))], 1).astype(np.float32)
    expected = np.zeros((7, 5))
    for i in range(7):
        for j in range(5):
            ih = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
            iw = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
            area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            expected[i, j] = ih * iw / (area_a + area_b - ih * iw)
    np.testing.assert_allclose(box_iou(a, b).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_nonzero_box_mask():
    boxes = tf.constant([[0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.3]])
    assert nonzero_box_mask(boxes).numpy().tolist() == [True, False, True]


def test_norm_boxes_hand_values():
    # The whole 300x400 image (y2/x2 exclusive) maps to the unit square.
    np.testing.assert_allclose(norm_boxes(np.array([[0, 0, 300, 400]]), (300, 400)), [[0, 0, 1, 1]])
    out = norm_boxes(np.array([[299, 399, 300, 400]]), (300, 400))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[1, 1, 1, 1]])


def test_norm_denorm_round_trip():
    rng = np.random.RandomState(0)
    y = np.sort(rng.randint(0, 301, (100, 2)), 1)
    x = np.sort(rng.randint(0, 401, (100, 2)), 1)
    boxes = np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], 1)
    back = denorm_boxes(norm_boxes(boxes, (300, 400)), (300, 400))
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, boxes)


def test_denorm_rounds_half_to_even():
    # 0.5 / (h - 1) * (h - 1) = 0.5 -> 0 (numpy rounds half to even), 1.5 -> 2.
    out = denorm_boxes(np.array([[0.5 / 10, 1.5 / 10, 0.0, 0.0]]), (11, 11))
    np.testing.assert_array_equal(out, [[0, 2, 1, 1]])


def test_norm_boxes_graph_equals_numpy():
    boxes = np.array([[64, 0, 448, 512], [10, 20, 30, 40]], dtype=np.float32)
    graph = norm_boxes_graph(tf.constant(boxes), tf.constant([512.0, 512.0])).numpy()
    np.testing.assert_allclose(graph, norm_boxes(boxes, (512, 512)), rtol=1e-6)


def test_apply_box_deltas_keeps_its_operation_order_inside_a_graph():
    """In a tf.function with static shapes Grappler merges chains of Adds into an AddN that sums in another
    order; apply_box_deltas is written so that it cannot (matterport's graph, with unknown shapes, is never
    rewritten). Before that, ~5,000 of 24,000 coordinates here moved by an ulp inside the model."""
    rng = np.random.default_rng(0)
    corners = np.sort(rng.random((6000, 2, 2)).astype(np.float32), axis=1)  # [N, (low, high), (y, x)]
    boxes = corners.transpose(0, 2, 1).reshape(6000, 4)[:, [0, 2, 1, 3]]  # (y1, x1, y2, x2)
    deltas = (rng.standard_normal((6000, 4)) * 0.3).astype(np.float32)
    in_graph = tf.function(apply_box_deltas, jit_compile=False)(tf.constant(boxes), tf.constant(deltas))
    eager = apply_box_deltas(tf.constant(boxes), tf.constant(deltas))
    np.testing.assert_array_equal(in_graph.numpy(), eager.numpy())
