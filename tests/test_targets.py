"""RPN and detection targets: hand-built cases, a NumPy reference of matterport's rules, tf.data, the layer."""
from __future__ import annotations

import functools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.ops.rpn_targets import build_rpn_targets
from mrcnn.ops.roi_targets import detection_targets, mask_targets

STD = np.array([0.1, 0.1, 0.2, 0.2])


# ---------------------------------------------------------------------------
# NumPy references (test-only; written from matterport's documented rules)
# ---------------------------------------------------------------------------

def np_iou(boxes1, boxes2):
    """[N, M] IoU in float64."""
    b1, b2 = boxes1[:, None, :], boxes2[None, :, :]
    inter_h = np.maximum(np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0]), 0)
    inter_w = np.maximum(np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1]), 0)
    inter = inter_h * inter_w
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return inter / (area1 + area2 - inter)


def np_deltas(box, target):
    """(dy, dx, log dh, log dw) moving box onto target."""
    h, w = box[2] - box[0], box[3] - box[1]
    th, tw = target[2] - target[0], target[3] - target[1]
    return np.array([(target[0] + 0.5 * th - box[0] - 0.5 * h) / h,
                     (target[1] + 0.5 * tw - box[1] - 0.5 * w) / w,
                     np.log(th / h), np.log(tw / w)])


def reference_rpn_targets(anchors, class_ids, boxes):
    """matterport's labelling without subsampling: (match [A], deltas of positives [P, 4] / STD)."""
    anchors, boxes = np.asarray(anchors, np.float64), np.asarray(boxes, np.float64)
    instances, crowds = boxes[class_ids > 0], boxes[class_ids < 0]
    match = np.zeros(len(anchors), np.int32)
    no_crowd = np.ones(len(anchors), bool)
    if len(crowds):
        no_crowd = np_iou(anchors, crowds).max(axis=1) < 0.001
    if len(instances) == 0:
        match[no_crowd] = -1
        return match, np.zeros((0, 4))
    iou = np_iou(anchors, instances)
    best = iou.max(axis=1)
    match[(best < 0.3) & no_crowd] = -1
    match[np.argwhere(iou == iou.max(axis=0))[:, 0]] = 1
    match[best >= 0.7] = 1
    positives = np.where(match == 1)[0]
    deltas = [np_deltas(anchors[i], instances[iou[i].argmax()]) / STD for i in positives]
    return match, np.array(deltas).reshape(-1, 4)


def np_crop_and_resize(image, box, size):
    """Bilinear crop of a [h, w] image at a normalized box, align-corners sampling, 0 outside."""
    h, w = image.shape
    out = np.zeros(size)
    for i in range(size[0]):
        y = box[0] * (h - 1) + i * (box[2] - box[0]) * (h - 1) / (size[0] - 1)
        for j in range(size[1]):
            x = box[1] * (w - 1) + j * (box[3] - box[1]) * (w - 1) / (size[1] - 1)
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def random_boxes(rng, count, size, low=4, high=40):
    corner = rng.uniform(0, size - low, (count, 2))
    extent = rng.uniform(low, high, (count, 2))
    return np.concatenate([corner, np.minimum(corner + extent, size)], axis=1)


def rpn(anchors, class_ids, boxes, **kwargs):
    match, bbox = build_rpn_targets(np.asarray(anchors), np.asarray(class_ids, np.int32),
                                    np.asarray(boxes, np.float32), **kwargs)
    return match.numpy(), bbox.numpy()


# ---------------------------------------------------------------------------
# RPN targets
# ---------------------------------------------------------------------------

# Two instance boxes (pixels) and a padding row that must be ignored.
GT_BOXES = [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]]
GT_CLASSES = [1, 2, 0]


def test_rpn_hand_layout():
    anchors = np.array([[0, 0, 10, 10],     # IoU 1.0 with GT 0        -> positive
                        [0, 0, 10, 20],     # IoU 0.5 with GT 0        -> neutral
                        [20, 20, 30, 60],   # IoU 0.25, GT 1's best    -> positive despite < 0.3
                        [50, 50, 60, 60]],  # IoU 0                    -> negative
                       np.float64)
    match, bbox = rpn(anchors, GT_CLASSES, GT_BOXES, anchors_per_image=8)
    np.testing.assert_array_equal(match, [1, 0, 1, -1])
    # Anchor 2 (h 10, w 40, centre (25, 40)) -> GT 1 (h 10, w 10, centre (25, 25)).
    expected = np.zeros((8, 4))
    expected[1] = [0 / 0.1, -15 / 40 / 0.1, 0 / 0.2, np.log(10 / 40) / 0.2]
    np.testing.assert_allclose(bbox, expected, atol=1e-6)
    assert match.dtype == np.int32 and bbox.dtype == np.float32


