"""matterport's own workflows, written in this project's words, run on mrcnn unchanged.

The paths its samples walk (the shapes notebook, the balloon script, the demo notebook, the inspect
notebooks): a Dataset subclass, ``train`` heads then all, ``find_last``, ``load_image_gt``, ``log``,
``detect``, ``detect_molded``, ``run_graph``, ``utils.compute_ap``, ``visualize.display_instances``;
a balloon-style dataset read from a VIA JSON file with polygons. Small configs keep them quick.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.draw
import skimage.io

from mrcnn import model as modellib
from mrcnn import utils, visualize
from mrcnn.config import Config

SIDE = 64


class ShapesConfig(Config):
    """As a user's notebook would write it: a subclass with class attributes."""

    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 3
    BACKBONE = "resnet18_half"
    IMAGE_MIN_DIM = SIDE
    IMAGE_MAX_DIM = SIDE
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    TOP_DOWN_PYRAMID_SIZE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    TRAIN_ROIS_PER_IMAGE = 16
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    PRE_NMS_LIMIT = 500
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 5
    MINI_MASK_SHAPE = (14, 14)
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    TRAIN_BN = True


class InferenceConfig(ShapesConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


def shapes_dataset_class():
    class Shapes(utils.Dataset):
        """Squares, circles and triangles on a plain background, drawn on the fly (the shapes sample's idea)."""

        def load_shapes(self, count, seed):
            for i, name in enumerate(("square", "circle", "triangle"), start=1):
                self.add_class("shapes", i, name)
            rng = np.random.default_rng(seed)
            for i in range(count):
                shapes = [(str(rng.choice(["square", "circle", "triangle"])), *(int(v) for v in rng.integers(14, 50, 2)),
                           int(rng.integers(6, 12))) for _ in range(int(rng.integers(1, 3)))]
                self.add_image("shapes", image_id=i, path=None, width=SIDE, height=SIDE, shapes=shapes,
                               color=tuple(int(v) for v in rng.integers(0, 120, 3)))

        def load_image(self, image_id):
            info = self.image_info[image_id]
            image = np.full((SIDE, SIDE, 3), info["color"], np.uint8)
            masks, _ = self.load_mask(image_id)
            for k in range(masks.shape[-1]):
                image[masks[:, :, k]] = (200, 150 + 20 * k, 60)
            return image

        def load_mask(self, image_id):
            shapes = self.image_info[image_id]["shapes"]
            masks = np.zeros((SIDE, SIDE, len(shapes)), bool)
            for k, (shape, y, x, size) in enumerate(shapes):
                if shape == "square":
                    masks[y - size:y + size, x - size:x + size, k] = True
                elif shape == "circle":
                    rr, cc = skimage.draw.disk((y, x), size, shape=(SIDE, SIDE))
                    masks[rr, cc, k] = True
                else:
                    rr, cc = skimage.draw.polygon([y - size, y + size, y + size], [x, x - size, x + size], (SIDE, SIDE))
                    masks[rr, cc, k] = True
            class_ids = np.array([self.class_names.index(s[0]) for s in shapes], np.int32)
            return masks, class_ids

    return Shapes


@pytest.fixture(scope="module")
def shapes():
    Shapes = shapes_dataset_class()
    train, val = Shapes(), Shapes()
    train.load_shapes(8, seed=0)
    val.load_shapes(4, seed=1)
    train.prepare()
    val.prepare()
    return train, val


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """The shapes notebook's training: heads, then all layers, from random weights."""
    train, val = shapes
    logs = tmp_path_factory.mktemp("logs")
    model = modellib.MaskRCNN(mode="training", config=ShapesConfig(), model_dir=str(logs))
    model.train(train, val, learning_rate=0.01, epochs=1, layers="heads", verbose=0)
    model.train(train, val, learning_rate=0.001, epochs=2, layers="all", verbose=0)
    return model, logs


def test_train_heads_then_all_writes_two_checkpoints_and_find_last_finds_the_second(trained):
    model, logs = trained
    assert model.epoch == 2
    last = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir=str(logs)).find_last()
    assert last.endswith("mask_rcnn_shapes_0002.h5")


def test_inference_loads_the_last_checkpoint_and_detects(trained, shapes):
    model, logs = trained
    _, val = shapes
    inference = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir=str(logs))
    inference.load_weights(inference.find_last(), by_name=True)
    image, image_meta, gt_class_id, gt_bbox, gt_mask = modellib.load_image_gt(val, InferenceConfig(), 0,
                                                                              use_mini_mask=False)
    (r,) = inference.detect([image], verbose=1)
    assert set(r) == {"rois", "class_ids", "scores", "masks"}
    assert r["masks"].shape[:2] == image.shape[:2]
    # detect_molded on the same image gives the same detections.
    molded, metas, _ = inference.mold_inputs([image])
    (again,) = inference.detect_molded(molded, metas)
    np.testing.assert_array_equal(again["rois"], r["rois"])
    np.testing.assert_array_equal(again["class_ids"], r["class_ids"])

    # The shapes notebook's evaluation: utils.compute_ap over a few images, averaged.
    aps = []
    for image_id in val.image_ids:
        image, image_meta, gt_class_id, gt_bbox, gt_mask = modellib.load_image_gt(
            val, InferenceConfig(), image_id, use_mini_mask=False)
        r = inference.detect([image], verbose=0)[0]
        ap, precisions, recalls, overlaps = utils.compute_ap(gt_bbox, gt_class_id, gt_mask, r["rois"],
                                                              r["class_ids"], r["scores"], r["masks"])
        assert overlaps.shape == (len(r["class_ids"]), len(gt_class_id))
        assert len(precisions) == len(recalls) == len(r["class_ids"]) + 2  # with matterport's padding
        aps.append(ap)
    assert len(aps) == 4 and all(np.isfinite(aps))

    # ... and its picture of the detections, into a figure of our own.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, figsize=(4, 4))
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], val.class_names, r["scores"], ax=ax)
    assert len(ax.texts) == len(r["class_ids"])  # one caption per detection
    plt.close(fig)


