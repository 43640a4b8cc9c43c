"""mrcnn.data.coco.CocoDataset on small hand-written COCO files and on a converted synthetic split."""
from __future__ import annotations

import json
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from conftest import REPO
from mrcnn.config import load_config
from mrcnn.data.coco import CocoDataset
from mrcnn.data.dataset import DatasetError

HEIGHT, WIDTH = 30, 40


def rectangle(x1, y1, x2, y2):
    """A closed polygon (first vertex repeated), as DeepFashion2 writes them."""
    return [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]


CATEGORIES = [
    {"id": 1, "name": "short_sleeved_shirt", "supercategory": "clothes", "df2_name": "short sleeve top"},
    {"id": 2, "name": "trousers", "supercategory": "clothes", "df2_name": "trousers"},
]


def write_coco(tmp_path, *, categories=CATEGORIES, images=None, annotations=None):
    """A COCO file + image folder: image 1 on disk with annotations, 2 missing on disk, 3 on disk with none."""
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    for name in ("000001.png", "000003.png"):
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 90, np.uint8)).save(image_dir / name)
    if images is None:
        images = [{"id": n, "file_name": f"00000{n}.png", "width": WIDTH, "height": HEIGHT} for n in (1, 2, 3)]
    if annotations is None:
        annotations = [
            # An item with an outline and a second polygon overlapping it (DeepFashion2 style): union mask.
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": [rectangle(5, 5, 25, 25), rectangle(15, 5, 35, 15)]},
            # A crowd region, as an uncompressed RLE of a 10 x 10 block at rows 18..27, columns 28..37.
            {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 1, "segmentation": crowd_rle()},
            {"id": 3, "image_id": 2, "category_id": 2, "iscrowd": 0, "segmentation": [rectangle(1, 1, 9, 9)]},
        ]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, image_dir


def crowd_mask():
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[18:28, 28:38] = True
    return mask


def crowd_rle():
    """Uncompressed RLE (column-major run lengths starting with a zero run), built by hand."""
    flat = crowd_mask().flatten(order="F")
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": [HEIGHT, WIDTH], "counts": counts}


def load(path, image_dir, **kwargs):
    dataset = CocoDataset()
    dataset.load_coco(path, image_dir, **kwargs)
    dataset.prepare()
    return dataset


def test_overlapping_polygons_give_their_union(tmp_path):
    dataset = load(*write_coco(tmp_path))
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (HEIGHT, WIDTH, 2) and masks.dtype == bool
    expected = np.zeros((HEIGHT, WIDTH), dtype=bool)
    expected[5:25, 5:25] = True  # a pycocotools rectangle [x1, x2] covers pixel columns x1..x2-1
    expected[5:15, 15:35] = True
    np.testing.assert_array_equal(masks[:, :, 0], expected)
    assert masks[10, 20, 0]  # the overlap is inside (an even-odd fill would punch a hole there)
    assert masks[:, :, 0].sum() == 20 * 20 + 10 * 20 - 10 * 10  # union, not the sum of areas
    assert class_ids[0] == 1


def test_crowd_annotation_gets_a_negative_class_id(tmp_path):
    dataset = load(*write_coco(tmp_path))
    masks, class_ids = dataset.load_mask(0)
    assert class_ids.dtype == np.int32
    assert list(class_ids) == [1, -2]
    np.testing.assert_array_equal(masks[:, :, 1], crowd_mask())


def test_resized_masks_scale_polygons_and_rle(tmp_path):
    dataset = load(*write_coco(tmp_path))
    masks, class_ids = dataset.load_mask_resized(0, 2 * HEIGHT, 2 * WIDTH)
    expected = np.zeros((2 * HEIGHT, 2 * WIDTH), dtype=bool)
    expected[10:50, 10:50] = True
    expected[10:30, 30:70] = True
    np.testing.assert_array_equal(masks[:, :, 0], expected)
    np.testing.assert_array_equal(masks[:, :, 1], np.repeat(np.repeat(crowd_mask(), 2, 0), 2, 1))
    assert list(class_ids) == [1, -2]


