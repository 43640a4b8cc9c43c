"""Losses against NumPy hand computations, zero-sample batches, graph mode, and the weight decay."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.ops.losses import mrcnn_bbox_loss, mrcnn_class_loss, mrcnn_mask_loss, rpn_bbox_loss, rpn_class_loss, weight_decay_loss


def np_softmax_ce(logits, label):
    logits = np.asarray(logits, np.float64)
    return np.log(np.sum(np.exp(logits))) - logits[label]


def np_smooth_l1(diff):
    diff = np.abs(diff)
    return np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)


def np_bce(target, probability):
    """Keras 2's clipped binary cross-entropy; the clip bounds are float32 like the tensors."""
    eps = np.float32(1e-7)
    probability = np.clip(probability, eps, np.float32(1) - eps).astype(np.float64)
    return -(target * np.log(probability) + (1 - target) * np.log(1 - probability))


def value_and_gradient(loss_fn, variable_input):
    """(loss, d loss / d input) computed eagerly and inside a tf.function; both must agree."""
    variable = tf.Variable(variable_input, dtype=tf.float32)

    def run():
        with tf.GradientTape() as tape:
            loss = loss_fn(variable)
        return loss, tape.gradient(loss, variable)

    results = [run(), tf.function(run)()]
    for loss, gradient in results:
        assert gradient is not None, "the loss must stay connected to the predictions"
    (loss, gradient), (graph_loss, graph_gradient) = results
    np.testing.assert_allclose(graph_loss.numpy(), loss.numpy())
    np.testing.assert_allclose(graph_gradient.numpy(), gradient.numpy())
    return loss.numpy(), gradient.numpy()


def assert_zero_with_finite_gradient(loss, gradient):
    assert loss.dtype == np.float32 and loss == 0.0
    assert np.all(np.isfinite(gradient)) and not np.any(gradient)


def test_loss_names():
    """The loss table of matterport's model: its five losses, under its names, in its order."""
    from mrcnn.config import Config
    from mrcnn.modeling.roi_heads import build_roi_heads
    from mrcnn.train.losses import loss_names

    config = Config()
    assert loss_names(config, build_roi_heads(config)) == [
        "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"]