def test_rpn_every_tied_best_anchor_is_positive():
    anchors = np.array([[0, 0, 10, 40],    # IoU 0.25 with GT 0
                        [0, -30, 10, 10],  # IoU 0.25 with GT 0 (tie)
                        [0, 0, 10, 60],    # IoU 1/6
                        [80, 80, 90, 90]], np.float64)
    match, bbox = rpn(anchors, [3], [[0, 0, 10, 10]], anchors_per_image=8)
    np.testing.assert_array_equal(match, [1, 1, -1, -1])
    assert np.count_nonzero(np.any(bbox != 0, axis=1)) == 2


def test_rpn_box_touching_no_anchor_makes_all_anchors_positive_like_matterport():
    # matterport marks every anchor whose IoU equals the box's best IoU; when that best is 0, all of them.
    anchors = np.array([[0, 0, 10, 10], [0, 20, 10, 30], [20, 0, 30, 10]], np.float64)
    match, _ = rpn(anchors, [1], [[50, 50, 60, 60]], anchors_per_image=8)
    np.testing.assert_array_equal(match, [1, 1, 1])


def test_rpn_crowd_boxes_are_not_targets_and_block_negatives():
    anchors = np.array([[0, 0, 10, 10],     # = GT 0                                  -> positive
                        [40, 40, 60, 60],   # = the crowd box: not a target, no negative -> neutral
                        [55, 55, 75, 75],   # IoU 25/775 with the crowd (>= 0.001)       -> neutral
                        [80, 80, 90, 90]],  # far from everything                      -> negative
                       np.float64)
    match, bbox = rpn(anchors, [1, -1, 0], [[0, 0, 10, 10], [40, 40, 60, 60], [0, 0, 0, 0]],
                      anchors_per_image=8)
    np.testing.assert_array_equal(match, [1, 0, 0, -1])
    np.testing.assert_allclose(bbox, np.zeros((8, 4)), atol=1e-7)


def test_rpn_without_instances_is_all_negative():
    anchors = np.array([[0, 0, 10, 10], [40, 40, 60, 60]], np.float64)
    match, bbox = rpn(anchors, np.zeros([0]), np.zeros([0, 4]), anchors_per_image=4)
    np.testing.assert_array_equal(match, [-1, -1])
    np.testing.assert_array_equal(bbox, np.zeros((4, 4)))
    match, _ = rpn(anchors, [-1], [[40, 40, 60, 60]], anchors_per_image=4)  # only a crowd
    np.testing.assert_array_equal(match, [-1, 0])


def test_rpn_subsampling_counts_and_packing():
    # 10 anchors on the box (positive), 20 far away (negative); 8 sampled: 4 + 4.
    on_box = np.tile([[0.0, 0.0, 10.0, 10.0]], (10, 1)) + np.linspace(0, 0.5, 10)[:, None] * [0, 0, 1, 0]
    far = np.array([[50.0 + i, 50.0, 60.0 + i, 60.0] for i in range(20)])
    anchors = np.concatenate([on_box, far])
    reference, reference_deltas = reference_rpn_targets(anchors, np.array([1]), np.array([[0, 0, 10, 10]]))
    assert np.sum(reference == 1) == 10 and np.sum(reference == -1) == 20
    for seed in range(3):
        match, bbox = rpn(anchors, [1], [[0, 0, 10, 10]], anchors_per_image=8, seed=tf.constant([seed, 7]))
        assert np.sum(match == 1) == 4 and np.sum(match == -1) == 4
        assert np.all(reference[match == 1] == 1) and np.all(reference[match == -1] == -1)
        # rpn_bbox holds the sampled positives' deltas in anchor order.
        sampled = np.where(match == 1)[0]
        np.testing.assert_allclose(bbox[:4], reference_deltas[sampled], atol=1e-5)
        assert np.all(bbox[4:] == 0)
    # Fewer positives than half: negatives fill the rest.
    match, _ = rpn(anchors[[0] + list(range(10, 30))], [1], [[0, 0, 10, 10]], anchors_per_image=8)
    assert np.sum(match == 1) == 1 and np.sum(match == -1) == 7


