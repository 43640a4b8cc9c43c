"""Proposal layer: hand cases, batching, Keras wrapper, parity with matterport's rpn_rois."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from mrcnn.layers.proposals import ProposalLayer, propose_rois

STD = [0.1, 0.1, 0.2, 0.2]


def _probs(fg):
    fg = np.asarray(fg, np.float32)
    return np.stack([1 - fg, fg], -1)


def _hand_inputs():
    anchors = np.array([[0.1, 0.1, 0.3, 0.3],    # score .6
                        [0.1, 0.1, 0.31, 0.3],   # score .9, overlaps anchor 0 (IoU ~0.95)
                        [0.5, 0.5, 0.7, 0.7],    # score .5
                        [0.8, 0.8, 1.2, 1.1],    # score .7, sticks out of the image -> clipped
                        [0.0, 0.0, 0.05, 0.05]], np.float32)  # score .1
    probs = _probs([0.6, 0.9, 0.5, 0.7, 0.1])
    return anchors, probs, np.zeros((5, 4), np.float32)


def test_nms_order_clip_and_padding():
    anchors, probs, deltas = _hand_inputs()
    out = propose_rois(probs[None], deltas[None], anchors[None], 6, 0.7, 6000, STD).numpy()[0]
    expected = [anchors[1], [0.8, 0.8, 1.0, 1.0], anchors[2], anchors[4], [0, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_pre_nms_limit_and_proposal_count():
    anchors, probs, deltas = _hand_inputs()
    out = propose_rois(probs[None], deltas[None], anchors[None], 6, 0.7, 2, STD).numpy()[0]
    # Only the top 2 by score (anchors 1 and 3) enter NMS.
    np.testing.assert_allclose(out[:3], [anchors[1], [0.8, 0.8, 1.0, 1.0], [0, 0, 0, 0]], atol=1e-7)
    out = propose_rois(probs[None], deltas[None], anchors[None], 2, 0.7, 6000, STD).numpy()[0]
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out[1], [0.8, 0.8, 1.0, 1.0], atol=1e-7)


def test_deltas_are_scaled_by_std_dev():
    anchors = np.array([[0.2, 0.2, 0.4, 0.4]], np.float32)
    raw = np.array([[1.0, -1.0, 0.0, 0.0]], np.float32)  # * std -> dy 0.1, dx -0.1 of a 0.2 box
    out = propose_rois(_probs([0.9])[None], raw[None], anchors[None], 1, 0.7, 10, STD).numpy()[0]
    np.testing.assert_allclose(out, [[0.22, 0.18, 0.42, 0.38]], atol=1e-6)


def test_batch_matches_single_images():
    rng = np.random.RandomState(0)
    corner = rng.uniform(0, 0.8, (2, 300, 2))
    anchors = np.concatenate([corner, corner + rng.uniform(0.05, 0.3, (2, 300, 2))], -1).astype(np.float32)
    probs = _probs(rng.uniform(0, 1, (2, 300)))
    deltas = rng.normal(0, 1, (2, 300, 4)).astype(np.float32)
    batch = propose_rois(probs, deltas, anchors, 50, 0.5, 100, STD).numpy()
    for i in range(2):
        single = propose_rois(probs[i:i + 1], deltas[i:i + 1], anchors[i:i + 1], 50, 0.5, 100, STD).numpy()[0]
        np.testing.assert_array_equal(batch[i], single)
    assert batch.min() >= 0 and batch.max() <= 1


def test_layer_in_functional_model_with_unknown_batch():
    layer = ProposalLayer(proposal_count=4, nms_threshold=0.7, pre_nms_limit=100,
                          rpn_bbox_std_dev=np.array(STD), name="ROI")
    inputs = [keras.Input((None, 2)), keras.Input((None, 4)), keras.Input((None, 4))]
    output = layer(inputs)
    assert tuple(output.shape) == (None, 4, 4)
    model = keras.Model(inputs, output)
    anchors, probs, deltas = _hand_inputs()
    out = model([np.stack([probs] * 3), np.stack([deltas] * 3), np.stack([anchors] * 3)])
    assert tuple(out.shape) == (3, 4, 4)
    np.testing.assert_allclose(np.asarray(out)[2, 0], anchors[1], atol=1e-7)


def test_layer_config_round_trip():
    layer = ProposalLayer(1000, 0.7, 6000, np.array(STD), name="ROI")
    config = layer.get_config()
    json.dumps(config)
    clone = ProposalLayer.from_config(config)
    assert (clone.name, clone.proposal_count, clone.nms_threshold, clone.pre_nms_limit, clone.rpn_bbox_std_dev) == \
        ("ROI", 1000, 0.7, 6000, STD)
    assert keras.saving.get_registered_object("mrcnn>ProposalLayer") is ProposalLayer


@pytest.fixture(scope="module")
def ref0(reference_dir):
    return np.load(reference_dir / "matterport_ref" / "r512" / "ref0.npz")


def _sorted_rows(rows):
    return rows[np.lexsort(rows.T[::-1])]


def test_parity_with_matterport_rpn_rois(ref0):
    out = propose_rois(ref0["rpn_class"][None], ref0["rpn_bbox"][None], ref0["anchors"][None],
                       1000, 0.7, 6000, STD).numpy()[0]
    expected = ref0["rpn_rois"]
    assert out.shape == expected.shape
    # Exact float32 ties in the scores may reorder a few rows (reference README): compare as row sets.
    np.testing.assert_allclose(_sorted_rows(out), _sorted_rows(expected), rtol=0, atol=1e-6)
