"""MaskRCNN's public API on a small random model: detect() outputs, batching, molding, errors."""
from __future__ import annotations

import numpy as np
import pytest

from mrcnn.config import config_from_dict
from mrcnn.model import MaskRCNN

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def model():
    config = config_from_dict(dict(
        NAME="small", NUM_CLASSES=NUM_CLASSES, BACKBONE="resnet50", IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
        IMAGES_PER_GPU=2, POST_NMS_ROIS_INFERENCE=64, DETECTION_MAX_INSTANCES=12, DETECTION_MIN_CONFIDENCE=0.0))
    return MaskRCNN(mode="inference", config=config, model_dir="unused")


def random_image(rng, height, width):
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_detect_returns_matterport_results_for_a_batch_of_different_sizes(model):
    rng = np.random.default_rng(0)
    images = [random_image(rng, 100, 150), random_image(rng, 128, 90)]
    results = model.detect(images)
    assert len(results) == 2
    for image, r in zip(images, results):
        h, w = image.shape[:2]
        n = len(r["class_ids"])
        assert set(r) == {"rois", "class_ids", "scores", "masks"}
        assert r["rois"].dtype == np.int32 and r["rois"].shape == (n, 4)
        assert r["class_ids"].dtype == np.int32 and r["scores"].dtype == np.float32
        assert r["masks"].dtype == bool and r["masks"].shape == (h, w, n)
        assert n <= 12
        if n:
            y1, x1, y2, x2 = r["rois"].T
            assert (y1 >= 0).all() and (x1 >= 0).all() and (y2 <= h).all() and (x2 <= w).all()
            assert (y1 < y2).all() and (x1 < x2).all()
            assert ((r["class_ids"] >= 1) & (r["class_ids"] < NUM_CLASSES)).all()
            assert ((r["scores"] >= 0) & (r["scores"] <= 1)).all()
            assert (np.diff(r["scores"]) <= 1e-6).all(), "detections are sorted by score"
            # Each mask lies inside its box.
            for k in range(n):
                ys, xs = np.nonzero(r["masks"][..., k])
                if len(ys):
                    assert ys.min() >= y1[k] and ys.max() < y2[k] and xs.min() >= x1[k] and xs.max() < x2[k]


def test_detect_is_deterministic_and_batch_independent(model):
    rng = np.random.default_rng(1)
    a, b = random_image(rng, 120, 120), random_image(rng, 80, 128)
    first = model.detect([a, b])
    second = model.detect([b, a])
    np.testing.assert_array_equal(first[0]["rois"], second[1]["rois"])
    np.testing.assert_allclose(first[0]["scores"], second[1]["scores"], atol=1e-5)


def test_mold_inputs_window_and_meta(model):
    molded, metas, windows = model.mold_inputs([np.zeros((64, 128, 3), np.uint8)])
    assert molded.shape == (1, 128, 128, 3) and molded.dtype == np.float32
    np.testing.assert_array_equal(windows[0], [32, 0, 96, 128])  # 64x128 scaled x1, centred vertically
    assert metas.shape == (1, 12 + NUM_CLASSES)
    np.testing.assert_allclose(molded[0, 0, 0], -model.config.MEAN_PIXEL, rtol=1e-6)  # padding = -mean