def test_rpn_seed_reproducible():
    rng = np.random.RandomState(1)
    anchors, boxes = random_boxes(rng, 300, 100), random_boxes(rng, 3, 100, 10, 40)
    first = rpn(anchors, [1, 2, 3], boxes, anchors_per_image=16, seed=tf.constant([3, 4]))
    second = rpn(anchors, [1, 2, 3], boxes, anchors_per_image=16, seed=tf.constant([3, 4]))
    other = rpn(anchors, [1, 2, 3], boxes, anchors_per_image=16, seed=tf.constant([5, 6]))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("case", range(12))
def test_rpn_matches_numpy_reference(case):
    rng = np.random.RandomState(case)
    anchors = random_boxes(rng, 80, 100, 5, 50)
    count = rng.randint(0, 5)
    boxes = random_boxes(rng, count, 100, 5, 50).round()  # integer pixels, like matterport's GT
    class_ids = rng.choice([-1, 1, 2, 3], count) if case % 3 == 0 else rng.randint(1, 4, count)
    padded_boxes = np.concatenate([boxes, np.zeros((2, 4))])  # padding rows are ignored
    padded_ids = np.concatenate([class_ids, [0, 0]]).astype(np.int32)
    match, bbox = rpn(anchors, padded_ids, padded_boxes, anchors_per_image=2 * len(anchors) + 2)
    expected_match, expected_deltas = reference_rpn_targets(anchors, class_ids, boxes)
    np.testing.assert_array_equal(match, expected_match)
    positives = len(expected_deltas)
    np.testing.assert_allclose(bbox[:positives], expected_deltas, rtol=1e-5, atol=1e-5)
    assert np.all(bbox[positives:] == 0)


def test_rpn_in_tf_data_pipeline_static_and_dynamic_box_count():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 20], [20, 20, 30, 60], [50, 50, 60, 60]], np.float64)
    expected = [1, 0, 1, -1]

    def targets(class_ids, boxes):
        return build_rpn_targets(anchors, class_ids, boxes, anchors_per_image=8)

    static = tf.data.Dataset.from_tensors((np.array(GT_CLASSES, np.int32), np.array(GT_BOXES, np.float32)))
    (match, bbox), = list(static.map(targets).as_numpy_iterator())
    np.testing.assert_array_equal(match, expected)
    assert bbox.shape == (8, 4)

    def examples():
        yield np.array(GT_CLASSES, np.int32), np.array(GT_BOXES, np.float32)
        yield np.array([1], np.int32), np.array([[0, 0, 10, 10]], np.float32)  # another box count

    dynamic = tf.data.Dataset.from_generator(examples, output_signature=(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 4], tf.float32)))
    results = list(dynamic.map(targets, num_parallel_calls=2, deterministic=True).as_numpy_iterator())
    np.testing.assert_array_equal(results[0][0], expected)
    np.testing.assert_array_equal(results[1][0], [1, 0, -1, -1])  # anchor 2 no longer has a box to match


def test_rpn_on_a_256_pixel_anchor_set():
    shapes = compute_backbone_shapes((256, 256), [4, 8, 16, 32, 64])
    anchors = generate_pyramid_anchors((32, 64, 128, 256, 512), [0.5, 1, 2], shapes, [4, 8, 16, 32, 64], 1)
    boxes = np.array([[30, 40, 130, 120], [150, 20, 250, 240], [10, 200, 40, 230], [0, 0, 0, 0]], np.float64)
    class_ids = np.array([1, 2, -1, 0])
    reference, _ = reference_rpn_targets(anchors, class_ids, boxes)
    match, bbox = rpn(anchors, class_ids, boxes, anchors_per_image=256)
    positives = np.sum(match == 1)
    assert match.shape == (len(anchors),) == (16368,)
    assert 0 < positives == min(128, np.sum(reference == 1))
    assert np.sum(match == -1) == 256 - positives
    assert np.all(reference[match == 1] == 1) and np.all(reference[match == -1] == -1)
    assert np.all(np.any(bbox[:positives] != 0, axis=1)) and np.all(bbox[positives:] == 0)


