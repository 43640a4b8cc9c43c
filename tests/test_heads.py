"""The mask head's positive-ROI path (training): same masks on positive rows, zeros elsewhere."""
from __future__ import annotations

import numpy as np


def _mask_heads(pool=14, depth=8, num_rois=5, num_classes=3):
    """Two models sharing one set of weights: the mask head on all ROIs, and on the positive ones only."""
    import keras

    from mrcnn.modeling.mask_head import fpn_mask_head

    pooled = keras.Input(shape=(num_rois, pool, pool, depth))
    class_ids = keras.Input(shape=(num_rois,), dtype="int32")
    every_roi = keras.Model(pooled, fpn_mask_head(pooled, num_rois, num_classes, train_bn=False))
    positive = keras.Model([pooled, class_ids],
                           fpn_mask_head(pooled, num_rois, num_classes, train_bn=False, roi_class_ids=class_ids))
    weights = {layer.name: layer.get_weights() for layer in every_roi.layers if layer.weights}
    for layer in positive.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    return every_roi, positive


def test_positive_rows_get_the_full_heads_masks_and_other_rows_zeros():
    every_roi, positive = _mask_heads()
    rng = np.random.default_rng(0)
    pooled = rng.normal(size=(2, 5, 14, 14, 8)).astype(np.float32)
    class_ids = np.array([[2, 1, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)  # image 1 has no positive ROI
    full = np.asarray(every_roi(pooled))
    only = np.asarray(positive([pooled, class_ids]))
    assert full.shape == only.shape == (2, 5, 28, 28, 3)
    np.testing.assert_allclose(only[0, :2], full[0, :2], rtol=1e-5, atol=1e-6)
    assert not only[0, 2:].any() and not only[1, 1:].any()
    # Row (0, 0) always runs (no empty batch for BatchNorm); with no positive at all only it is computed.
    only = np.asarray(positive([pooled, np.zeros_like(class_ids)]))
    np.testing.assert_allclose(only[0, 0], full[0, 0], rtol=1e-5, atol=1e-6)
    assert not only.reshape(10, -1)[1:].any()


def test_positive_path_trains_the_same_weights_with_finite_gradients():
    import tensorflow as tf

    _, positive = _mask_heads()
    pooled = tf.random.normal((2, 5, 14, 14, 8), seed=1)
    class_ids = tf.constant([[1, 0, 0, 0, 0], [3, 2, 0, 0, 0]], tf.int32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(positive([pooled, class_ids], training=True))
    gradients = tape.gradient(loss, positive.trainable_variables)
    assert len(gradients) == len(positive.trainable_variables) > 0
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in gradients)