def test_detect_checks_its_inputs(model):
    with pytest.raises(ValueError, match="BATCH_SIZE=2"):
        model.detect([np.zeros((64, 64, 3), np.uint8)])
    with pytest.raises(ValueError, match="mode"):
        MaskRCNN(mode="predict", config=model.config, model_dir="unused")
    # "pad64" keeps each photo's size: two sizes cannot share a batch, said in words, not by np.stack.
    pad64 = config_from_dict({**{k: getattr(model.config, k) for k in ("NAME", "NUM_CLASSES", "IMAGES_PER_GPU")},
                              "IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128})
    padded = MaskRCNN.__new__(MaskRCNN)
    padded.config = pad64
    with pytest.raises(ValueError, match="all images of a batch must have the same size, got 128x128, 128x256"):
        padded.mold_inputs([np.zeros((128, 128, 3), np.uint8), np.zeros((64, 100, 3), np.uint8)])
    # matterport would detect in a random crop ("crop" mode) and crash deep in the FPN for sides not divisible by 64.
    padded.config = config_from_dict({"NAME": "c", "NUM_CLASSES": NUM_CLASSES, "IMAGE_RESIZE_MODE": "crop",
                                      "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128})
    with pytest.raises(ValueError, match='"crop" is a training mode.*"pad64"'):
        padded.mold_inputs([np.zeros((128, 128, 3), np.uint8)])
    padded.config = config_from_dict({"NAME": "n", "NUM_CLASSES": NUM_CLASSES, "IMAGE_RESIZE_MODE": "none"})
    with pytest.raises(ValueError, match="multiples of 64, got 100x128"):
        padded.mold_inputs([np.zeros((100, 128, 3), np.uint8)])
    assert padded.mold_inputs([np.zeros((64, 128, 3), np.uint8)])[0].shape == (1, 64, 128, 3)


def test_inference_model_has_matterport_outputs_and_nested_rpn(model):
    names = [layer.name for layer in model.keras_model.layers]
    for name in ("conv1", "bn_conv1", "res4f_branch2c", "fpn_p2", "rpn_model", "ROI", "mrcnn_detection",
                 "mrcnn_class_conv1", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask_deconv", "mrcnn_mask"):
        assert name in names, name
    rpn = model.keras_model.get_layer("rpn_model")
    assert [l.name for l in rpn.layers if l.weights] == ["rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"]
    assert len(model.keras_model.outputs) == 7


def test_mask_head_runs_on_the_real_detections_only(model):
    """Issue 12: the mask head's layers see the detections with a class id > 0, padding rows get zeros.

    A random model may call every ROI background (no detection at all), so the background logit's bias is
    lowered for this test: every image then has real detections. Per-row equality with the head on all
    rows is tests/test_heads.py's.
    """
    names = [layer.name for layer in model.keras_model.layers]
    assert "mrcnn_mask_positive_rois" in names and "mrcnn_mask_scatter" in names
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    try:
        logits.set_weights([kernel, bias - np.eye(len(bias))[0] * 10.0])
        rng = np.random.default_rng(5)
        images = [random_image(rng, 128, 128), random_image(rng, 128, 128)]
        molded, metas, _ = model.mold_inputs(images)
        anchors = model.get_anchors(molded[0].shape)
        anchors = np.broadcast_to(anchors, (2,) + anchors.shape)
        detections, _, _, masks, *_ = model.keras_model.predict([molded, metas, anchors], verbose=0)
    finally:
        logits.set_weights([kernel, bias])
    class_ids = detections[..., 4].astype(int)
    assert (class_ids > 0).any(axis=1).all()
    assert not masks[class_ids == 0].any()
    assert masks[class_ids > 0].reshape(int((class_ids > 0).sum()), -1).any(axis=1).all()


def test_inference_model_keeps_box_layers_in_float32_under_mixed_precision():
    import keras

    config = config_from_dict(dict(
        NAME="small", NUM_CLASSES=NUM_CLASSES, BACKBONE="resnet50", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
        IMAGES_PER_GPU=1, POST_NMS_ROIS_INFERENCE=16, DETECTION_MAX_INSTANCES=4, DETECTION_MIN_CONFIDENCE=0.0))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = MaskRCNN(mode="inference", config=config, model_dir="unused")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    km = mixed.keras_model
    assert km.get_layer("fpn_p2").compute_dtype == "float16"
    for name in ("ROI", "roi_align_classifier", "mrcnn_detection", "roi_align_mask"):
        assert km.get_layer(name).compute_dtype == "float32", name
    (result,) = mixed.detect([np.zeros((64, 64, 3), np.uint8)])
    assert result["masks"].shape[:2] == (64, 64) and len(result["class_ids"]) <= 4


def small_config(**settings):
    base = dict(NAME="small", NUM_CLASSES=NUM_CLASSES, BACKBONE="resnet18_half", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                IMAGES_PER_GPU=1, POST_NMS_ROIS_INFERENCE=16, DETECTION_MAX_INSTANCES=4, TOP_DOWN_PYRAMID_SIZE=32,
                FPN_CLASSIF_FC_LAYERS_SIZE=32)
    return config_from_dict({**base, **settings})


def test_a_class_count_mismatch_says_how_to_fix_it_in_the_config(tmp_path):
    from mrcnn.io.h5_legacy import WeightsError

    path = tmp_path / "five.h5"
    MaskRCNN(mode="inference", config=small_config(), model_dir=tmp_path).save_weights(path)
    three = MaskRCNN(mode="inference", config=small_config(NUM_CLASSES=3), model_dir=tmp_path)
    with pytest.raises(WeightsError) as info:
        three.load_weights(path)
    message = str(info.value)
    assert "NUM_CLASSES = 5" in message and "exclude=" in message and "mrcnn_bbox_fc" in message
    assert "\n" not in message
    report = three.load_weights(path, exclude=three.class_specific_layers())
    assert set(report.excluded) == {"mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"}


def test_weights_of_another_backbone_name_the_backbone_not_the_class_count(tmp_path):
    from mrcnn.io.h5_legacy import WeightsError

    path = tmp_path / "resnet18.h5"
    MaskRCNN(mode="inference", config=small_config(BACKBONE="resnet18"), model_dir=tmp_path).save_weights(path)
    half = MaskRCNN(mode="inference", config=small_config(), model_dir=tmp_path)
    with pytest.raises(WeightsError, match='resnet18 model; set BACKBONE = "resnet18"') as info:
        half.load_weights(path)
    assert "NUM_CLASSES" not in str(info.value)
