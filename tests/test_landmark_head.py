"""The landmark head in the model: config rules, training with its loss, flips off, checkpoints, detect()."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.config import ConfigError, load_config
from mrcnn.data.augmentation import Augmentation
from mrcnn.data.pipeline import build_training_dataset
from mrcnn.model import MaskRCNN
from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields
from tests import toy_data
from tests.conftest import REPO

COUNTS = [4, 4]  # class 1 "wide": landmarks 0-3, class 2 "tall": landmarks 4-7 (the rectangle's corners)
HEAD_LAYERS = ["mrcnn_landmark_conv1", "mrcnn_landmark_conv2", "mrcnn_landmark_heatmaps"]


class CorneredRectangles(toy_data.Rectangles):
    """The toy rectangles (sides 16-39 px); each one's landmarks are its four corners."""

    def __init__(self, count: int, seed: int):
        super().__init__(count, seed, max_side=40)

    def load_instance_fields(self, image_id, fields):
        rows = []
        for y, x, h, w, class_id in self.image_info[image_id]["boxes"]:
            points = np.zeros((sum(COUNTS), 3), np.float32)
            start = 4 * (class_id - 1)
            points[start:start + 4] = [(x, y, 2), (x + w, y, 2), (x, y + h, 1), (x + w, y + h, 2)]
            rows.append(points)
        return {"keypoints": np.asarray(rows, np.float32)}


def landmark_config(**settings):
    return toy_data.toy_config(**{
        "NAME": "toylandmarks", "STEPS_PER_EPOCH": 2, "ROI_HEADS": ["mask", "landmarks"], "LANDMARK_COUNTS": COUNTS,
        "LANDMARK_POOL_SIZE": 7, "LANDMARK_HEAD_CONV_LAYERS": 2, "LANDMARK_HEAD_CONV_CHANNELS": 16,
        "LANDMARK_HEATMAP_SIZE": 14, "LOSS_WEIGHTS": {"mrcnn_landmark_loss": 2.0}, **settings})


def test_config_rules_of_the_landmark_head():
    assert landmark_config().NUM_LANDMARKS == 8
    with pytest.raises(ConfigError, match="needs LANDMARK_COUNTS"):
        landmark_config(LANDMARK_COUNTS=[])
    with pytest.raises(ConfigError, match="LANDMARK_COUNTS must list 2 integers"):
        landmark_config(LANDMARK_COUNTS=[4, 4, 4])
    with pytest.raises(ConfigError, match="LANDMARK_HEATMAP_SIZE must be 2 or 4 times"):
        landmark_config(LANDMARK_HEATMAP_SIZE=20)
    with pytest.raises(ConfigError, match="NUM_LANDMARKS is derived"):
        landmark_config(NUM_LANDMARKS=8)
    assert "landmarks" not in load_config(REPO / "configs" / "deepfashion2.toml").ROI_HEADS  # off by default


def test_the_configs_landmark_counts_are_deepfashion2s_table():
    from df2coco.categories import CATEGORIES

    table = [c.num_landmarks for c in CATEGORIES]
    for name in ("deepfashion2.toml", "synthetic.toml"):
        config = load_config(REPO / "configs" / name)
        assert list(config.LANDMARK_COUNTS) == table and config.NUM_LANDMARKS == 294, name


def test_landmarks_are_never_flipped_with_the_head():
    """DeepFashion2's landmarks have left/right identities and no flip map: flips are switched off."""
    config = landmark_config()
    dataset = CorneredRectangles(2, seed=3)
    dataset.prepare()
    fields = instance_fields(build_roi_heads(config))
    always_flip = Augmentation(flip_probability=1.0, scale_range=(1, 1), brightness=0.0, contrast_range=(1, 1))
    plain, flipped = (next(iter(build_training_dataset(dataset, config, augment=a, seed=0, shuffle=False,
                                                       instance_fields=fields))) for a in (False, always_flip))
    np.testing.assert_array_equal(flipped["input_gt_keypoints"], plain["input_gt_keypoints"])
    np.testing.assert_array_equal(flipped["input_image"], plain["input_image"])
    assert np.asarray(plain["input_gt_keypoints"])[..., 2].max() == 2  # there were points to flip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training model with the landmark head after one epoch of two steps."""
    train = CorneredRectangles(6, seed=0)
    train.prepare()
    keras.utils.set_random_seed(0)
    model = MaskRCNN(mode="training", config=landmark_config(), model_dir=tmp_path_factory.mktemp("logs"))
    rpn = model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred")
    rpn.set_weights([np.zeros_like(w) for w in rpn.get_weights()])  # proposals = anchors: positives from step 1
    before = model.keras_model.get_layer("mrcnn_landmark_heatmaps").get_weights()[0].copy()
    history = model.train(train, None, learning_rate=0.01, epochs=1, layers="heads", seed=0, verbose=0).history
    return model, history, before, train