# ---------------------------------------------------------------------------
# Detection targets
# ---------------------------------------------------------------------------

DT_GT_BOXES = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.7], [0, 0, 0, 0]], np.float32)
DT_GT_CLASSES = np.array([3, 5, 0], np.int32)
DT_PROPOSALS = np.array([[0.1, 0.1, 0.3, 0.3],      # = GT 0                 -> class 3, zero deltas
                         [0.1, 0.1, 0.3, 0.35],     # IoU 0.8 with GT 0      -> class 3
                         [0.55, 0.5, 0.95, 0.7],    # IoU 0.07/0.09 with GT 1 -> class 5
                         [0.0, 0.8, 0.05, 0.95],    # IoU 0                  -> negative
                         [0, 0, 0, 0]], np.float32)  # padding


def mask_head_targets(mask_shape, use_mini_mask=True):
    """The mask head's target function (what MaskHead.roi_targets calls)."""
    return {"mask": functools.partial(mask_targets, mask_shape=mask_shape, use_mini_mask=use_mini_mask)}


def targets_with_masks(proposals, gt_class_ids, gt_boxes, gt_masks, *, mask_shape=(28, 28), use_mini_mask=True,
                       train_rois_per_image=200, roi_positive_ratio=0.33, **settings):
    """detection_targets of a model with the mask head only, as (rois, class_ids, deltas, masks)."""
    instances_first = np.moveaxis(np.asarray(gt_masks), -1, 0)  # [h, w, G] -> [G, h, w]
    out = detection_targets(proposals, gt_class_ids, gt_boxes, {"masks": instances_first},
                            mask_head_targets(mask_shape, use_mini_mask), train_rois_per_image=train_rois_per_image,
                            roi_positive_ratio=roi_positive_ratio, **settings)
    return out["rois"], out["class_ids"], out["deltas"], out["mask"]


def rows_by_roi(rois, values):
    return {tuple(np.round(r, 4)): v for r, v in zip(rois, values)}


def test_detection_targets_two_boxes_exact_classes_and_deltas():
    masks = np.ones((8, 8, 3), bool)
    rois, class_ids, deltas, _ = [t.numpy() for t in targets_with_masks(
        DT_PROPOSALS, DT_GT_CLASSES, DT_GT_BOXES, masks, train_rois_per_image=6,
        roi_positive_ratio=0.5, mask_shape=(4, 4))]
    # 3 positives (cap int(6 * 0.5) = 3), negatives int(3 / 0.5) - 3 = 3 wanted, 1 available.
    assert class_ids.dtype == np.int32
    assert sorted(class_ids[:3]) == [3, 3, 5] and list(class_ids[3:]) == [0, 0, 0]
    np.testing.assert_allclose(rois[3], DT_PROPOSALS[3])
    np.testing.assert_array_equal(rois[4:], 0)
    by_roi = rows_by_roi(rois[:3], deltas[:3])
    expected = {0: np.zeros(4),
                1: [0, (0.2 - 0.225) / 0.25 / 0.1, 0, np.log(0.2 / 0.25) / 0.2],
                2: [(0.7 - 0.75) / 0.4 / 0.1, 0, 0, 0]}
    for index, value in expected.items():
        np.testing.assert_allclose(by_roi[tuple(np.round(DT_PROPOSALS[index], 4))], value, atol=1e-5)
    np.testing.assert_array_equal(deltas[3:], 0)


def test_detection_sampling_counts():
    gt_box = np.array([[0.2, 0.2, 0.6, 0.6]], np.float32)
    positives = gt_box + np.linspace(0, 0.02, 10, dtype=np.float32)[:, None] * [0, 0, 1, 1]
    negatives = np.array([[0.7 + 0.01 * i, 0.7, 0.8 + 0.01 * i, 0.8] for i in range(20)], np.float32)
    proposals = np.concatenate([positives, negatives])
    masks = np.ones((8, 8, 1), bool)
    for ratio, rows, expected_pos, expected_neg in [(0.33, 10, 3, 6), (0.33, 200, 10, 20), (0.25, 40, 10, 20)]:
        rois, class_ids, _, out_masks = [t.numpy() for t in targets_with_masks(
            proposals, np.array([1], np.int32), gt_box, masks, train_rois_per_image=rows,
            roi_positive_ratio=ratio, mask_shape=(4, 4))]
        assert np.sum(class_ids == 1) == expected_pos
        assert np.count_nonzero(np.any(rois != 0, axis=1)) == expected_pos + expected_neg
        assert out_masks.shape == (rows, 4, 4)
    # (0.33, 200): int(200 * .33) = 66 >= 10 positives; int(10 / .33) - 10 = 20 negatives (float32 math).


