"""matterport's augmentation semantics in the tf.data pipeline and in load_image_gt.

``augmentation=None`` means none; an imgaug-style augmenter (``to_deterministic()`` + ``augment_image``)
moves image and masks together, but only the augmenters matterport lets touch masks change the masks;
``no_augmentation_sources`` keeps a source's images as they are. imgaug itself does not import with
NumPy 2, so the augmenters here are small objects of the same protocol, named like imgaug's classes.
"""
from __future__ import annotations

import numpy as np
import pytest

from mrcnn.config import config_from_dict
from mrcnn.data import Dataset
from mrcnn.data.augmentation import augment_image_and_masks
from mrcnn.data.pipeline import build_training_dataset, build_validation_dataset
from mrcnn.model import load_image_gt

SIDE = 64


class Fliplr:
    """A left-right flip, always (imgaug's Fliplr(1.0)); follows imgaug's hooks protocol."""

    def to_deterministic(self):
        return self

    def augment_image(self, image, hooks=None):
        if hooks is not None and not hooks.is_activated([image], self, [], True):
            return image
        return np.ascontiguousarray(image[:, ::-1])


class Multiply:
    """Brightness times 0.5 (imgaug's Multiply): changes pixels, never masks."""

    def to_deterministic(self):
        return self

    def augment_image(self, image, hooks=None):
        if hooks is not None and not hooks.is_activated([image], self, [], True):
            return image
        return (image * 0.5).astype(image.dtype)


class Sequential:
    """Applies its children in order (imgaug's Sequential); draws once per image in to_deterministic()."""

    def __init__(self, children):
        self.children = children

    def to_deterministic(self):
        return Sequential([c.to_deterministic() for c in self.children])

    def augment_image(self, image, hooks=None):
        for child in self.children:
            image = child.augment_image(image, hooks=hooks)
        return image


class Rectangles(Dataset):
    """Left-heavy rectangles (so a flip is visible), from two sources."""

    def __init__(self):
        super().__init__()
        for source in ("plain", "special"):
            self.add_class(source, 1, "box")
        for i in range(4):
            self.add_image("plain" if i % 2 == 0 else "special", i, path=None, width=SIDE, height=SIDE)

    def load_image(self, image_id):
        image = np.zeros((SIDE, SIDE, 3), np.uint8)
        image[10:30, 4:20] = (200, 100, 50 + 10 * image_id)
        return image

    def load_mask(self, image_id):
        mask = np.zeros((SIDE, SIDE, 1), bool)
        mask[10:30, 4:20, 0] = True
        class_id = self.map_source_class_id(f"{self.image_info[image_id]['source']}.1")
        return mask, np.array([class_id], np.int32)


def config():
    return config_from_dict(dict(NAME="aug", NUM_CLASSES=3, IMAGE_MIN_DIM=SIDE, IMAGE_MAX_DIM=SIDE, IMAGES_PER_GPU=1,
                                 BACKBONE="resnet18_half", USE_MINI_MASK=False, MAX_GT_INSTANCES=2))


@pytest.fixture(scope="module")
def dataset():
    ds = Rectangles()
    ds.prepare()
    return ds


def images_and_masks(dataset, **options):
    batches = build_training_dataset(dataset, config(), shuffle=False, seed=0, **options)
    out = []
    for batch in batches.take(len(dataset.image_ids)):
        out.append((batch["input_image"].numpy()[0], batch["input_gt_masks"].numpy()[0, :, :, 0],
                    batch["input_gt_boxes"].numpy()[0, 0]))
    return out


def test_no_augmentation_by_default_is_the_validation_pipeline(dataset):
    plain = images_and_masks(dataset, augment=None)
    reference = [(b["input_image"].numpy()[0], b["input_gt_masks"].numpy()[0, :, :, 0])
                 for b in build_validation_dataset(dataset, config())]
    for (image, mask, _), (ref_image, ref_mask) in zip(plain, reference):
        np.testing.assert_array_equal(image, ref_image)
        np.testing.assert_array_equal(mask, ref_mask)


def test_an_imgaug_style_flip_moves_image_masks_and_boxes_together(dataset):
    plain = images_and_masks(dataset, augment=None)
    flipped = images_and_masks(dataset, augment=Sequential([Fliplr()]))
    for (image, mask, box), (f_image, f_mask, f_box) in zip(plain, flipped):
        np.testing.assert_array_equal(f_image, image[:, ::-1])
        np.testing.assert_array_equal(f_mask, mask[:, ::-1])
        y1, x1, y2, x2 = box
        np.testing.assert_array_equal(f_box, [y1, SIDE - x2, y2, SIDE - x1])


def test_augmenters_matterport_keeps_off_masks_change_only_the_image(dataset):
    plain = images_and_masks(dataset, augment=None)
    darker = images_and_masks(dataset, augment=Multiply())
    for (image, mask, _), (d_image, d_mask, _) in zip(plain, darker):
        np.testing.assert_array_equal(d_mask, mask)
        assert not np.array_equal(d_image, image)


def test_no_augmentation_sources_are_left_as_they_are(dataset):
    plain = images_and_masks(dataset, augment=None)
    some = images_and_masks(dataset, augment=Fliplr(), no_augmentation_sources=["special"])
    for image_id, ((image, mask, _), (s_image, s_mask, _)) in enumerate(zip(plain, some)):
        if dataset.image_info[image_id]["source"] == "special":
            np.testing.assert_array_equal(s_image, image)
        else:
            np.testing.assert_array_equal(s_mask, mask[:, ::-1])
    # fseg's built-in augmentation honours the list too.
    from mrcnn.data.augmentation import Augmentation

    always = Augmentation(flip_probability=1.0, scale_range=(1.0, 1.0), brightness=0.0, contrast_range=(1.0, 1.0))
    built_in = images_and_masks(dataset, augment=always, no_augmentation_sources=["special"])
    for image_id, ((image, _, _), (b_image, _, _)) in enumerate(zip(plain, built_in)):
        expected = image if dataset.image_info[image_id]["source"] == "special" else image[:, ::-1]
        np.testing.assert_array_equal(b_image, expected)


def test_load_image_gt_applies_an_augmenter_like_matterport(dataset):
    image, _, class_ids, bbox, mask = load_image_gt(dataset, config(), 0, augmentation=Fliplr())
    np.testing.assert_array_equal(image, dataset.load_image(0)[:, ::-1])
    assert tuple(bbox[0]) == (10, SIDE - 20, 30, SIDE - 4) and mask[:, :, 0].sum() == 20 * 16


def test_an_augmenter_that_resizes_is_refused():
    class Crop:
        def to_deterministic(self):
            return self

        def augment_image(self, image, hooks=None):
            return image[1:]

    with pytest.raises(ValueError, match="changed the image size"):
        augment_image_and_masks(Crop(), np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 1), bool))
    with pytest.raises(TypeError, match="augmentation must be"):
        build_training_dataset(Rectangles(), config(), augment="flip")
