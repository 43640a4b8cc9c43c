"""Detection layer: hand cases, batching, Keras wrapper, parity with matterport's raw detections."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.layers.detection import DetectionLayer, refine_detections
from mrcnn.ops.image_meta import compose_image_meta

STD = [0.1, 0.1, 0.2, 0.2]
FULL_WINDOW = [0.0, 0.0, 1.0, 1.0]


def _hand_case():
    rois = np.array([[0.1, 0.1, 0.3, 0.3],     # class 1, .9
                     [0.1, 0.1, 0.31, 0.3],    # class 1, .8: overlaps roi 0 -> suppressed
                     [0.1, 0.1, 0.3, 0.32],    # class 2, .7: overlaps roi 0 but other class -> kept
                     [0.5, 0.5, 0.7, 0.7],     # background
                     [0.6, 0.6, 0.9, 1.2]],    # class 2, .75, sticks out of the window -> clipped
                    np.float32)
    probs = np.array([[0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.05, 0.2, 0.75]],
                     np.float32)
    return rois, probs, np.zeros((5, 3, 4), np.float32)


def _run(rois, probs, deltas, window=FULL_WINDOW, min_confidence=0.0, max_instances=6, nms=0.3):
    return refine_detections(tf.constant(rois), tf.constant(probs), tf.constant(deltas), tf.constant(window),
                             STD, min_confidence, max_instances, nms).numpy()


def test_per_class_nms_ranking_clip_and_padding():
    rois, probs, deltas = _hand_case()
    out = _run(rois, probs, deltas)
    expected = np.zeros((6, 6), np.float32)
    expected[0] = list(rois[0]) + [1, 0.9]
    expected[1] = [0.6, 0.6, 0.9, 1.0, 2, 0.75]
    expected[2] = list(rois[2]) + [2, 0.7]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_min_confidence_filter_and_max_instances():
    rois, probs, deltas = _hand_case()
    out = _run(rois, probs, deltas, min_confidence=0.72)
    assert out[:, 4].tolist() == [1, 2, 0, 0, 0, 0]
    out = _run(rois, probs, deltas, max_instances=2)
    assert out.shape == (2, 6) and out[:, 5].tolist() == pytest.approx([0.9, 0.75])


def test_class_specific_deltas_times_std_dev():
    rois = np.array([[0.2, 0.2, 0.4, 0.4]], np.float32)
    probs = np.array([[0.1, 0.2, 0.7]], np.float32)
    deltas = np.zeros((1, 3, 4), np.float32)
    deltas[0, 1] = [5, 5, 5, 5]  # another class's deltas: ignored
    deltas[0, 2] = [1.0, -1.0, 0.0, 0.0]  # * std -> shift by 0.1 * 0.2
    out = _run(rois, probs, deltas, max_instances=1)
    np.testing.assert_allclose(out, [[0.22, 0.18, 0.42, 0.38, 2, 0.7]], atol=1e-6)


def test_window_clips_boxes():
    rois, probs, deltas = _hand_case()
    out = _run(rois, probs, deltas, window=[0.125, 0.0, 0.875, 1.0])
    np.testing.assert_allclose(out[1, :4], [0.6, 0.6, 0.875, 1.0], atol=1e-6)


def test_only_background_gives_all_zeros():
    rois, probs, deltas = _hand_case()
    probs = np.tile([[0.9, 0.05, 0.05]], (5, 1)).astype(np.float32)
    out = _run(rois, probs, deltas)
    assert out.shape == (6, 6) and not out.any()


def _meta(image_shape, window):
    return compose_image_meta(0, (300, 400, 3), image_shape, window, 1.0, [0, 0, 0]).astype(np.float32)


def test_layer_batch_window_from_meta_and_symbolic_build():
    rois, probs, deltas = _hand_case()
    layer = DetectionLayer(bbox_std_dev=np.array(STD), min_confidence=0.0, max_instances=6, nms_threshold=0.3,
                           name="mrcnn_detection")
    inputs = [keras.Input((5, 4)), keras.Input((5, 3)), keras.Input((5, 3, 4)), keras.Input((15,))]
    output = layer(inputs)
    assert tuple(output.shape) == (None, 6, 6)
    model = keras.Model(inputs, output)
    # Image 0: no padding. Image 1: window rows 64..448 of 512 -> normalized [64/511, 0, 447/511, 1].
    metas = np.stack([_meta((512, 512, 3), (0, 0, 512, 512)), _meta((512, 512, 3), (64, 0, 448, 512))])
    out = np.asarray(model([np.stack([rois] * 2), np.stack([probs] * 2), np.stack([deltas] * 2), metas]))
    assert out.shape == (2, 6, 6)
    np.testing.assert_allclose(out[0], _run(rois, probs, deltas), atol=1e-7)
    np.testing.assert_allclose(out[1], _run(rois, probs, deltas, window=[64 / 511, 0, 447 / 511, 1]), atol=1e-6)
    assert out[1, 1, 2] == pytest.approx(447 / 511)


def test_layer_config_round_trip():
    layer = DetectionLayer(np.array(STD), None, 100, 0.3, name="mrcnn_detection")
    config = layer.get_config()
    json.dumps(config)
    clone = DetectionLayer.from_config(config)
    assert (clone.bbox_std_dev, clone.min_confidence, clone.max_instances, clone.nms_threshold) == (STD, 0.0, 100, 0.3)


@pytest.fixture(scope="module")
def refs(reference_dir):
    folder = reference_dir / "matterport_ref" / "r512"
    return [dict(np.load(folder / f"ref{i}.npz")) for i in range(3)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_parity_with_matterport_raw_detections(refs, index):
    ref = refs[index]
    layer = DetectionLayer(STD, 0.0, 100, 0.3)  # r512/config.json: DETECTION_MIN_CONFIDENCE 0.0 (filter off)
    out = np.asarray(layer([ref["rpn_rois"][None], ref["mrcnn_class"][None], ref["mrcnn_bbox"][None],
                            ref["image_meta"][None].astype(np.float32)]))[0]
    expected = ref["raw_detections"]
    np.testing.assert_array_equal(out[:, 4], expected[:, 4])
    np.testing.assert_allclose(out[:, :4], expected[:, :4], rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[:, 5], expected[:, 5], rtol=0, atol=1e-6)