def test_detection_crowds():
    gt_boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]], np.float32)
    class_ids = np.array([2, -1], np.int32)
    proposals = np.array([[0.1, 0.1, 0.3, 0.3],     # positive
                          [0.6, 0.6, 0.9, 0.9],     # = crowd: neither positive nor negative
                          [0.5, 0.5, 0.65, 0.65],   # touches the crowd: not a negative
                          [0.0, 0.6, 0.1, 0.7],     # negative
                          [0.4, 0.0, 0.5, 0.1]],    # negative
                         np.float32)
    rois, out_ids, _, _ = [t.numpy() for t in targets_with_masks(
        proposals, class_ids, gt_boxes, np.ones((4, 4, 2), bool), train_rois_per_image=10,
        roi_positive_ratio=0.33, mask_shape=(2, 2))]
    assert list(out_ids) == [2] + [0] * 9
    kept = {tuple(np.round(r, 4)) for r in rois[:3]}
    assert kept == {tuple(np.round(proposals[i], 4)) for i in (0, 3, 4)}
    np.testing.assert_array_equal(rois[3:], 0)


def test_mask_targets_from_a_mini_mask_pattern():
    gt_box = np.array([[0.2, 0.2, 0.6, 0.6]], np.float32)
    rows, cols = np.mgrid[0:8, 0:8]
    mini_mask = ((cols < 5) & (rows >= 3))[:, :, None]  # [8, 8, 1]
    proposals = np.array([[0.2, 0.2, 0.6, 0.5],    # left 3/4, full height: IoU 0.75
                          [0.3, 0.3, 0.6, 0.6]],   # lower-right 3/4 x 3/4: IoU 0.5625
                         np.float32)
    rois, _, _, masks = [t.numpy() for t in targets_with_masks(
        proposals, np.array([1], np.int32), gt_box, mini_mask, train_rois_per_image=4,
        roi_positive_ratio=0.5, mask_shape=(4, 4), use_mini_mask=True)]
    by_roi = rows_by_roi(rois[:2], masks[:2])
    # Mini-mask frame: ROI 0 spans x 0..0.75 -> samples at columns 0, 1.75, 3.5, 5.25 -> 1, 1, 1, 0;
    # y 0..1 -> rows 0, 2.33, 4.67, 7 -> 0, 0 (0.33 rounds down), 1, 1.
    left = np.outer([0, 0, 1, 1], [1, 1, 1, 0])
    # ROI 1 spans x and y 0.25..1 -> samples at 1.75, 3.5, 5.25, 7 -> columns 1, 1, 0, 0; rows 0, 1, 1, 1.
    lower_right = np.outer([0, 1, 1, 1], [1, 1, 0, 0])
    np.testing.assert_array_equal(by_roi[tuple(np.round(proposals[0], 4))], left)
    np.testing.assert_array_equal(by_roi[tuple(np.round(proposals[1], 4))], lower_right)
    np.testing.assert_array_equal(masks[2:], 0)


def test_mask_targets_from_full_masks_match_a_bilinear_reference():
    rng = np.random.RandomState(3)
    full = np.zeros((32, 32, 2), bool)
    full[4:20, 6:18, 0] = rng.rand(16, 12) > 0.3
    full[18:30, 16:31, 1] = rng.rand(12, 15) > 0.5
    gt_boxes = np.array([[4 / 31, 6 / 31, 19 / 31, 17 / 31], [18 / 31, 16 / 31, 29 / 31, 30 / 31]], np.float32)
    proposals = gt_boxes + np.array([[0.01, -0.02, 0.02, 0.0], [-0.01, 0.01, 0.0, -0.02]], np.float32)
    rois, class_ids, _, masks = [t.numpy() for t in targets_with_masks(
        proposals, np.array([1, 2], np.int32), gt_boxes, full, train_rois_per_image=4,
        roi_positive_ratio=0.5, mask_shape=(7, 7), use_mini_mask=False)]
    for roi, class_id, mask in zip(rois[:2], class_ids[:2], masks[:2]):
        expected = np.round(np_crop_and_resize(full[:, :, class_id - 1].astype(float), roi, (7, 7)))
        np.testing.assert_array_equal(mask, expected)


