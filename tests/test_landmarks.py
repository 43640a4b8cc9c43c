"""The landmark head: heatmap targets and loss on hand cases, the ROI <-> image rule both ways."""
from __future__ import annotations

import math

import numpy as np
import pytest
import keras
import tensorflow as tf

from mrcnn.ops.box_frames import denorm_boxes
from mrcnn.layers.landmarks import ClassSliceUpConvolution
from mrcnn.ops.keypoint_targets import (bilinear_cells_graph, class_landmarks, class_slice_up_convolution_graph,
                                        expand_boxes_graph, heatmap_peaks_graph, landmark_index_table,
                                        landmark_targets, points_to_roi_units_graph, roi_units_to_points)
from mrcnn.ops.losses import landmark_loss

# Three classes with 2, 4 and 1 landmarks: class 1 owns landmarks 0-1, class 2 owns 2-5, class 3 owns 6.
COUNTS = (2, 4, 1)


def test_index_table_lists_each_class_slice_padded():
    table = landmark_index_table(COUNTS)
    np.testing.assert_array_equal(table, [[-1, -1, -1, -1], [0, 1, -1, -1], [2, 3, 4, 5], [6, -1, -1, -1]])


def hand_case():
    """A 101 x 101 image (normalized = pixels / 100): one ROI spanning pixels x 20..60, y 10..50 (exclusive)."""
    points = np.zeros((2, 7, 3), np.float32)
    # Instance 0, class 2 (landmarks 2-5); its landmark 0 is labelled but belongs to class 1's slice.
    points[0, 0] = (30, 30, 2)
    points[0, 2] = (25, 15, 2)  # visible, u = (0.125, 0.125): grid (0.5, 0.5) on a 4 x 4 heatmap
    points[0, 3] = (55, 45, 1)  # occluded (v = 1) still trained: u = (0.875, 0.875): grid (3.5, 3.5)
    points[0, 4] = (60, 10, 2)  # on the right edge, u = (1, 0): grid (4, 0)
    points[0, 5] = (30, 30, 0)  # not labelled
    # Instance 1, class 1 (landmarks 0-1).
    points[1, 0] = (70, 20, 2)  # outside the ROI
    points[1, 1] = (35, 25, 2)  # u = (0.375, 0.375): grid (1.5, 1.5)
    gt = {"class_ids": tf.constant([2, 1]), "points": tf.constant(points)}
    roi = [0.10, 0.20, 0.49, 0.59]
    return gt, tf.constant([roi, roi], tf.float32)


def test_targets_keep_labelled_points_inside_the_roi_of_the_matched_class_slice():
    gt, rois = hand_case()
    grid = landmark_targets(rois, tf.constant([0, 1], tf.int64), gt, field="points",
                            index_table=landmark_index_table(COUNTS), image_hw=(101, 101), heatmap_size=4)
    np.testing.assert_allclose(grid.numpy(), [[[0.5, 0.5], [3.5, 3.5], [4, 0], [-1, -1]],
                                              [[-1, -1], [1.5, 1.5], [-1, -1], [-1, -1]]], atol=1e-5)


def test_with_a_margin_the_targets_are_cells_of_the_grown_roi_and_points_just_outside_are_trained():
    gt, rois = hand_case()
    # Margin 0.5: the ROI (pixels x 20..60, y 10..50) grows to x 0.5 .. 79.5, y -9.5 .. 69.5 (79 px, cells of 19.75).
    np.testing.assert_allclose(expand_boxes_graph(rois, 0.5).numpy()[0], [-0.095, 0.005, 0.685, 0.785], atol=1e-6)
    grid = landmark_targets(rois, tf.constant([0, 1], tf.int64), gt, field="points", margin=0.5,
                            index_table=landmark_index_table(COUNTS), image_hw=(101, 101), heatmap_size=4)
    # g = (point - grown start) / 79 * 4; (70, 20) lies outside the ROI itself but inside the grown one.
    def g(x, y):
        return [(x - 0.5) / 79 * 4, (y + 9.5) / 79 * 4]
    np.testing.assert_allclose(grid.numpy(), [[g(25, 15), g(55, 45), g(60, 10), [-1, -1]],
                                              [g(70, 20), g(35, 25), [-1, -1], [-1, -1]]], atol=1e-4)
    np.testing.assert_array_equal(expand_boxes_graph(rois, 0.0).numpy(), rois.numpy())


