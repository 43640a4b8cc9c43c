"""mrcnn.data: the tf.data training pipeline (shapes, geometry, augmentation, determinism, targets)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mrcnn.data.coco import CocoDataset
from mrcnn.config import Config
from mrcnn.data.augmentation import NO_AUGMENTATION, Augmentation
from mrcnn.data.pipeline import build_training_dataset, build_validation_dataset
from mrcnn.ops.masks import extract_bboxes_graph as extract_boxes
from mrcnn.data.dataset import Dataset, DatasetError
from mrcnn.ops.image_meta import parse_image_meta
from mrcnn.ops.masks import expand_mask, minimize_mask
from mrcnn.ops.resize import resize_image, resize_mask

KEYS = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox", "input_gt_class_ids",
        "input_gt_boxes", "input_gt_masks")


class SmallConfig(Config):
    NAME = "small"
    NUM_CLASSES = 3  # BG, shirt, trousers
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    MAX_GT_INSTANCES = 10
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64


def make_config(**overrides):
    return type("TestConfig", (SmallConfig,), overrides)()


def rectangle(x1, y1, x2, y2):
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def smooth_image(height, width, seed):
    """An RGB image with gentle gradients and a little texture (PNG, so exact on reading)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([yy * 200 / height, xx * 200 / width, (yy + xx) % 50 * 4], axis=-1)
    return np.clip(image + rng.integers(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


# Image (height, width) and annotations as (category, iscrowd, polygons).
IMAGES = {
    1: ((60, 100), [(1, 0, [rectangle(10, 5, 40, 50), rectangle(30, 10, 60, 20)]),  # overlapping polygons
                    (2, 0, [rectangle(70, 20, 95, 55)]),
                    (2, 1, [rectangle(0, 0, 8, 8)])]),  # a crowd region
    2: ((90, 70), [(1, 0, [[5, 5, 60, 8, 40, 80, 10, 70]])]),
    3: ((50, 50), []),  # no instances: kept as background
    4: ((100, 100), [(2, 0, [rectangle(8, 8, 92, 92)])]),  # one large box
}


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    """(annotations path, image folder) of the four IMAGES as PNGs."""
    root = tmp_path_factory.mktemp("pipeline")
    (root / "images").mkdir()
    images, annotations = [], []
    for image_id, ((height, width), anns) in IMAGES.items():
        name = f"{image_id:06d}.png"
        Image.fromarray(smooth_image(height, width, image_id)).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for category, crowd, polygons in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "iscrowd": crowd, "segmentation": polygons})
    categories = [{"id": 1, "name": "shirt"}, {"id": 2, "name": "trousers"}]
    path = root / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, root / "images"


@pytest.fixture(scope="module")
def dataset(coco_files):
    ds = CocoDataset()
    ds.load_coco(*coco_files, class_names=["BG", "shirt", "trousers"])
    ds.prepare()
    return ds


def batches(tf_dataset, count=None):
    """Batches as dicts of NumPy arrays."""
    source = tf_dataset if count is None else tf_dataset.take(count)
    return [{k: v.numpy() for k, v in batch.items()} for batch in source]


def per_image(batch_list):
    """The batches split into one dict per image."""
    return [{k: v[i] for k, v in b.items()} for b in batch_list for i in range(len(b["input_image"]))]


def matterport_reference(dataset, config, image_id):
    """resize_image / resize_mask / boxes of the existing NumPy (matterport-exact) implementation."""
    image = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    resized, window, scale, padding, crop = resize_image(image, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM,
                                                         config.IMAGE_MIN_SCALE, config.IMAGE_RESIZE_MODE)
    masks = resize_mask(masks, scale, padding, crop)
    return resized, window, scale, masks, class_ids


def test_shapes_dtypes_and_value_ranges(dataset):
    config = make_config()
    batch = batches(build_training_dataset(dataset, config, seed=1), 1)[0]
    anchors = 3 * sum(int(np.ceil(128 / s)) ** 2 for s in (4, 8, 16, 32, 64))
    expected = {
        "input_image": ((2, 128, 128, 3), np.float32), "input_image_meta": ((2, 12 + 3), np.float32),
        "input_rpn_match": ((2, anchors, 1), np.int32), "input_rpn_bbox": ((2, 64, 4), np.float32),
        "input_gt_class_ids": ((2, 10), np.int32), "input_gt_boxes": ((2, 10, 4), np.float32),
        "input_gt_masks": ((2, 56, 56, 10), np.bool_),
    }
    assert set(batch) == set(KEYS)
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape, key
        assert batch[key].dtype == dtype, key
    mean = np.array(config.MEAN_PIXEL, np.float32)
    assert np.all(batch["input_image"] >= -mean - 1e-3) and np.all(batch["input_image"] <= 255 - mean + 1e-3)
    assert set(np.unique(batch["input_rpn_match"])) <= {-1, 0, 1}
    assert set(np.unique(batch["input_gt_class_ids"])) <= {-2, -1, 0, 1, 2}
    boxes = batch["input_gt_boxes"]
    real = batch["input_gt_class_ids"] != 0
    assert np.all(boxes[real][:, 2] > boxes[real][:, 0]) and np.all(boxes[real][:, 3] > boxes[real][:, 1])
    assert np.all(boxes >= 0) and np.all(boxes <= 128) and np.all(boxes == np.round(boxes))
    assert not boxes[~real].any() and not batch["input_gt_masks"][:, :, :, ~real[0]][0].any()