def test_load_image_gt_returns_matterports_five_values(shapes):
    _, val = shapes
    config = InferenceConfig()
    image, image_meta, class_ids, bbox, mask = modellib.load_image_gt(val, config, 1, use_mini_mask=False)
    meta = modellib.parse_image_meta(image_meta[None])
    assert image.shape == (SIDE, SIDE, 3) and image.dtype == np.uint8
    assert image_meta.shape == (config.IMAGE_META_SIZE,) and int(meta["image_id"][0]) == 1
    assert mask.shape == (SIDE, SIDE, len(class_ids)) and mask.dtype == bool
    expected_masks, expected_ids = val.load_mask(1)
    np.testing.assert_array_equal(class_ids, expected_ids)
    np.testing.assert_array_equal(mask, expected_masks)  # 64 x 64 images: no resizing
    for k, (y1, x1, y2, x2) in enumerate(bbox):  # tight boxes with exclusive ends
        rows, cols = np.where(mask[:, :, k])
        assert (y1, x1, y2, x2) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    _, _, _, _, mini = modellib.load_image_gt(val, ShapesConfig(), 1, use_mini_mask=True)
    assert mini.shape == (14, 14, len(class_ids))


def test_log_prints_name_shape_range_and_dtype(capsys):
    modellib.log("image", np.array([[1.5, -2.0]], np.float32))
    modellib.log("empty", np.zeros((0, 4)))
    modellib.log("just text")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("image") and "shape: (1, 2)" in lines[0]
    assert "min:   -2.00000" in lines[0] and "max:    1.50000" in lines[0] and lines[0].endswith("float32")
    assert "shape: (0, 4)" in lines[1] and lines[2] == "just text"


def test_run_graph_returns_named_intermediate_outputs(trained, shapes):
    _, val = shapes
    inference = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir="unused")
    km = inference.keras_model
    values = inference.run_graph([val.load_image(0)], [
        ("proposals", km.get_layer("ROI").output),
        ("detections", km.get_layer("mrcnn_detection").output),
        ("masks", km.get_layer("mrcnn_mask").output),  # inspect_model's cells, in matterport's layout
        ("class_logits", km.get_layer("mrcnn_class_logits").output),
    ])
    assert list(values) == ["proposals", "detections", "masks", "class_logits"]
    config = InferenceConfig()
    assert values["proposals"].shape == (1, config.POST_NMS_ROIS_INFERENCE, 4)
    assert values["detections"].shape == (1, config.DETECTION_MAX_INSTANCES, 6)
    assert values["masks"].shape == (1, config.DETECTION_MAX_INSTANCES, 28, 28, config.NUM_CLASSES)
    assert values["class_logits"].shape == (1, config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES)


def test_anchors_ancestor_and_verbose_detect_as_the_inspect_notebooks_use_them(shapes, capsys):
    _, val = shapes
    inference = modellib.MaskRCNN(mode="inference", config=InferenceConfig(), model_dir="unused")
    inference.detect([val.load_image(0)], verbose=1)
    printed = capsys.readouterr().out
    assert "Processing 1 images" in printed and "molded_images" in printed and "anchors" in printed
    normalized = inference.get_anchors((SIDE, SIDE))
    assert inference.anchors.shape == normalized.shape  # the same anchors in pixels of the molded image
    np.testing.assert_allclose(utils.norm_boxes(inference.anchors, (SIDE, SIDE)), normalized, atol=1e-6)
    rpn_class = inference.keras_model.get_layer("rpn_class").output
    detections = inference.keras_model.get_layer("mrcnn_detection").output
    assert inference.ancestor(detections, "ROI") is inference.keras_model.get_layer("ROI").output
    assert inference.ancestor(detections, "ROI/rpn_non_max_suppression:0") is None  # an op inside a layer
    assert inference.ancestor(rpn_class, "mrcnn_detection") is None  # not an input of rpn_class