def test_with_a_margin_peaks_come_back_in_units_of_the_roi_itself():
    """Reading a peak of the grown ROI's heatmap in units of the ROI gives the same image point as reading
    it in the grown pixel box (the conversion and expand_boxes_graph are one rule)."""
    margin, size = 0.25, 8
    logits = np.full((1, size, size, 3), -60.0, np.float32)
    for landmark, (row, column) in enumerate([(0, 0), (7, 7), (2, 5)]):
        logits[0, row, column, landmark] = 0.0
    peaks = heatmap_peaks_graph(tf.constant(logits), margin).numpy()[0]
    np.testing.assert_allclose(peaks[0, :2], [0.5 / size * 1.5 - 0.25] * 2, rtol=1e-5)  # -0.156: left of the box
    box = np.array([[12, 30, 52, 90]], np.float32)  # pixels, (y2, x2) exclusive
    grown = expand_boxes_graph(box, margin).numpy()
    grown_units = (np.array([[0, 0], [7, 7], [5, 2]], np.float32)[None] + 0.5) / size
    np.testing.assert_allclose(roi_units_to_points(peaks[None, :, :2], box), roi_units_to_points(grown_units, grown),
                               atol=1e-4)


def test_roi_units_and_image_points_are_inverse_rules():
    rng = np.random.default_rng(0)
    height, width = 120, 90
    pixel_boxes = np.array([[10, 5, 70, 40], [0, 0, 120, 90], [33, 61, 34, 62]], np.int32)  # last: one pixel
    rois = (pixel_boxes - [0, 0, 1, 1]) / np.array([height - 1, width - 1, height - 1, width - 1])
    np.testing.assert_array_equal(denorm_boxes(rois, (height, width)), pixel_boxes)
    points = rng.uniform(0, 120, size=(3, 5, 2)).astype(np.float32)
    units = points_to_roi_units_graph(tf.constant(points), tf.constant(rois, tf.float32), (height, width))
    np.testing.assert_allclose(roi_units_to_points(units.numpy(), pixel_boxes), points, atol=1e-3)
    # The box's own span is [0, 1].
    corners = np.array([[[5, 10], [40, 70]]], np.float32)
    units = points_to_roi_units_graph(tf.constant(corners), tf.constant(rois[:1], tf.float32), (height, width))
    np.testing.assert_allclose(units.numpy(), [[[0, 0], [1, 1]]], atol=1e-6)


