"""The ROI-head seam: a head defined in this file alone trains, saves, loads and detects with the model.

The toy head predicts, for each ROI, the relative area of its garment (instance mask pixels / image
pixels), a per-instance scalar the dataset provides through ``load_instance_fields``. Nothing in
``mrcnn/`` knows about it: it is registered here and named in the config's ROI_HEADS, and its loss
joins the loss table (with its LOSS_WEIGHTS weight), the logs, the CSV and the checkpoints.
"""
from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.layers.glue import FoldRois, UnfoldRois
from mrcnn.layers.roi_align import roi_align_layer
from mrcnn.model import MaskRCNN
from mrcnn.modeling.roi_heads import RoiHead
from mrcnn.ops.instance_fields import InstanceField
from mrcnn.registry import ROI_HEADS

from tests import toy_data
from tests.toy_data import SIDE


class RelativeAreaHead(RoiHead):
    """Per ROI: the matched instance's mask area / image area (a scalar), from pooled features."""

    name = "toy_area"
    loss_name = "toy_area_loss"
    instance_fields = (InstanceField("relative_area", shape=(), dtype="float32"),)

    def target_spec(self):
        return tf.TensorSpec([], tf.float32)

    def roi_targets(self, positive_rois, matched_gt, gt):
        return tf.gather(gt["relative_area"], matched_gt)  # [P]

    def _predict(self, feature_maps, boxes, image_meta, num_rois, prefix):
        pooled = roi_align_layer(3, f"{prefix}_roi_align")([boxes, image_meta, *feature_maps])  # [B, N, 3, 3, D]
        x = FoldRois(name=f"{prefix}_fold")(pooled)
        x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}_pool")(x)
        x = keras.layers.Dense(1, name="toy_area_dense")(x)  # the head's only weights
        x = keras.layers.Reshape((), name=f"{prefix}_squeeze")(x)
        return UnfoldRois(num_rois, name=f"{prefix}_unfold")(x)  # [B, N]

    def build_training(self, feature_maps, rois, image_meta, target_class_ids):
        return self._predict(feature_maps, rois, image_meta, self.config.TRAIN_ROIS_PER_IMAGE, "toy_train")

    def loss(self, targets, predictions, target_class_ids):
        positive = tf.cast(target_class_ids > 0, tf.float32)
        squared = tf.square(tf.cast(targets, tf.float32) - tf.cast(predictions, tf.float32)) * positive
        return tf.math.divide_no_nan(tf.reduce_sum(squared), tf.reduce_sum(positive))

    def build_inference(self, feature_maps, detection_boxes, image_meta, detection_class_ids):
        return self._predict(feature_maps, detection_boxes, image_meta, self.config.DETECTION_MAX_INSTANCES,
                             "toy_infer")

    def unmold(self, predictions, class_ids, boxes, image_shape):
        return np.asarray(predictions, np.float32)  # [n] one value per kept detection

    def export_outputs(self, predictions, class_ids, boxes, image_hw):  # unmold's twin, for exported models
        return {"detection_toy_area": tf.cast(predictions, tf.float32)}

    def export_output_specs(self):
        return {"detection_toy_area": tf.TensorSpec([], tf.float32)}


ROI_HEADS.register("toy_area", RelativeAreaHead)


class Rectangles(toy_data.Rectangles):
    """The toy rectangles; the toy field is each one's relative area."""

    def load_instance_fields(self, image_id, fields):
        masks, _ = self.load_mask(image_id)
        return {"relative_area": masks.sum(axis=(0, 1)) / float(SIDE * SIDE)}


def toy_config(**settings):
    return toy_data.toy_config(**{"NAME": "toyseam", "ROI_HEADS": ["mask", "toy_area"],
                                  "LOSS_WEIGHTS": {"toy_area_loss": 3.0}, **settings})


@pytest.fixture(scope="module")
def datasets():
    train, val = Rectangles(8, seed=0), Rectangles(4, seed=1)
    train.prepare()
    val.prepare()
    return train, val


def proposals_are_the_anchors(model):
    """Zero the RPN's box deltas: random ones collapse the proposals; the anchors (all of them are kept
    before NMS, PRE_NMS_LIMIT = 1000, and all are rectangle-sized) give positive ROIs from the first step."""
    layer = model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    """A training model with the toy head after one epoch: (model, history, toy weights before training)."""
    train, val = datasets
    keras.utils.set_random_seed(0)
    model = MaskRCNN(mode="training", config=toy_config(), model_dir=tmp_path_factory.mktemp("logs"))
    proposals_are_the_anchors(model)
    before = [w.numpy().copy() for w in model.keras_model.get_layer("toy_area_dense").weights]
    history = model.train(train, val, learning_rate=0.01, epochs=1, layers="heads", augmentation=False,
                          seed=0, verbose=0).history
    return model, history, before