def test_validation_matches_matterport_resize_and_boxes(dataset):
    """No augmentation: window, scale and boxes equal the NumPy reference's; pixels nearly equal."""
    config = make_config(USE_MINI_MASK=False)
    images = per_image(batches(build_validation_dataset(dataset, config)))
    assert len(images) == 4  # 4 images, batch 2: nothing dropped
    for image_id, got in enumerate(images):
        resized, window, scale, masks, class_ids = matterport_reference(dataset, config, image_id)
        meta = parse_image_meta(got["input_image_meta"])
        assert meta["image_id"] == image_id
        assert list(meta["original_image_shape"]) == list(dataset.load_image(image_id).shape)
        assert list(meta["image_shape"]) == [128, 128, 3]
        assert tuple(meta["window"]) == tuple(window)
        assert meta["scale"] == pytest.approx(scale, rel=1e-6)
        assert list(meta["active_class_ids"]) == [1, 1, 1]
        y1, x1, y2, x2 = window
        ours = got["input_image"] + np.array(config.MEAN_PIXEL, np.float32)
        assert np.all(ours[:y1] == 0) and np.all(ours[y2:] == 0)  # padding is black before molding
        inner = (slice(y1 + 2, y2 - 2), slice(x1 + 2, x2 - 2))  # borders differ: skimage blends with 0
        assert np.abs(ours[inner] - resized[inner]).mean() < 1.5
        count = int((got["input_gt_class_ids"] != 0).sum())
        assert count == masks.shape[-1]
        np.testing.assert_array_equal(got["input_gt_class_ids"][:count], class_ids)
        for i in range(count):
            reference_box = _numpy_box(masks[:, :, i])
            assert np.abs(got["input_gt_boxes"][i] - reference_box).max() <= 1  # raster vs zoom: 1 px
            ours_mask, theirs = got["input_gt_masks"][:, :, i], masks[:, :, i]
            assert (ours_mask & theirs).sum() / (ours_mask | theirs).sum() > 0.85


def _numpy_box(mask):
    rows, cols = np.where(mask.any(axis=1))[0], np.where(mask.any(axis=0))[0]
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def test_boxes_come_from_masks_with_exclusive_ends():
    masks = np.zeros((10, 12, 3), dtype=bool)
    masks[2:5, 3:9, 0] = True
    masks[9, 11, 1] = True  # one pixel in the last row and column
    boxes, present = extract_boxes(tf.constant(masks))
    np.testing.assert_array_equal(boxes.numpy(), [[2, 3, 5, 9], [9, 11, 10, 12], [0, 0, 0, 0]])
    np.testing.assert_array_equal(present.numpy(), [True, True, False])


def test_horizontal_flip_moves_image_masks_and_boxes_together(dataset):
    config = make_config(USE_MINI_MASK=False)
    flip_only = Augmentation(flip_probability=1.0, scale_range=(1.0, 1.0), brightness=0.0, contrast_range=(1.0, 1.0))
    plain = per_image(batches(build_training_dataset(dataset, config, augment=NO_AUGMENTATION, shuffle=False,
                                                     seed=4), 2))
    flipped = per_image(batches(build_training_dataset(dataset, config, augment=flip_only, shuffle=False,
                                                       seed=4), 2))
    for a, b in zip(plain, flipped):
        y1, x1, y2, x2 = parse_image_meta(a["input_image_meta"])["window"]
        assert tuple(parse_image_meta(b["input_image_meta"])["window"]) == (y1, x1, y2, x2)
        np.testing.assert_array_equal(b["input_image"][y1:y2, x1:x2], a["input_image"][y1:y2, x1:x2][:, ::-1])
        count = int((a["input_gt_class_ids"] != 0).sum())
        np.testing.assert_array_equal(a["input_gt_class_ids"], b["input_gt_class_ids"])
        for i in range(count):
            mask_a, mask_b = a["input_gt_masks"][:, :, i], b["input_gt_masks"][:, :, i]
            np.testing.assert_array_equal(mask_b[:, x1:x2], mask_a[:, x1:x2][:, ::-1])
            ay1, ax1, ay2, ax2 = a["input_gt_boxes"][i]
            # Mirror inside the window: column c -> x1 + x2 - 1 - c, so exclusive ends swap.
            np.testing.assert_array_equal(b["input_gt_boxes"][i], [ay1, x1 + x2 - ax2, ay2, x1 + x2 - ax1])