def test_data_generator_with_random_rois_and_detection_targets_as_inspect_data_uses_it(shapes):
    train, _ = shapes
    config = ShapesConfig()
    generator = modellib.data_generator(train, config, shuffle=True, random_rois=2000, batch_size=config.BATCH_SIZE,
                                        detection_targets=True, seed=1)
    [images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, rpn_rois, rois], \
        [mrcnn_class_ids, mrcnn_bbox, mrcnn_mask] = next(generator)
    rows = config.TRAIN_ROIS_PER_IMAGE
    assert rpn_rois.shape == (2, 2000, 4) and rois.shape == (2, rows, 4)
    assert mrcnn_class_ids.shape == (2, rows, 1)
    assert mrcnn_bbox.shape == (2, rows, config.NUM_CLASSES, 4)
    assert mrcnn_mask.shape == (2, rows, 28, 28, config.NUM_CLASSES)
    found = 0
    for b in range(2):
        ids = mrcnn_class_ids[b, :, 0]
        positives = np.flatnonzero(ids > 0)
        found += positives.size
        assert set(ids[positives]) <= set(gt_class_ids[b][gt_class_ids[b] > 0])
        if positives.size:  # each overlaps a ground-truth box at IoU >= 0.5, as the notebook checks
            overlaps = utils.compute_overlaps(rois[b][positives].astype(float),
                                              gt_boxes[b][gt_class_ids[b] > 0].astype(float))
            assert (overlaps.max(axis=1) >= 0.5).all()
        # The notebook's class-aware picks: the deltas and the mask of each ROI's own class, zero for negatives.
        specific = mrcnn_bbox[b, np.arange(rows), ids]
        masks = mrcnn_mask[b, np.arange(rows), :, :, ids]
        assert not np.abs(mrcnn_bbox[b][ids == 0]).any() and not masks[ids == 0].any()
        assert all(np.abs(specific[k]).sum() > 0 and masks[k].any() for k in positives)
    assert found > 0


def test_set_trainable_and_trainable_layers(trained):
    model, _ = trained
    names = model.set_trainable(r"mrcnn\_mask.*", verbose=0)
    assert names and all(n.startswith("mrcnn_mask") for n in names)
    heads = model.set_trainable("heads", verbose=0)
    assert "rpn_model" not in heads and "rpn_conv_shared" in heads and "res2a_branch2a" not in heads
    layers = [layer.name for layer in model.get_trainable_layers()]
    assert "rpn_model" in layers and "conv1" in layers and "fpn_p2" in layers
    compiled = model.compile(learning_rate=0.001, momentum=0.9)
    assert compiled.optimizer.learning_rate.numpy() == pytest.approx(0.001)


def write_via_project(folder, rng):
    """A VIA annotation file (the balloon sample's format) with polygons, and its images."""
    regions_by_file = {}
    for i in range(4):
        name = f"photo_{i}.png"
        image = np.full((48, 64, 3), 30, np.uint8)
        cy, cx = (int(v) for v in rng.integers(16, 32, 2))
        xs, ys = [cx - 10, cx + 10, cx + 6, cx - 6], [cy - 8, cy - 8, cy + 10, cy + 10]
        rr, cc = skimage.draw.polygon(ys, xs, image.shape[:2])
        image[rr, cc] = (220, 40, 40)
        skimage.io.imsave(folder / name, image, check_contrast=False)
        regions_by_file[f"{name}1234"] = {"filename": name, "size": 1234, "regions": [
            {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
             "region_attributes": {}}]}
    (folder / "via_region_data.json").write_text(json.dumps(regions_by_file))


def test_a_balloon_style_dataset_from_a_via_file(tmp_path):
    from mrcnn.data import Dataset

    class BalloonDataset(Dataset):
        def load_balloon(self, folder):
            self.add_class("balloon", 1, "balloon")
            annotations = json.loads((folder / "via_region_data.json").read_text())
            for a in annotations.values():
                polygons = [r["shape_attributes"] for r in a["regions"]]
                height, width = skimage.io.imread(folder / a["filename"]).shape[:2]
                self.add_image("balloon", image_id=a["filename"], path=str(folder / a["filename"]),
                               width=width, height=height, polygons=polygons)

        def load_mask(self, image_id):
            info = self.image_info[image_id]
            mask = np.zeros([info["height"], info["width"], len(info["polygons"])], dtype=np.uint8)
            for i, p in enumerate(info["polygons"]):
                rr, cc = skimage.draw.polygon(p["all_points_y"], p["all_points_x"], mask.shape[:2])
                mask[rr, cc, i] = 1
            return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    write_via_project(tmp_path, np.random.default_rng(0))
    dataset = BalloonDataset()
    dataset.load_balloon(tmp_path)
    dataset.prepare()
    assert dataset.num_images == 4 and dataset.class_names == ["BG", "balloon"]
    image = dataset.load_image(0)
    masks, class_ids = dataset.load_mask(0)
    assert image.shape == (48, 64, 3) and masks.shape == (48, 64, 1) and list(class_ids) == [1]
    assert (image[masks[:, :, 0]] == (220, 40, 40)).all()  # the polygon is where the balloon was drawn
    from mrcnn.data.pipeline import build_training_dataset

    config = ShapesConfig()
    batch = next(iter(build_training_dataset(dataset, config, augment=None, seed=0)))
    assert batch["input_gt_class_ids"].numpy()[:, 0].tolist() == [1, 1]