def test_missing_image_is_skipped_counted_and_logged(tmp_path, caplog):
    path, image_dir = write_coco(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.coco"):
        dataset = load(path, image_dir)
    assert dataset.num_images == 2
    assert [info["id"] for info in dataset.image_info] == [1, 3]
    assert dataset.num_missing_images == 1
    assert any("000002.png" in p and "missing" in p for p in dataset.problems)
    assert "1 images missing" in caplog.text


def test_missing_image_raises_without_skip_missing(tmp_path):
    with pytest.raises(DatasetError, match="missing.*000002.png"):
        load(*write_coco(tmp_path), skip_missing=False)


def test_image_without_instances_is_kept_as_background_or_skipped(tmp_path):
    path, image_dir = write_coco(tmp_path)
    kept = load(path, image_dir)
    masks, class_ids = kept.load_mask(1)
    assert masks.shape == (HEIGHT, WIDTH, 0) and class_ids.shape == (0,)
    assert kept.num_empty_images == 1
    skipped = load(path, image_dir, skip_empty=True)
    assert [info["id"] for info in skipped.image_info] == [1]
    assert any("no instances" in p for p in skipped.problems)


def test_category_mismatch_lists_both_sides(tmp_path):
    path, image_dir = write_coco(tmp_path)
    with pytest.raises(DatasetError) as error:
        load(path, image_dir, class_names=["BG", "short sleeve top", "skirt"])
    message = str(error.value)
    assert "\n" not in message
    assert "file has [short_sleeved_shirt, trousers]" in message
    assert "config has [short sleeve top, skirt]" in message
    with pytest.raises(DatasetError, match="differ"):
        load(path, image_dir, class_names=["BG", "trousers"])  # one class too few


def test_dataset_names_and_official_names_both_match(tmp_path):
    no_extra_field = [{"id": c["id"], "name": c["name"]} for c in CATEGORIES]
    path, image_dir = write_coco(tmp_path, categories=no_extra_field)
    # Config in DeepFashion2's own names, in the reverse order: ids follow the config. The other
    # naming scheme comes from the shipped DeepFashion2 config's CLASS_ALIASES.
    aliases = load_config(REPO / "configs" / "deepfashion2.toml").CLASS_ALIASES
    dataset = load(path, image_dir, class_names=["BG", "trousers", "short sleeve top"], class_aliases=aliases)
    assert dataset.class_names == ["BG", "trousers", "short sleeve top"]
    assert dataset.map_source_class_id("coco.1") == 2
    _, class_ids = dataset.load_mask(0)
    assert list(class_ids) == [2, -1]
    upper = load(path, image_dir, class_names=["BG", "SHORT_SLEEVED_SHIRT", "Trousers"])
    assert upper.map_source_class_id("coco.2") == 2
    with pytest.raises(DatasetError, match="categories differ"):  # without the aliases, no match
        load(path, image_dir, class_names=["BG", "trousers", "short sleeve top"])


def test_without_class_names_the_file_categories_are_used_in_id_order(tmp_path):
    dataset = load(*write_coco(tmp_path, categories=list(reversed(CATEGORIES))))
    assert dataset.class_names == ["BG", "short_sleeved_shirt", "trousers"]
    assert dataset.num_classes == 3


@pytest.mark.parametrize("content, fragment", [
    ("this is not json", "not valid JSON"),
    ("[1, 2, 3]", "top level is not an object"),
    ('{"images": [], "categories": []}', "no 'annotations' list"),
    ('{"images": [{"id": 1}], "annotations": [], "categories": []}', "lacks id, file_name"),
    ('{"images": [], "annotations": [{"id": 1}], "categories": []}', "lacks image_id"),
])
def test_non_coco_file_is_a_one_line_error(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError) as error:
        load(path, tmp_path / "images")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_annotation_file_and_folder(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        load(tmp_path / "nope.json", tmp_path)
    path, _ = write_coco(tmp_path)
    with pytest.raises(DatasetError, match="image folder not found"):
        load(path, tmp_path / "no_such_folder")


def test_unknown_category_in_an_annotation_is_an_error(tmp_path):
    annotations = [{"id": 9, "image_id": 1, "category_id": 5, "segmentation": [rectangle(1, 1, 5, 5)]}]
    path, image_dir = write_coco(tmp_path, annotations=annotations)
    with pytest.raises(DatasetError, match="annotation 9 has category_id 5"):
        load(path, image_dir)


def test_unusable_segmentations_are_skipped_and_reported(tmp_path):
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": []},  # empty list (a DeepFashion2 quirk)
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[3, 3, 8, 3]]},  # 2 points only
        {"id": 3, "image_id": 1, "category_id": 2, "segmentation": [rectangle(2, 2, 6, 6) + [7]]},  # odd length
    ]
    path, image_dir = write_coco(tmp_path, annotations=annotations)
    dataset = load(path, image_dir)
    assert dataset.num_skipped_annotations == 2
    masks, class_ids = dataset.load_mask(0)
    assert list(class_ids) == [2]
    assert masks[:, :, 0].sum() == 16  # the trailing odd coordinate was dropped, the 4 x 4 square kept


def test_converted_synthetic_split_matches_the_converter_areas(tmp_path):
    """fseg convert's output (overlapping polygons per item, df2_name field) loads with the config's names."""
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split
    from mrcnn.config import load_config

    from conftest import REPO

    generate_split(tmp_path / "split", 4, seed=3, workers=1, max_side=200)
    coco_path = tmp_path / "train.json"
    convert_split(tmp_path / "split", coco_path, workers=1)
    config = load_config(REPO / "configs" / "deepfashion2.toml")
    dataset = load(coco_path, tmp_path / "split" / "image", class_names=config.CLASS_NAMES)
    assert dataset.num_images == 4 and dataset.num_classes == 14
    assert dataset.class_names == config.CLASS_NAMES
    coco = json.loads(coco_path.read_text())
    for image_id, info in enumerate(dataset.image_info):
        anns = [a for a in coco["annotations"] if a["image_id"] == info["id"]]
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.shape[-1] == len(anns)
        # The converter's "mask" area is the union of the item's polygons, computed on its own.
        assert sorted(masks.sum(axis=(0, 1)).tolist()) == sorted(a["area"] for a in anns)
        # Same category: the DeepFashion2 id equals the config's class index for this config.
        assert sorted(class_ids.tolist()) == sorted(a["category_id"] for a in anns)
        rles = [mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], info["height"], info["width"]))
                for a in anns]
        assert sum(int(mask_utils.area(r)) for r in rles) == int(masks.sum())