def test_detection_targets_without_instances_are_all_padding():
    outputs = targets_with_masks(DT_PROPOSALS, np.zeros([3], np.int32), np.zeros((3, 4), np.float32),
                                 np.zeros((8, 8, 3), bool), train_rois_per_image=5, mask_shape=(4, 4))
    shapes = [t.shape for t in outputs]
    assert shapes == [(5, 4), (5,), (5, 4), (5, 4, 4)]
    for tensor in outputs:
        assert not np.any(tensor.numpy())


def _layer_inputs():
    proposals = np.stack([DT_PROPOSALS, DT_PROPOSALS[::-1]])  # [2, 5, 4]
    class_ids = np.stack([DT_GT_CLASSES, np.array([0, 4, 0], np.int32)])  # image 1: only GT 1
    boxes = np.stack([DT_GT_BOXES, DT_GT_BOXES])
    masks = np.ones((2, 3, 8, 8), bool)  # instance axis first, as the training graph passes them
    return [proposals, class_ids, boxes, masks]


def target_layer(**kwargs):
    """The layer as the training graph builds it for the mask head (4 x 4 targets from mini masks)."""
    spec = tf.TensorSpec([4, 4], tf.float32)
    return DetectionTargetLayer({"mask": (mask_head_targets((4, 4))["mask"], spec)}, ["masks"], 6, 0.5, STD,
                                **kwargs)


def test_detection_target_layer_batches_images():
    layer = target_layer()
    rois, class_ids, deltas, masks = [t.numpy() for t in layer(_layer_inputs())]
    assert rois.shape == (2, 6, 4) and class_ids.shape == (2, 6) and masks.shape == (2, 6, 4, 4)
    assert class_ids.dtype == np.int32
    assert sorted(class_ids[0][:3]) == [3, 3, 5]
    assert list(class_ids[1][:2]) == [4, 0]  # one positive (GT 1), then int(1 / 0.5) - 1 = 1 negative
    for image in range(2):  # positives are not sampled here, so they equal the single-image function's
        args = [x[image] for x in _layer_inputs()]
        expected = [t.numpy() for t in targets_with_masks(
            *args, train_rois_per_image=6, roi_positive_ratio=0.5, mask_shape=(4, 4))]
        got, want = class_ids[image] > 0, expected[1] > 0
        assert (rows_by_roi(rois[image][got], class_ids[image][got])
                == rows_by_roi(expected[0][want], expected[1][want]))
        got_deltas = rows_by_roi(rois[image][got], deltas[image][got])
        for roi, value in rows_by_roi(expected[0][want], expected[2][want]).items():
            np.testing.assert_allclose(got_deltas[roi], value, atol=1e-6)
        np.testing.assert_array_equal(masks[image][got].sum(), expected[3][want].sum())


def test_detection_target_layer_in_a_model_and_config_round_trip():
    layer = target_layer(name="proposal_targets")
    inputs = [keras.Input((5, 4)), keras.Input((3,), dtype="int32"), keras.Input((3, 4)),
              keras.Input((3, 8, 8), dtype="bool")]
    model = keras.Model(inputs, layer(inputs))
    shapes = [tuple(t.shape) for t in model.outputs]
    assert shapes == [(None, 6, 4), (None, 6), (None, 6, 4), (None, 6, 4, 4)]
    assert layer.compute_output_shape([(None, 5, 4)] * 4) == shapes
    outputs = model(_layer_inputs())
    assert sorted(np.asarray(outputs[1])[0][:3]) == [3, 3, 5]
    config = json.loads(json.dumps(layer.get_config()))  # its settings are plain JSON
    assert (config["train_rois_per_image"], config["roi_positive_ratio"], config["heads"], config["field_names"]) == (
        6, 0.5, ["mask"], ["masks"])
    assert config["bbox_std_dev"] == [0.1, 0.1, 0.2, 0.2]