def test_the_head_trains_with_its_weighted_loss(trained):
    from mrcnn.train.losses import loss_table

    model, history, before, train = trained
    assert np.isfinite(history["mrcnn_landmark_loss"][0]) and history["mrcnn_landmark_loss"][0] > 0
    assert [t.weight for t in loss_table(model.config, model.roi_heads) if t.name == "mrcnn_landmark_loss"] == [2.0]
    after = model.keras_model.get_layer("mrcnn_landmark_heatmaps").get_weights()[0]
    assert not np.array_equal(before, after), "the landmark head did not learn"
    batch = next(iter(build_training_dataset(train, model.config, augment=False, seed=0,
                                             instance_fields=instance_fields(model.roi_heads))))
    outputs = model.keras_model(batch, training=False)
    targets, classes = np.asarray(outputs["target_landmarks"]), np.asarray(outputs["target_class_ids"])
    assert outputs["mrcnn_landmarks"].shape == (2, 16, 4, 14 * 14)
    assert (targets[classes > 0] >= 0).any() and (targets[classes == 0] <= 0).all()


def test_a_checkpoint_with_the_head_round_trips_and_detect_returns_landmarks(trained):
    model, _, _, train = trained
    checkpoint = model.checkpoint_for_epoch(1)
    inference = MaskRCNN(mode="inference", config=landmark_config(IMAGES_PER_GPU=1), model_dir=model.model_dir)
    report = inference.load_weights(checkpoint)
    assert set(HEAD_LAYERS) <= set(report.loaded)
    for name in HEAD_LAYERS:
        for saved, loaded in zip(model.keras_model.get_layer(name).get_weights(),
                                 inference.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(saved, loaded)
    (result,) = inference.detect([train.load_image(0)])
    n = len(result["class_ids"])
    assert n > 0 and result["landmarks"].shape == (n, 8, 3)
    for row, class_id in enumerate(result["class_ids"]):
        own = slice(4 * (class_id - 1), 4 * class_id)
        other = np.ones(8, bool)
        other[own] = False
        assert not result["landmarks"][row, other].any()
        assert (result["landmarks"][row, own, 2] > 0).all()
        y1, x1, y2, x2 = result["rois"][row]
        xs, ys = result["landmarks"][row, own, 0], result["landmarks"][row, own, 1]
        assert ((xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)).all()  # peaks lie inside the box


def test_with_a_margin_the_head_reads_the_grown_box_and_detect_returns_points_around_it(trained):
    """LANDMARK_ROI_MARGIN has no weights: the same checkpoint loads; the peaks come back in image pixels
    anywhere in the box grown by the margin, the detections themselves unchanged."""
    model, _, _, train = trained
    margin = 0.25
    plain, grown = (MaskRCNN(mode="inference", config=landmark_config(IMAGES_PER_GPU=1, LANDMARK_ROI_MARGIN=m),
                             model_dir=model.model_dir) for m in (0.0, margin))
    assert grown.keras_model.get_layer("mrcnn_landmark_expand_rois").margin == margin
    for inference in (plain, grown):
        inference.load_weights(model.checkpoint_for_epoch(1))
    image = train.load_image(0)
    (without,), (with_margin,) = plain.detect([image]), grown.detect([image])
    np.testing.assert_array_equal(with_margin["rois"], without["rois"])
    assert len(with_margin["rois"]) and not np.allclose(with_margin["landmarks"], without["landmarks"])
    for row, class_id in enumerate(with_margin["class_ids"]):
        y1, x1, y2, x2 = with_margin["rois"][row]
        own = slice(4 * (class_id - 1), 4 * class_id)
        xs, ys = with_margin["landmarks"][row, own, 0], with_margin["landmarks"][row, own, 1]
        dx, dy = margin * (x2 - x1), margin * (y2 - y1)
        assert ((xs >= x1 - dx) & (xs <= x2 + dx) & (ys >= y1 - dy) & (ys <= y2 + dy)).all()


def test_a_file_without_the_head_loads_into_a_model_with_it(trained, tmp_path):
    model, _, _, _ = trained
    plain = MaskRCNN(mode="inference", config=landmark_config(IMAGES_PER_GPU=1, ROI_HEADS=["mask"], LOSS_WEIGHTS={}),
                     model_dir=tmp_path)
    plain.load_weights(model.checkpoint_for_epoch(1))  # the checkpoint's extra layers are ignored
    path = tmp_path / "without_head.h5"
    plain.save_weights(str(path))
    with_head = MaskRCNN(mode="inference", config=landmark_config(IMAGES_PER_GPU=1), model_dir=tmp_path)
    initial = with_head.keras_model.get_layer("mrcnn_landmark_conv1").get_weights()[0].copy()
    report = with_head.load_weights(str(path))
    assert set(HEAD_LAYERS) <= set(report.in_model_not_in_file)
    assert "mrcnn_mask" in report.loaded and "mrcnn_class_logits" in report.loaded
    np.testing.assert_array_equal(with_head.keras_model.get_layer("mrcnn_landmark_conv1").get_weights()[0], initial)
    assert tf.reduce_all(tf.equal(with_head.keras_model.get_layer("mrcnn_mask").weights[0],
                                  model.keras_model.get_layer("mrcnn_mask").weights[0]))