def test_rpn_class_loss_hand_computed():
    match = np.array([[1, -1, 0], [0, 0, -1]], np.int32)
    logits = np.array([[[0.2, 1.5], [2.0, -1.0], [9.0, 9.0]], [[5.0, 0.0], [0.0, 5.0], [0.3, 0.1]]], np.float32)
    expected = np.mean([np_softmax_ce(logits[0, 0], 1), np_softmax_ce(logits[0, 1], 0),
                        np_softmax_ce(logits[1, 2], 0)])
    np.testing.assert_allclose(rpn_class_loss(match, logits).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(rpn_class_loss(match[..., None], logits).numpy(), expected, rtol=1e-6)


def test_rpn_class_loss_all_neutral_is_zero():
    match = np.zeros((2, 3), np.int32)
    loss, gradient = value_and_gradient(lambda logits: rpn_class_loss(match, logits), np.ones((2, 3, 2)))
    assert_zero_with_finite_gradient(loss, gradient)


def test_rpn_bbox_loss_packs_targets_per_image():
    match = np.array([[0, 1, -1, 1], [1, 0, 0, 0]], np.int32)[..., None]  # [B, A, 1]
    predicted = np.zeros((2, 4, 4), np.float32)
    predicted[0, 1] = [0.5, -2.0, 0.0, 0.1]
    predicted[0, 3] = [1.0, 1.0, 1.0, 1.0]
    predicted[1, 0] = [0.0, 0.0, 3.0, -0.4]
    predicted[0, 0] = predicted[1, 1] = 100.0  # not positive: must not count
    targets = np.full((2, 3, 4), 50.0, np.float32)  # rows past each image's positive count are ignored
    targets[0, 0] = [0.0, 0.0, 0.0, 0.0]   # image 0, anchor 1
    targets[0, 1] = [1.0, 0.5, 1.0, 1.0]   # image 0, anchor 3
    targets[1, 0] = [0.0, 0.0, 0.5, 0.0]   # image 1, anchor 0
    diffs = np.concatenate([targets[0, 0] - predicted[0, 1], targets[0, 1] - predicted[0, 3],
                            targets[1, 0] - predicted[1, 0]])
    expected = np.mean(np_smooth_l1(diffs))  # |diff| 2.0 and 2.5 take the linear branch
    np.testing.assert_allclose(rpn_bbox_loss(targets, match, predicted).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(rpn_bbox_loss(targets, match[..., 0], predicted).numpy(), expected, rtol=1e-6)


def test_rpn_bbox_loss_without_positives_is_zero():
    match = np.array([[-1, 0], [0, -1]], np.int32)
    loss, gradient = value_and_gradient(
        lambda deltas: rpn_bbox_loss(np.zeros((2, 4, 4), np.float32), match, deltas), np.ones((2, 2, 4)))
    assert_zero_with_finite_gradient(loss, gradient)


def test_mrcnn_class_loss_weighted_by_active_classes():
    targets = np.array([[1, 0, 2], [2, 0, 0]], np.int32)
    logits = np.array([[[0.1, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.5]],
                       [[0.0, 0.2, 0.1], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], np.float32)
    active = np.array([[1, 1, 0], [1, 1, 0]], np.float32)  # class 2 not in the dataset
    losses = np.array([[np_softmax_ce(logits[b, r], targets[b, r]) for r in range(3)] for b in range(2)])
    predicted = logits.argmax(axis=2)  # [[1, 2, 0], [1, 0, 0]]
    weights = active[0][predicted]  # ROI (0, 1) predicts the inactive class 2 -> weight 0
    expected = np.sum(losses * weights) / np.sum(weights)
    np.testing.assert_allclose(mrcnn_class_loss(targets, logits, active).numpy(), expected, rtol=1e-6)
    assert weights.sum() == 5


def test_mrcnn_class_loss_uses_each_images_active_classes():
    targets = np.array([[1], [1]], np.int32)
    logits = np.array([[[0.0, 1.0]], [[0.0, 2.0]]], np.float32)
    active = np.array([[1, 1], [1, 0]], np.float32)  # image 1's predicted class 1 is inactive
    expected = np_softmax_ce(logits[0, 0], 1)
    np.testing.assert_allclose(mrcnn_class_loss(targets, logits, active).numpy(), expected, rtol=1e-6)


def test_mrcnn_class_loss_no_active_weight_is_zero_not_nan():
    targets = np.array([[1, 0]], np.int32)
    active = np.array([[0, 0, 1]], np.float32)
    logits = np.array([[[0.0, 3.0, 0.0], [2.0, 0.0, 0.0]]])  # predicts classes 1 and 0, both inactive
    loss, gradient = value_and_gradient(lambda x: mrcnn_class_loss(targets, x, active), logits)
    assert_zero_with_finite_gradient(loss, gradient)


def test_mrcnn_bbox_loss_uses_the_target_class_deltas():
    targets = np.array([[[0.5, 0.5, 0.0, 0.0], [9, 9, 9, 9], [1.0, -1.0, 0.2, 0.0]],
                        [[0.0, 0.0, 2.0, 0.0], [9, 9, 9, 9], [9, 9, 9, 9]]], np.float32)
    class_ids = np.array([[2, 0, 1], [1, 0, 0]], np.int32)
    rng = np.random.RandomState(0)
    predicted = rng.normal(0, 1, (2, 3, 3, 4)).astype(np.float32)
    diffs = np.concatenate([targets[0, 0] - predicted[0, 0, 2], targets[0, 2] - predicted[0, 2, 1],
                            targets[1, 0] - predicted[1, 0, 1]])
    expected = np.mean(np_smooth_l1(diffs))
    np.testing.assert_allclose(mrcnn_bbox_loss(targets, class_ids, predicted).numpy(), expected, rtol=1e-6)


def test_mrcnn_bbox_loss_without_positives_is_zero():
    class_ids = np.zeros((2, 3), np.int32)
    loss, gradient = value_and_gradient(
        lambda deltas: mrcnn_bbox_loss(np.ones((2, 3, 4), np.float32), class_ids, deltas), np.ones((2, 3, 3, 4)))
    assert_zero_with_finite_gradient(loss, gradient)


def test_mrcnn_mask_loss_uses_the_target_class_mask():
    rng = np.random.RandomState(1)
    targets = rng.randint(0, 2, (2, 3, 2, 2)).astype(np.float32)
    class_ids = np.array([[0, 2, 1], [1, 0, 0]], np.int32)
    predicted = rng.uniform(0, 1, (2, 3, 2, 2, 3)).astype(np.float32)
    predicted[0, 1, 0, 0, 2] = 0.0  # a hard 0 and 1 are clipped, so the loss stays finite
    predicted[0, 1, 0, 1, 2] = 1.0
    pairs = [(targets[0, 1], predicted[0, 1, :, :, 2]), (targets[0, 2], predicted[0, 2, :, :, 1]),
             (targets[1, 0], predicted[1, 0, :, :, 1])]
    expected = np.mean(np.concatenate([np_bce(t, p).ravel() for t, p in pairs]))
    loss = mrcnn_mask_loss(targets, class_ids, predicted).numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    assert np.isfinite(loss)


def test_mrcnn_mask_loss_without_positives_is_zero():
    class_ids = np.zeros((1, 2), np.int32)
    loss, gradient = value_and_gradient(
        lambda masks: mrcnn_mask_loss(np.ones((1, 2, 4, 4), np.float32), class_ids, masks),
        np.full((1, 2, 4, 4, 3), 0.5))
    assert_zero_with_finite_gradient(loss, gradient)


def test_losses_in_graph_mode_with_and_without_samples():
    @tf.function
    def all_losses(match, class_ids):
        logits = tf.ones([1, 3, 2])
        return tf.stack([
            rpn_class_loss(match, logits),
            rpn_bbox_loss(tf.ones([1, 2, 4]), match, tf.zeros([1, 3, 4])),
            mrcnn_class_loss(class_ids, tf.zeros([1, 2, 3]), tf.ones([1, 3])),
            mrcnn_bbox_loss(tf.ones([1, 2, 4]), class_ids, tf.zeros([1, 2, 3, 4])),
            mrcnn_mask_loss(tf.ones([1, 2, 2, 2]), class_ids, tf.fill([1, 2, 2, 2, 3], 0.5))])

    empty = all_losses(tf.constant([[0, 0, 0]]), tf.constant([[0, 0]])).numpy()
    np.testing.assert_allclose(empty, [0, 0, np.log(3), 0, 0], rtol=1e-6)
    full = all_losses(tf.constant([[1, -1, 0]]), tf.constant([[2, 0]])).numpy()
    np.testing.assert_allclose(full, [np.log(2), 0.5, np.log(3), 0.5, np.log(2)], rtol=1e-6)


def test_weight_decay_skips_batchnorm_gamma_and_beta():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2, name="out")])
    rng = np.random.RandomState(0)
    for weight in model.weights:
        weight.assign(rng.normal(0, 1, weight.shape).astype(np.float32))
    decayed = [w for w in model.trainable_weights if w.name not in ("gamma", "beta")]
    assert len(decayed) == 4 and len(model.trainable_weights) == 6
    expected = sum(1e-4 * np.sum(np.square(w.numpy().astype(np.float64))) / w.numpy().size for w in decayed)
    np.testing.assert_allclose(weight_decay_loss(model.trainable_weights, 1e-4).numpy(), expected, rtol=1e-5)
    assert weight_decay_loss([], 1e-4).numpy() == 0.0