def test_mini_masks_round_trip_to_full_masks(dataset):
    full = per_image(batches(build_validation_dataset(dataset, make_config(USE_MINI_MASK=False))))
    mini = per_image(batches(build_validation_dataset(dataset, make_config(USE_MINI_MASK=True))))
    checked = 0
    for f, m in zip(full, mini):
        np.testing.assert_array_equal(f["input_gt_boxes"], m["input_gt_boxes"])
        count = int((f["input_gt_class_ids"] != 0).sum())
        if count == 0:
            continue
        boxes = f["input_gt_boxes"][:count].astype(np.int32)
        full_masks = f["input_gt_masks"][:, :, :count]
        mini_masks = m["input_gt_masks"][:, :, :count]
        # Same as the NumPy minimize_mask (crop to box, bilinear, round), up to float32 ties at 0.5.
        reference = minimize_mask(boxes, full_masks, (56, 56))
        assert (reference == mini_masks).mean() > 0.999
        expanded = expand_mask(boxes, mini_masks, (128, 128))
        for i in range(count):
            inter = (expanded[:, :, i] & full_masks[:, :, i]).sum()
            assert inter / (expanded[:, :, i] | full_masks[:, :, i]).sum() > 0.9
            checked += 1
    assert checked == 5


def test_same_seed_same_batches_other_seed_other_batches(dataset):
    config = make_config()
    first = batches(build_training_dataset(dataset, config, seed=7), 4)
    again = batches(build_training_dataset(dataset, config, seed=7), 4)
    other = batches(build_training_dataset(dataset, config, seed=8), 4)
    for a, b in zip(first, again):
        for key in KEYS:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert any(not np.array_equal(a["input_image"], c["input_image"]) for a, c in zip(first, other))


def test_shuffle_and_repeat_cover_every_image_each_epoch(dataset):
    config = make_config()
    ids = [int(parse_image_meta(img["input_image_meta"])["image_id"])
           for img in per_image(batches(build_training_dataset(dataset, config, seed=3), 4))]
    assert sorted(ids[:4]) == [0, 1, 2, 3] and sorted(ids[4:]) == [0, 1, 2, 3]
    assert ids[:4] != ids[4:] or ids[:4] != [0, 1, 2, 3]  # reshuffled (or at least not in file order)


def test_rpn_match_has_positives_for_a_large_box(dataset):
    images = per_image(batches(build_validation_dataset(dataset, make_config())))
    large = images[3]  # image 4: one 84 x 84 px box in a 100 x 100 image
    match = large["input_rpn_match"][:, 0]
    assert (match == 1).sum() >= 1
    assert (match == -1).sum() >= 1
    positives = int((match == 1).sum())
    assert np.any(large["input_rpn_bbox"][:positives] != 0)
    assert not np.any(large["input_rpn_bbox"][positives:])
    empty = images[2]  # image 3, no instances: nothing positive
    assert (empty["input_rpn_match"] == 1).sum() == 0
    assert not empty["input_gt_class_ids"].any()


def test_crowd_region_is_kept_with_a_negative_class(dataset):
    first = per_image(batches(build_validation_dataset(dataset, make_config())))[0]
    assert sorted(first["input_gt_class_ids"][:3].tolist()) == [-2, 1, 2]


def test_at_most_max_gt_instances_random_subset_in_training(dataset):
    config = make_config(MAX_GT_INSTANCES=2)
    first = per_image(batches(build_validation_dataset(dataset, config)))[0]
    np.testing.assert_array_equal(first["input_gt_class_ids"], [1, 2])  # validation: the first two
    seen = set()
    for seed in range(6):
        image = per_image(batches(build_training_dataset(dataset, config, shuffle=False, seed=seed,
                                                         augment=False), 1))[0]
        assert (image["input_gt_class_ids"] != 0).sum() == 2
        seen.add(tuple(image["input_gt_class_ids"]))
    assert len(seen) > 1  # different subsets of the three instances


def test_instances_cropped_away_are_dropped(dataset):
    """Crop mode on the 60 x 100 image: a centred 64 x 64 crop loses the crowd box at x 0..8."""
    config = make_config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128,
                         RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
    first = per_image(batches(build_validation_dataset(dataset, config)))[0]
    assert first["input_image"].shape == (64, 64, 3)
    meta = parse_image_meta(first["input_image_meta"])
    assert tuple(meta["window"]) == (0, 0, 64, 64)
    ids = first["input_gt_class_ids"]
    assert -2 not in ids  # scale 64/60: crop starts at x = (107 - 64) // 2 = 21 > 8.5
    assert sorted(ids[ids != 0].tolist()) == [1, 2]