def test_a_head_from_outside_trains_with_its_loss_in_the_table(trained):
    model, history, before = trained
    assert np.isfinite(history["toy_area_loss"][0]) and history["toy_area_loss"][0] > 0
    assert np.isfinite(history["val_toy_area_loss"][0])
    dense = model.keras_model.get_layer("toy_area_dense")  # "heads" trains it: its name has no res/bn prefix
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, dense.weights)), "the toy head did not learn"
    with open(f"{model.log_dir}/training_log.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["toy_area_loss"]) == pytest.approx(history["toy_area_loss"][0], rel=1e-4)
    assert (model.checkpoint_for_epoch(1)).is_file()


def test_the_train_step_sums_the_toy_loss_with_its_weight(trained, datasets):
    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.modeling.roi_heads import instance_fields
    from mrcnn.ops.losses import weight_decay_loss
    from mrcnn.train.step import TrainingModel

    model, _, _ = trained
    train, _ = datasets
    config = model.config
    batch = next(iter(build_training_dataset(train, config, augment=False, seed=0,
                                             instance_fields=instance_fields(model.roi_heads))))
    assert batch["input_gt_relative_area"].shape == (2, config.MAX_GT_INSTANCES)
    trainer = TrainingModel(model.keras_model, config)
    assert [t.name for t in trainer.loss_terms][-2:] == ["mrcnn_mask_loss", "toy_area_loss"]
    assert [t.weight for t in trainer.loss_terms if t.name == "toy_area_loss"] == [3.0]
    outputs = model.keras_model(batch, training=False)
    parts = trainer.compute_losses(batch, outputs)
    expected = sum(float(parts[t.name]) * t.weight for t in trainer.loss_terms)
    expected += float(weight_decay_loss(model.keras_model.trainable_weights, config.WEIGHT_DECAY))
    assert float(trainer.total_loss(parts)) == pytest.approx(expected, rel=1e-5)
    # The toy targets are the relative areas of the matched instances: values of the dataset's field.
    positive = np.asarray(outputs["target_class_ids"]) > 0
    targets = np.asarray(outputs["target_toy_area"])[positive]
    areas = np.concatenate([train.load_instance_fields(i, ())["relative_area"] for i in train.image_ids])
    assert positive.any() and all(np.isclose(areas, t).any() for t in targets)


def test_the_toy_head_detects_and_its_weights_round_trip(trained, datasets):
    model, _, _ = trained
    train, _ = datasets
    checkpoint = model.checkpoint_for_epoch(1)
    inference = MaskRCNN(mode="inference", config=toy_config(IMAGES_PER_GPU=1), model_dir=model.model_dir)
    report = inference.load_weights(checkpoint)
    assert "toy_area_dense" in report.loaded
    np.testing.assert_array_equal(inference.keras_model.get_layer("toy_area_dense").weights[0].numpy(),
                                  model.keras_model.get_layer("toy_area_dense").weights[0].numpy())
    (result,) = inference.detect([train.load_image(0)])
    assert set(result) == {"rois", "class_ids", "scores", "masks", "toy_area"}
    assert result["toy_area"].shape == (len(result["class_ids"]),)

    # A model without the head (matterport's) loads the same file, ignoring the toy layer.
    plain = MaskRCNN(mode="inference", config=toy_config(IMAGES_PER_GPU=1, ROI_HEADS=["mask"], LOSS_WEIGHTS={}),
                     model_dir=model.model_dir)
    assert "toy_area_dense" in plain.load_weights(checkpoint).in_file_not_in_model
    assert "toy_area" not in plain.detect([train.load_image(0)])[0]


def test_the_toy_head_joins_exported_models_through_its_export_outputs(trained, datasets, tmp_path):
    # The exported signatures, traced in memory (no SavedModel written): the head's own key, in both.
    from mrcnn.export.serving import DETECT_IMAGE, SERVING_DEFAULT, ServingModule

    model, _, _ = trained
    train, _ = datasets
    inference = MaskRCNN(mode="inference", config=toy_config(IMAGES_PER_GPU=1), model_dir=model.model_dir)
    inference.load_weights(model.checkpoint_for_epoch(1))
    names_file = tmp_path / "class_names.txt"
    names_file.write_text("BG\nwide\ntall\n")
    signatures = ServingModule(inference, ["BG", "wide", "tall"], str(names_file)).signatures()
    image = train.load_image(0)
    (expected,) = inference.detect([image])
    direct = signatures[DETECT_IMAGE](image=tf.constant(image[None]))
    assert len(expected["toy_area"]) > 0
    np.testing.assert_allclose(direct["detection_toy_area"][0].numpy(), expected["toy_area"], atol=1e-5)
    padded = signatures[SERVING_DEFAULT](images=tf.constant([tf.io.encode_png(image).numpy()]))
    count = inference.config.DETECTION_MAX_INSTANCES
    assert padded["detection_toy_area"].shape == (1, count) and padded["detection_masks"].shape[:2] == (1, count)
    n = int(padded["num_detections"][0])
    np.testing.assert_allclose(padded["detection_toy_area"][0, :n].numpy(), expected["toy_area"], atol=1e-5)
    assert not padded["detection_toy_area"][0, n:].numpy().any()


def test_an_unknown_head_or_loss_weight_is_a_one_line_error():
    from mrcnn.config import ConfigError

    with pytest.raises(ConfigError, match="ROI_HEADS must list registered heads.*nope"):
        toy_config(ROI_HEADS=["mask", "nope"])
    with pytest.raises(ValueError, match="LOSS_WEIGHTS has toy_area_loss, which this model does not compute"):
        MaskRCNN(mode="training", config=toy_config(ROI_HEADS=["mask"]), model_dir="unused")