def test_bilinear_target_cells_surround_the_point_and_their_mean_centre_is_the_point():
    grid = tf.constant([[1.5, 0.5], [1.0, 0.5], [2.25, 1.75], [0.2, 3.9]], tf.float32)  # 4 x 4 heatmap
    cells, weights = bilinear_cells_graph(grid, 4)
    cells, weights = cells.numpy(), weights.numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(cells[0][weights[0] > 0], [1])  # a cell's centre: that cell alone
    np.testing.assert_array_equal(cells[1], [0, 1, 4, 5])  # between columns 0 and 1 of row 0 (row 1 weighs 0)
    np.testing.assert_allclose(weights[1], [0.5, 0.5, 0, 0], atol=1e-6)
    # (2.25, 1.75): columns 1, 2 (weights 0.25, 0.75), rows 1, 2 (0.75, 0.25).
    np.testing.assert_array_equal(cells[2], [5, 6, 9, 10])
    np.testing.assert_allclose(weights[2], [0.1875, 0.5625, 0.0625, 0.1875], atol=1e-6)
    # Within half a cell of the edge the edge cell takes it all: (0.2, 3.9) -> column 0, row 3.
    np.testing.assert_allclose(np.bincount(cells[3], weights[3], minlength=16)[12], 1.0, rtol=1e-6)
    centres = np.stack([cells % 4 + 0.5, cells // 4 + 0.5], axis=-1)  # [n, 4, (x, y)]
    np.testing.assert_allclose((weights[..., None] * centres).sum(axis=1)[:3], grid.numpy()[:3], atol=1e-5)


def test_a_heatmap_equal_to_its_target_reads_back_the_point():
    """The target rule and the peak reading are one rule: softmax = bilinear target -> the exact point."""
    size = 8
    rng = np.random.default_rng(1)
    grid = rng.uniform(0.5, size - 0.5, size=(5, 2)).astype(np.float32)
    cells, weights = bilinear_cells_graph(tf.constant(grid), size)
    probabilities = np.full((5, size * size), 1e-12, np.float32)
    for row in range(5):
        np.add.at(probabilities[row], cells.numpy()[row], weights.numpy()[row])
    logits = np.log(probabilities).reshape(5, size, size).transpose(1, 2, 0)[None]  # [1, M, M, 5 landmarks]
    peaks = heatmap_peaks_graph(tf.constant(logits)).numpy()[0]
    np.testing.assert_allclose(peaks[:, :2] * size, grid, atol=1e-4)


def test_loss_is_the_mean_cross_entropy_of_trained_landmarks_of_positive_rois():
    logits = np.zeros((1, 3, 2, 4), np.float32)  # 2 x 2 heatmaps
    logits[0, 0, 0] = [2, 0, 0, 0]
    # Grid positions: cell centres (cell 0 at (0.5, 0.5), 3 at (1.5, 1.5), 1 at (1.5, 0.5)), then one point
    # half-way between cells 0 and 1; ROI 2 is a negative: not read.
    targets = np.array([[[[0.5, 0.5], [-1, -1]], [[1.5, 1.5], [1.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]]]], np.float32)
    class_ids = np.array([[1, 1, 0]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 3)) + 2 * math.log(4)) / 3
    assert float(landmark_loss(targets, class_ids, logits)) == pytest.approx(expected, rel=1e-6)
    targets[0, 0, 1] = (1.0, 0.5)  # trained now, half on cell 0 (p = e^2 / (e^2 + 3)), half on cell 1
    logits[0, 0, 1] = [2, 0, 0, 0]
    soft = -0.5 * (math.log(math.exp(2) / (math.exp(2) + 3)) + math.log(1 / (math.exp(2) + 3)))
    expected = (-math.log(math.exp(2) / (math.exp(2) + 3)) + soft + 2 * math.log(4)) / 4
    assert float(landmark_loss(targets, class_ids, logits)) == pytest.approx(expected, rel=1e-6)


def test_loss_without_trained_landmarks_is_zero_with_finite_gradients():
    logits = tf.Variable(tf.random.normal((1, 2, 2, 4)))
    with tf.GradientTape() as tape:
        loss = landmark_loss(tf.constant([[[[-1.0, -1.0]], [[0.5, 0.5]]]]), tf.constant([[3, 0]]), logits[..., :1, :])
    gradient = tape.gradient(loss, logits)
    assert float(loss) == 0.0
    assert gradient is not None and np.all(np.isfinite(gradient.numpy())) and not np.any(gradient.numpy())


def full_up_convolution_layer(features, kernel, bias):
    """The inference graph's layer: Keras' Conv2DTranspose with every landmark's channel."""
    layer = keras.layers.Conv2DTranspose(kernel.shape[2], kernel.shape[0], strides=2, padding="same",
                                         kernel_initializer="he_normal")
    layer.build(features.shape)
    layer.set_weights([kernel, bias])
    return layer


def full_up_convolution_then_slice(layer, features, class_ids):
    """The reference: every landmark's channel, then each ROI's class slice."""
    logits = layer(features)  # [R, m, m, N]
    table = landmark_index_table(COUNTS)[class_ids]  # [R, Kmax]
    picked = tf.gather(logits, np.maximum(table, 0), axis=3, batch_dims=1)
    return picked * (table >= 0)[:, None, None, :]


def test_class_slice_up_convolution_equals_the_full_one_on_each_roi_class_slice():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 3, 3, 2)).astype(np.float32)  # [R, p, p, D]
    kernel = rng.normal(size=(4, 4, 7, 2)).astype(np.float32)  # [k, k, N, D]
    bias = rng.normal(size=7).astype(np.float32)
    class_ids = np.array([2, 0, 3, 2, 1])
    sliced = class_slice_up_convolution_graph(features, class_ids, kernel, bias, COUNTS).numpy()
    assert sliced.shape == (5, 6, 6, 4)
    reference = full_up_convolution_then_slice(full_up_convolution_layer(features, kernel, bias), features, class_ids)
    np.testing.assert_allclose(sliced, reference.numpy(), rtol=1e-5, atol=1e-5)
    assert not sliced[1].any() and not sliced[2, ..., 1:].any()  # background row, padding of class 3's slice