def test_scale_jitter_and_colors_keep_boxes_on_their_masks(dataset):
    config = make_config(USE_MINI_MASK=False)
    augment = Augmentation(flip_probability=0.5, scale_range=(0.6, 1.6), brightness=0.2, contrast_range=(0.5, 1.5))
    for image in per_image(batches(build_training_dataset(dataset, config, augment=augment, seed=11), 6)):
        count = int((image["input_gt_class_ids"] != 0).sum())
        for i in range(count):
            np.testing.assert_array_equal(image["input_gt_boxes"][i], _numpy_box(image["input_gt_masks"][:, :, i]))
        window = parse_image_meta(image["input_image_meta"])["window"]
        outside = np.ones((128, 128), bool)
        outside[window[0]:window[2], window[1]:window[3]] = False
        assert not image["input_gt_masks"][outside].any()  # masks never reach into the padding


class InMemoryShapes(Dataset):
    """A Dataset without files: load_image is overridden (the pipeline then calls it in Python)."""

    def load_image(self, image_id):
        image = np.full((40, 80, 3), 30, np.uint8)
        image[10:30, 20:60] = 220
        return image

    def load_mask(self, image_id):
        mask = np.zeros((40, 80, 1), bool)
        mask[10:30, 20:60] = True
        return mask, np.array([1], np.int32)


def test_a_dataset_that_overrides_load_image_works():
    shapes = InMemoryShapes()
    shapes.add_class("shapes", 1, "box")
    for i in range(2):
        shapes.add_image("shapes", i, None)
    shapes.prepare()
    image = per_image(batches(build_validation_dataset(shapes, make_config(NUM_CLASSES=2))))[0]
    # 40 x 80 -> scale 128 / 80 = 1.6 -> 64 x 128, top padding 32; the box [10:30, 20:60] -> [48:80, 32:96].
    np.testing.assert_array_equal(image["input_gt_boxes"][0], [48, 32, 80, 96])
    assert image["input_gt_class_ids"][0] == 1


def test_bad_usage_errors(dataset):
    unprepared = CocoDataset()
    with pytest.raises(DatasetError, match="prepare"):
        build_training_dataset(unprepared, make_config())
    with pytest.raises(ValueError, match="square or crop"):
        build_training_dataset(dataset, make_config(IMAGE_RESIZE_MODE="pad64"))
    empty = Dataset()
    empty.prepare()
    with pytest.raises(DatasetError, match="no images"):
        build_validation_dataset(empty, make_config())


def test_converted_synthetic_split_feeds_the_pipeline(tmp_path):
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    generate_split(tmp_path / "split", 4, seed=5, workers=1, max_side=240)
    convert_split(tmp_path / "split", tmp_path / "train.json", workers=1)
    synthetic = CocoDataset()
    synthetic.load_coco(tmp_path / "train.json", tmp_path / "split" / "image")
    synthetic.prepare()
    config = make_config(NUM_CLASSES=14)
    coco = json.loads((tmp_path / "train.json").read_text())
    for image in per_image(batches(build_validation_dataset(synthetic, config))):
        info = synthetic.image_info[int(parse_image_meta(image["input_image_meta"])["image_id"])]
        expected = sorted(a["category_id"] for a in coco["annotations"] if a["image_id"] == info["id"])
        assert sorted(image["input_gt_class_ids"][image["input_gt_class_ids"] != 0].tolist()) == expected


def test_augmentation_settings_are_checked():
    with pytest.raises(ValueError, match="flip_probability"):
        Augmentation(flip_probability=1.5)
    with pytest.raises(ValueError, match="scale_range"):
        Augmentation(scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="brightness"):
        Augmentation(brightness=-0.1)


def test_image_size_differing_from_the_annotation_is_warned(tmp_path, caplog):
    Image.fromarray(smooth_image(40, 60, 0)).save(tmp_path / "a.png")  # the file is 60 x 40 ...
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 20}],  # ... the file says 30 x 20
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [rectangle(0, 0, 15, 10)]}],
            "categories": [{"id": 1, "name": "shirt"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    ds = CocoDataset()
    ds.load_coco(tmp_path / "c.json", tmp_path)
    ds.prepare()
    with caplog.at_level("WARNING", logger="mrcnn.data"):
        image = per_image(batches(build_validation_dataset(ds, make_config(NUM_CLASSES=2, IMAGES_PER_GPU=1))))[0]
    assert "is 60x40 pixels but its annotations say 30x20" in caplog.text
    # 60 x 40 -> scale 128 / 60: 85 x 128, top padding 21; the polygon covers the top-left quarter of the image.
    np.testing.assert_array_equal(image["input_gt_boxes"][0], [21, 0, 21 + 43, 64])
