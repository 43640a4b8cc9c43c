"""df2coco.stats on a small hand-written COCO file (expected numbers counted by hand)."""
from __future__ import annotations

import json

import pytest

from df2coco.errors import StatsError
from df2coco.stats import compute_stats, format_stats


def ann(i, image_id, cat, area, **attrs):
    base = {"id": i, "image_id": image_id, "category_id": cat, "area": area, "bbox": [0, 0, 1, 1],
            "segmentation": [[0, 0, 1, 0, 1, 1]], "keypoints": [0] * 882, "iscrowd": 0}
    return base | attrs


@pytest.fixture
def coco_file(tmp_path):
    data = {
        "info": {"area": "mask"},
        "images": [{"id": 1, "source": "user"}, {"id": 2, "source": "shop"}, {"id": 3, "source": "shop"}],
        "categories": [{"id": 1, "name": "short_sleeved_shirt"}, {"id": 8, "name": "trousers"},
                       {"id": 9, "name": "skirt"}],
        "annotations": [ann(1, 1, 1, 100, scale=1, occlusion=2, zoom_in=1, viewpoint=2),
                        ann(2, 1, 8, 2000, scale=2, occlusion=2, zoom_in=1, viewpoint=3),
                        ann(3, 2, 8, 10000, scale=3, occlusion=1, zoom_in=2, viewpoint=3),
                        ann(4, 2, 8, 400, scale=3, occlusion=1, zoom_in=1, viewpoint=1)],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def test_counts(coco_file):
    s = compute_stats(coco_file)
    assert s["images"] == 3 and s["annotations"] == 4
    assert [(c["name"], c["instances"]) for c in s["per_category"]] == [
        ("short_sleeved_shirt", 1), ("trousers", 3), ("skirt", 0)]
    ipi = s["instances_per_image"]
    assert ipi["histogram"] == {"0": 1, "2": 2} and (ipi["min"], ipi["max"]) == (0, 2)
    assert ipi["mean"] == pytest.approx(4 / 3, abs=1e-3)
    assert s["attributes"]["scale"] == {"1": 1, "2": 1, "3": 2}
    assert s["attributes"]["viewpoint"] == {"1": 1, "2": 1, "3": 2}
    assert s["attributes"]["source"] == {"shop": 2, "user": 1}


def test_area_quantiles_and_ranges(coco_file):
    s = compute_stats(coco_file)
    q = s["area_quantiles"]  # sorted areas 100, 400, 2000, 10000
    assert q["0.0"] == 100 and q["1.0"] == 10000
    assert q["0.5"] == pytest.approx((400 + 2000) / 2)
    assert s["area_ranges"] == {"small": 2, "medium": 1, "large": 1}  # limits 32^2 = 1024, 96^2 = 9216
    assert s["area_field"] == "mask"


def test_text_report_has_a_bar_per_category(coco_file):
    text = format_stats(compute_stats(coco_file))
    lines = {line.split()[1]: line for line in text.splitlines() if line.strip().split()[:1] in (["1"], ["8"], ["9"])}
    assert lines["trousers"].count("#") == 40 and lines["short_sleeved_shirt"].count("#") == 13
    assert "#" not in lines["skirt"]


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"), ("[]", "not a COCO"), ('{"annotations": []}', "not a COCO"),
    ('{"images": [], "annotations": [5]}', r"annotations\[0\] is 5, not an object"),
    ('{"images": ["x"]}', r"images\[0\] is 'x', not an object"),
    ('{"images": [], "annotations": [{"image_id": 1, "category_id": [1]}]}', r"category_id \[1\], not an id"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(StatsError, match=message):
        compute_stats(path)


def test_missing_file(tmp_path):
    with pytest.raises(StatsError, match="cannot read"):
        compute_stats(tmp_path / "nope.json")


def test_annotations_no_category_or_image_owns_and_repeated_ids_are_problems(tmp_path):
    coco = {"images": [{"id": 1}, {"id": 2}],
            "categories": [{"id": 1, "name": "shirt"}, {"id": 1, "name": "dup"}, {"id": 2, "name": "skirt"}],
            "annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 99},
                            {"image_id": 99, "category_id": 2}]}
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(coco))
    stats = compute_stats(path)
    assert [(c["name"], c["instances"]) for c in stats["per_category"]] == [("shirt", 1), ("skirt", 1)]
    assert stats["problems"] == ["1 annotation(s) with a category id that is not listed in 'categories'",
                                 "1 annotation(s) with an image id that is not listed in 'images'",
                                 "category id 1 is listed 2 times"]
    assert "problems:" in format_stats(stats)
