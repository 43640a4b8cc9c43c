"""Learning test, CI version: from random weights, the small config's training loss falls well below its start.

A generated synthetic split (the product's generator, fixed seed) is converted with df2coco and
trained with ``configs/synthetic.toml`` (resnet18_half, 192 px, BatchNorm trained, Adam) through the public
API (``MaskRCNN(mode="training").train``). After a few hundred images, the per-epoch mean of the
total loss (averaged over the last three epochs) must be under 65% of the first epoch's mean. The
full version (mask AP50 on held-out images after 20 minutes) is ``scripts/bench_train.py --learning``.
About a minute on 2 CPU cores.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthetic.toml"

STEPS_PER_EPOCH = 10
EPOCHS = 12
NUM_IMAGES = 32


@pytest.fixture(scope="module")
def synthetic_split(tmp_path_factory):
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    split = tmp_path_factory.mktemp("learning") / "train"
    generate_split(split, NUM_IMAGES, seed=5, min_side=160, max_side=256, workers=1)
    annotations = split.parent / "train.json"
    convert_split(split, annotations, force=True, workers=1)  # with keypoints: the config trains landmarks
    return annotations, split / "image"


def test_loss_falls_well_below_its_start_from_random_weights(synthetic_split, tmp_path):
    import keras
    import tensorflow as tf

    from mrcnn.data.coco import CocoDataset
    from mrcnn.config import load_config, with_overrides
    from mrcnn.model import MaskRCNN
    from mrcnn.train.losses import loss_names

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    config = with_overrides(load_config(CONFIG), STEPS_PER_EPOCH=STEPS_PER_EPOCH)
    assert config.BACKBONE.startswith("resnet18") and config.TRAIN_BN and "landmarks" in config.ROI_HEADS
    annotations, images = synthetic_split
    dataset = CocoDataset()
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES, annotation_fields=["keypoints"])
    dataset.prepare()
    assert dataset.num_images == NUM_IMAGES

    model = MaskRCNN(mode="training", config=config, model_dir=tmp_path)
    # The config's own rate (Adam, 0.001): at SGD's 0.01 this short run needed twice the rate to move the
    # landmark loss; with Adam the five losses end near half of their start and the landmark loss well below uniform.
    history = model.train(dataset, None, learning_rate=config.LEARNING_RATE, epochs=EPOCHS, layers="all",
                          augmentation=False, seed=0, verbose=0).history

    losses = history["loss"]
    assert len(losses) == EPOCHS
    assert all(math.isfinite(v) for v in losses)
    # matterport's five losses (the total without the landmark term) fall well below their start. The landmark
    # loss (softmax over M*M heatmap cells) learns slowly: in this short run it only has to end below the loss
    # of uniform heatmaps, log(M*M) (its first epoch is lower only because few ROIs are positive yet).
    # Epochs of 10 steps are noisy and the kernels (so the exact curve) differ between CPUs: the mean of the
    # last three epochs is compared with the first (on CI's and our machines it ends near 0.55-0.6 of it).
    landmark = history["mrcnn_landmark_loss"]
    five = [total - term for total, term in zip(losses, landmark)]
    start, end = five[0], sum(five[-3:]) / 3
    assert end < 0.65 * start, f"loss fell only from {start:.3f} to {end:.3f} ({five})"
    assert landmark[-1] < math.log(config.LANDMARK_HEATMAP_SIZE ** 2), landmark
    # Every part is trained: none of the six losses grows much. The reference is the largest of the first
    # three epochs: the heads' losses are 0 on steps without positive ROIs, so a first epoch with few of them
    # starts low (mask loss 0.42, then 0.70 = the loss of 0.5 everywhere once positives appear).
    for name in loss_names(config, model.roi_heads):
        assert history[name][-1] < 1.5 * max(history[name][:3]) + 0.05, (name, history[name])
    # A checkpoint was written for every epoch, in matterport's naming.
    assert len(list(Path(model.log_dir).glob("mask_rcnn_synthetic_*.h5"))) == EPOCHS


def test_mask_loss_of_the_first_rows_equals_the_loss_over_all_rows():
    """The mask branch may run on the first M ROIs only (positives come first): same loss."""
    import numpy as np

    from mrcnn.ops.losses import mrcnn_mask_loss

    rng = np.random.default_rng(0)
    batch, rows, first, classes = 2, 6, 3, 4
    class_ids = np.zeros((batch, rows), np.int32)
    class_ids[0, :2] = [3, 1]  # positives first, then negatives / padding
    class_ids[1, :3] = [2, 2, 3]
    target = (rng.random((batch, rows, 5, 5)) > 0.5).astype(np.float32)
    predicted = rng.uniform(0.05, 0.95, (batch, rows, 5, 5, classes)).astype(np.float32)
    everything = float(mrcnn_mask_loss(target, class_ids, predicted))
    first_rows = float(mrcnn_mask_loss(target[:, :first], class_ids, predicted[:, :first]))
    # Independently: mean binary cross-entropy over the positive rows' own-class masks.
    picks = [(b, r) for b in range(batch) for r in range(rows) if class_ids[b, r] > 0]
    p = np.stack([predicted[b, r, :, :, class_ids[b, r]] for b, r in picks])
    t = np.stack([target[b, r] for b, r in picks])
    expected = float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    assert np.isclose(everything, expected, rtol=1e-5)
    assert np.isclose(first_rows, expected, rtol=1e-5)