def test_class_slice_up_convolution_layer_has_conv2d_transposes_weights_and_gradients():
    rng = np.random.default_rng(1)
    features = tf.constant(rng.normal(size=(4, 3, 3, 2)).astype(np.float32))
    class_ids = np.array([1, 2, 2, 3])
    layer = ClassSliceUpConvolution(COUNTS, 4, name="mrcnn_landmark_heatmaps")
    layer.build([features.shape, class_ids.shape])
    kernel, bias = (rng.normal(size=w.shape).astype(np.float32) for w in layer.weights)
    layer.set_weights([kernel, bias])
    reference = full_up_convolution_layer(features, kernel, bias)
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [(w.name, tuple(w.shape)) for w in reference.weights]
    upstream = rng.normal(size=(4, 6, 6, 4)).astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        ours = tf.reduce_sum(layer([features, class_ids]) * upstream)
        full = tf.reduce_sum(full_up_convolution_then_slice(reference, features, class_ids) * upstream)
    for mine, theirs in zip(tape.gradient(ours, layer.trainable_weights),
                            tape.gradient(full, reference.trainable_weights)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_a_clear_peak_is_its_cell_centre_with_its_probability_mass_and_only_the_class_slice_is_returned():
    logits = np.zeros((1, 4, 4, 7), np.float32)
    logits[0, 1, 3, 2] = 30.0  # landmark 2 peaks at row 1, column 3 (its neighbours weigh ~e-30)
    logits[0, 2, 0, 3] = 30.0
    peaks = heatmap_peaks_graph(tf.constant(logits)).numpy()
    np.testing.assert_allclose(peaks[0, 2, :2], [3.5 / 4, 1.5 / 4], rtol=1e-6)
    assert peaks[0, 2, 2] == pytest.approx(1.0, rel=1e-6)
    landmarks = class_landmarks(peaks, [2], [[10, 20, 50, 60]], landmark_index_table(COUNTS), (100, 100))
    np.testing.assert_allclose(landmarks[0, 2, :2], [20 + 40 * 3.5 / 4, 10 + 40 * 1.5 / 4], rtol=1e-6)
    np.testing.assert_allclose(landmarks[0, 3, :2], [20 + 40 * 0.5 / 4, 10 + 40 * 2.5 / 4], rtol=1e-6)
    assert not landmarks[0, [0, 1, 6]].any()  # other classes' landmarks are zero


def test_a_peak_shared_with_a_neighbour_moves_to_the_probability_weighted_mean_of_the_3x3_cells():
    logits = np.full((1, 5, 5, 2), -50.0, np.float32)
    # Landmark 0: row 2, columns 2 and 3 with probabilities 2/3 and 1/3; a far cell (row 0, column 0)
    # with some mass is outside the 3x3 window and does not pull the point.
    logits[0, 2, 2, 0], logits[0, 2, 3, 0], logits[0, 0, 0, 0] = math.log(2.0), 0.0, -0.5
    # Landmark 1: the peak in the corner cell (4, 4), its neighbour (3, 4) as likely minus a little:
    # the window is cut at the border and the point lies between the two centres.
    logits[0, 4, 4, 1], logits[0, 3, 4, 1] = 0.01, 0.0
    peaks = heatmap_peaks_graph(tf.constant(logits)).numpy()
    x = (2 * 2.5 + 1 * 3.5) / 3
    np.testing.assert_allclose(peaks[0, 0, :2], [x / 5, 2.5 / 5], rtol=1e-5)
    odds = math.exp(0.01)
    np.testing.assert_allclose(peaks[0, 1, :2], [4.5 / 5, (odds * 4.5 + 3.5) / (odds + 1) / 5], rtol=1e-5)
    total = 2 + 1 + math.exp(-0.5)
    assert peaks[0, 0, 2] == pytest.approx(3 / total, rel=1e-4)  # the 3x3 mass: the far cell is not in it


def test_landmarks_beyond_the_image_are_kept_on_its_border():
    """With a margin a peak can lie outside a box that touches the image's edge: the point stays in the image."""
    peaks = np.array([[[-0.1, 0.5, 0.9], [1.1, 1.1, 0.8], [0.5, 0.5, 0.7]]], np.float32)  # class 1 owns 0-1
    landmarks = class_landmarks(peaks, [1], [[0, 60, 40, 100]], landmark_index_table((2, 1)), (40, 100))
    np.testing.assert_allclose(landmarks[0, 0], [0 + 60 - 4, 20, 0.9], rtol=1e-6)  # inside: x 56 is kept
    np.testing.assert_allclose(landmarks[0, 1], [100, 40, 0.8], rtol=1e-6)  # x 104, y 44 -> the border
    edge = class_landmarks(peaks, [1], [[0, 0, 40, 100]], landmark_index_table((2, 1)), (40, 100))
    np.testing.assert_allclose(edge[0, 0, :2], [0, 20], atol=1e-6)  # x -10 -> 0


def test_synthetic_landmarks_are_the_same_parts_of_every_garment_of_a_category():
    """Each landmark is a fixed outline vertex or a fixed fraction of a fixed edge, whatever the proportions."""
    from df2coco.categories import CATEGORY_BY_ID
    from df2coco.synthetic.shapes import build_shape, landmarks_on_outline

    rng = np.random.default_rng(1)
    for category in range(1, 14):
        count = CATEGORY_BY_ID[category].num_landmarks
        first, second = (build_shape(category, rng).outline for _ in range(2))
        assert len(first) == len(second)
        # The same affine map of the outline moves the landmarks the same way: they depend on the vertices only.
        moved = first * [1.7, 0.6] + [5, -3]
        np.testing.assert_allclose(landmarks_on_outline(moved, count), landmarks_on_outline(first, count) * [1.7, 0.6]
                                   + [5, -3], atol=1e-9)
        points = landmarks_on_outline(second, count)
        assert points.shape == (count, 2) and len(np.unique(points.round(9), axis=0)) == count
        if count >= len(second):  # every corner is a landmark, in outline order
            is_vertex = [np.isclose(points, v).all(axis=1).any() for v in second]
            assert all(is_vertex)
        np.testing.assert_array_equal(points[0], second[0])  # the neck or waistband centre comes first
