"""mrcnn.data.dataset: matterport's Dataset API (classes, images, id maps, loading)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from mrcnn.data.dataset import Dataset, clean_class_name
from mrcnn.ops.masks import resize_mask_nearest


class TwoSourceDataset(Dataset):
    """Two sources ("shapes": 2 classes, "coco": 1 class) and three images."""

    def build(self, image_path=None):
        self.add_class("shapes", 1, "square")
        self.add_class("shapes", 2, "circle, round thing")
        self.add_class("coco", 7, "person")
        self.add_class("shapes", 1, "square again")  # duplicate (source, id): ignored
        self.add_image("shapes", 10, image_path, width=4, height=4)
        self.add_image("coco", 42, "/nowhere/42.jpg")
        self.add_image("shapes", 11, None)
        self.prepare()
        return self


class CheckerDataset(Dataset):
    """One image whose only mask is a 4 x 4 checkerboard; class 1."""

    def load_mask(self, image_id):
        checker = (np.add.outer(np.arange(4), np.arange(4)) % 2 == 0)
        return checker[:, :, None], np.array([1], dtype=np.int32)


def test_prepare_numbers_classes_and_images():
    ds = TwoSourceDataset().build()
    assert ds.num_classes == 4  # BG + 3, the duplicate ignored
    assert list(ds.class_ids) == [0, 1, 2, 3]
    assert ds.class_names == ["BG", "square", "circle", "person"]  # clean names: text before the comma
    assert ds.num_images == 3
    assert list(ds.image_ids) == [0, 1, 2]
    assert ds.sources == ["", "coco", "shapes"]
    assert ds.image_info[1]["path"] == "/nowhere/42.jpg"
    assert ds.image_info[0]["width"] == 4  # extra add_image keys are kept


def test_source_and_internal_class_ids_map_both_ways():
    ds = TwoSourceDataset().build()
    assert ds.map_source_class_id("shapes.2") == 2
    assert ds.map_source_class_id("coco.7") == 3
    assert ds.get_source_class_id(3, "coco") == 7
    with pytest.raises(ValueError, match="source 'coco'"):
        ds.get_source_class_id(3, "shapes")
    with pytest.raises(KeyError):
        ds.map_source_class_id("coco.8")
    assert ds.image_from_source_map["coco.42"] == 1


def test_source_class_ids_include_background_and_give_active_flags():
    ds = TwoSourceDataset().build()
    assert ds.source_class_ids["shapes"] == [0, 1, 2]
    assert ds.source_class_ids["coco"] == [0, 3]
    assert list(ds.active_class_ids(0)) == [1, 1, 1, 0]
    assert list(ds.active_class_ids(1)) == [1, 0, 0, 1]


def test_source_with_a_dot_is_rejected():
    with pytest.raises(ValueError, match="dot"):
        Dataset().add_class("my.source", 1, "x")


def test_load_image_reads_rgb_from_path(tmp_path):
    pixels = np.zeros((4, 4), dtype=np.uint8)
    pixels[1, 2] = 200
    path = tmp_path / "gray.png"
    Image.fromarray(pixels, mode="L").save(path)
    ds = TwoSourceDataset().build(image_path=path)
    image = ds.load_image(0)
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert list(image[1, 2]) == [200, 200, 200]  # grayscale expanded to 3 equal channels
    assert image.sum() == 600


def test_base_load_mask_is_empty_with_a_warning(caplog):
    ds = TwoSourceDataset().build()
    with caplog.at_level(logging.WARNING):
        masks, class_ids = ds.load_mask(0)
    assert masks.shape == (0, 0, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    assert "not overridden" in caplog.text
    assert ds.image_reference(0) == ""
    masks, class_ids = ds.load_mask_resized(0, 5, 6)
    assert masks.shape == (5, 6, 0)


def test_load_mask_resized_doubles_each_pixel():
    ds = CheckerDataset()
    ds.add_class("toy", 1, "cell")
    ds.add_image("toy", 0, None)
    ds.prepare()
    masks, class_ids = ds.load_mask_resized(0, 8, 8)
    checker = (np.add.outer(np.arange(4), np.arange(4)) % 2 == 0)
    expected = np.repeat(np.repeat(checker, 2, axis=0), 2, axis=1)  # every pixel becomes a 2 x 2 block
    assert masks.shape == (8, 8, 1)
    np.testing.assert_array_equal(masks[:, :, 0], expected)
    assert list(class_ids) == [1]


def test_resize_mask_nearest_downsamples_by_pixel_centres():
    mask = np.zeros((6, 6, 1), dtype=bool)
    mask[3:6, 0:3, 0] = True  # bottom-left 3 x 3 quadrant
    small = resize_mask_nearest(mask, 2, 2)
    np.testing.assert_array_equal(small[:, :, 0], [[False, False], [True, False]])


def test_clean_class_name():
    assert clean_class_name("person, human being") == "person"
    assert clean_class_name("short_sleeved_shirt") == "short_sleeved_shirt"
