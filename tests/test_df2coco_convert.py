"""df2coco.convert_split on hand-made splits: every output field against the source files,
ids in item order, area modes, keypoints, the test split, bad input, --strict and atomic output.

Expected values are derived by hand from the fixture annotations below (and from the landmark
table in shared/reference/deepfashion2.md), not from the converter's own output.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from df2coco import problems as P
from df2coco import report as R
from df2coco.convert import convert_split
from df2coco.errors import ConvertError


def rect(x1, y1, x2, y2):
    """Closed rectangle polygon, as DeepFashion2 writes polygons (first point repeated)."""
    return [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]


def lm(n, x=5, y=6, v=2):
    return [x, y, v] * n


TROUSERS = {  # 3 overlapping polygons: outline A, leg B inside A, leg C sticking out of A
    "segmentation": [rect(100, 300, 300, 600), rect(100, 400, 180, 600), rect(250, 350, 350, 600)],
    "scale": 2, "viewpoint": 3, "zoom_in": 1, "landmarks": [110, 310, 2, 120, 320, 1] + [0, 0, 0] * 12,
    "style": 0, "bounding_box": [99, 299, 351, 601], "category_id": 8, "occlusion": 2,
    "category_name": "trousers"}
TOP = {"segmentation": [rect(10, 20, 60, 80)], "scale": 1, "viewpoint": 2, "zoom_in": 2,
       "landmarks": lm(25), "style": 1, "bounding_box": [10, 20, 60, 80], "category_id": 1, "occlusion": 1,
       "category_name": "short sleeve top"}
# keys shuffled as in real files: item2 before source/pair_id/item1
IMAGE1 = {"item2": TROUSERS, "source": "user", "pair_id": 3, "item1": TOP}
SKIRT_OUTSIDE = {"segmentation": [rect(-10, 50, 120, 90)], "scale": 3, "viewpoint": 1, "zoom_in": 3,
                 "landmarks": lm(7) + [250, -4, 1], "style": 2, "bounding_box": [-10, 50, 120, 90],
                 "category_id": 9, "occlusion": 3, "category_name": "skirt"}
IMAGE2 = {"source": "shop", "pair_id": 3, "item1": SKIRT_OUTSIDE}


def write_image(path: Path, width: int, height: int) -> None:
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)


def write_split(root: Path, images: dict, annos: dict | None) -> Path:
    """images: {file name: (width, height) or raw bytes}; annos: {file name: dict or raw bytes}."""
    (root / "image").mkdir(parents=True)
    for name, spec in images.items():
        if isinstance(spec, bytes):
            (root / "image" / name).write_bytes(spec)
        else:
            write_image(root / "image" / name, *spec)
    if annos is not None:
        (root / "annos").mkdir()
        for name, content in annos.items():
            raw = content if isinstance(content, bytes) else json.dumps(content).encode()
            (root / "annos" / name).write_bytes(raw)
    return root


@pytest.fixture
def split(tmp_path):
    return write_split(tmp_path / "split", {"000001.jpg": (468, 624), "000002.png": (200, 100)},
                       {"000001.json": IMAGE1, "000002.json": IMAGE2})


def convert(split_dir, out, **kw):
    kw.setdefault("workers", 1)
    result = convert_split(split_dir, out, **kw)
    data = json.loads(Path(out).read_text()) if result.written else None
    return result, data


def test_images_records(split, tmp_path):
    result, data = convert(split, tmp_path / "out.json")
    assert result.written and result.num_images == 2
    assert data["images"] == [
        {"id": 1, "file_name": "000001.jpg", "width": 468, "height": 624, "source": "user", "pair_id": 3},
        {"id": 2, "file_name": "000002.png", "width": 200, "height": 100, "source": "shop", "pair_id": 3}]


def test_categories_records(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json")
    cats = data["categories"]
    assert [c["id"] for c in cats] == list(range(1, 14))
    assert [c["name"] for c in cats] == [
        "short_sleeved_shirt", "long_sleeved_shirt", "short_sleeved_outwear", "long_sleeved_outwear", "vest",
        "sling", "shorts", "trousers", "skirt", "short_sleeved_dress", "long_sleeved_dress", "vest_dress",
        "sling_dress"]
    assert cats[0]["df2_name"] == "short sleeve top" and cats[12]["df2_name"] == "sling dress"
    for c in cats:
        assert c["supercategory"] == "clothes" and c["skeleton"] == []
        assert c["keypoints"] == [str(i) for i in range(1, 295)]


def test_annotation_ids_follow_item_number_not_file_key_order(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json")
    anns = data["annotations"]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in anns] == [(1, 1, 1), (2, 1, 8), (3, 2, 9)]


def test_annotation_fields_of_an_item_inside_the_image(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json")
    top, trousers = data["annotations"][0], data["annotations"][1]
    assert top["bbox"] == [10, 20, 50, 60]  # [x1, y1, x2 - x1, y2 - y1]
    assert top["area"] == 50 * 60
    assert top["iscrowd"] == 0
    assert top["segmentation"] == [rect(10, 20, 60, 80)]
    assert {k: top[k] for k in ("style", "pair_id", "scale", "occlusion", "zoom_in", "viewpoint")} == {
        "style": 1, "pair_id": 3, "scale": 1, "occlusion": 1, "zoom_in": 2, "viewpoint": 2}
    assert trousers["bbox"] == [99, 299, 252, 302]  # the file's box, not the polygon extent
    assert trousers["segmentation"] == TROUSERS["segmentation"]
    # union: A 200x300 = 60000, B inside A, C adds 50x250 = 12500 (sum of areas would be 101000)
    assert trousers["area"] == 72500
    assert (trousers["style"], trousers["occlusion"], trousers["viewpoint"]) == (0, 2, 3)


def test_keypoints_fill_only_the_category_slice(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json")
    top, trousers = data["annotations"][0], data["annotations"][1]
    # landmark slices from the reference table: short sleeve top 0-24, trousers 168-181 (0-based)
    for ann, start, n, landmarks in ((top, 0, 25, TOP["landmarks"]), (trousers, 168, 14, TROUSERS["landmarks"])):
        kp = ann["keypoints"]
        assert len(kp) == 882
        assert kp[3 * start:3 * (start + n)] == landmarks
        assert not any(kp[:3 * start]) and not any(kp[3 * (start + n):])
        assert all(type(v) is int for v in kp)  # ints in, ints out
    assert top["num_keypoints"] == 25
    assert trousers["num_keypoints"] == 2  # one visible (2) + one occluded (1); twelve unlabeled


def test_coordinates_outside_the_image_are_clipped_and_reported(split, tmp_path):
    result, data = convert(split, tmp_path / "out.json", report_path=tmp_path / "report.jsonl")
    skirt = data["annotations"][2]  # image 200 x 100, polygon x -10..120, y 50..90
    assert skirt["bbox"] == [0, 50, 120, 40]
    poly = skirt["segmentation"][0]
    assert set(zip(poly[0::2], poly[1::2])) == {(0, 50), (120, 50), (120, 90), (0, 90)}
    assert skirt["area"] == 120 * 40
    kp = skirt["keypoints"][3 * 182:3 * 190]  # skirt slice 182-189
    assert kp == lm(7) + [200, 0, 1]  # (250, -4) clamped onto the border
    records = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert records == [{"file": str(split / "annos" / "000002.json"), "item": "item1",
                        "problem": P.OUT_OF_IMAGE, "action": R.CLIPPED, "detail": records[0]["detail"]}]
    assert result.problem_counts == {(P.OUT_OF_IMAGE, R.CLIPPED): 1}


def test_area_bbox_mode_is_box_width_times_height(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json", area_mode="bbox")
    assert [a["area"] for a in data["annotations"]] == [50 * 60, 252 * 302, 120 * 40]
    assert data["info"]["area"] == "bbox"


def test_no_keypoints_omits_both_fields(split, tmp_path):
    _, data = convert(split, tmp_path / "out.json", keypoints=False)
    for ann in data["annotations"]:
        assert "keypoints" not in ann and "num_keypoints" not in ann
        assert ann["segmentation"] and ann["area"] > 0


def test_test_split_without_annos_gives_images_and_categories_only(tmp_path):
    root = write_split(tmp_path / "test", {"000001.jpg": (64, 48), "000002.jpg": (30, 40)}, None)
    result, data = convert(root, tmp_path / "out.json")
    assert not result.has_annotations
    assert data["images"] == [{"id": 1, "file_name": "000001.jpg", "width": 64, "height": 48},
                              {"id": 2, "file_name": "000002.jpg", "width": 30, "height": 40}]
    assert data["annotations"] == [] and len(data["categories"]) == 13


def test_images_and_annos_options_override_split_dir(split, tmp_path):
    result, data = convert(None, tmp_path / "out.json", images_dir=split / "image", annos_dir=split / "annos")
    assert result.num_annotations == 3 and len(data["images"]) == 2


def test_limit_converts_the_first_n_file_numbers(tmp_path):
    images = {f"{n:06d}.jpg": (20, 20) for n in (3, 1, 2)}
    annos = {f"{n:06d}.json": {"source": "user", "pair_id": n, "item1": TOP | {"segmentation": [rect(1, 1, 9, 9)],
                                                                               "bounding_box": [1, 1, 9, 9]}}
             for n in (3, 1, 2)}
    root = write_split(tmp_path / "s", images, annos)
    result, data = convert(root, tmp_path / "out.json", limit=2)
    assert [im["id"] for im in data["images"]] == [1, 2]
    assert [a["image_id"] for a in data["annotations"]] == [1, 2]


def test_ids_run_over_the_split_in_item_order_with_shuffled_keys_and_gaps(tmp_path):
    small = {"segmentation": [rect(1, 1, 9, 9)], "bounding_box": [1, 1, 9, 9]}
    annos = {
        "000001.json": {"item3": TOP | small | {"category_id": 3}, "pair_id": 1, "item1": TOP | small,
                        "source": "user", "item2": TOP | small | {"category_id": 2}},
        "000002.json": {"item4": TOP | small | {"category_id": 5}, "source": "shop", "pair_id": 1,
                        "item1": TOP | small | {"category_id": 4}},
    }
    root = write_split(tmp_path / "s", {"000001.jpg": (20, 20), "000002.jpg": (20, 20)}, annos)
    result, data = convert(root, tmp_path / "out.json")
    assert [(a["id"], a["image_id"], a["category_id"]) for a in data["annotations"]] == [
        (1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 4), (5, 2, 5)]
    # the top's 25 landmarks do not fit categories 2..5: 2 (33), 3 (31), 4 (39) need more -> few_landmarks;
    # 5 (vest, 15) gets too many -> bad_field. All four are cleared but still counted.
    assert result.problem_counts == {(P.FEW_LANDMARKS, R.CLEARED_LANDMARKS): 3,
                                     (P.BAD_FIELD, R.CLEARED_LANDMARKS): 1}


# ---- bad input: one case per problem -------------------------------------------------------------

GOOD = {"source": "user", "pair_id": 1, "item1": TOP}


def anno_with(**item_overrides):
    return {"source": "user", "pair_id": 1, "item1": TOP | item_overrides}


BAD_CASES = {
    # name: (images, annos, expected problem, expected action, images kept, annotations kept)
    "truncated json": ({"000001.jpg": (100, 100)}, {"000001.json": b'{"source": "user", "item1": {'},
                       P.UNREADABLE_FILE, R.SKIPPED_IMAGE, 0, 0),
    "no annotation file": ({"000001.jpg": (100, 100), "000002.jpg": (100, 100)}, {"000001.json": GOOD},
                           P.UNREADABLE_FILE, R.SKIPPED_IMAGE, 1, 1),
    "missing image": ({"000001.jpg": (100, 100)}, {"000001.json": GOOD, "000002.json": GOOD},
                      P.MISSING_IMAGE, R.SKIPPED_IMAGE, 1, 1),
    "corrupt image": ({"000001.jpg": b"not a jpeg at all"}, {"000001.json": GOOD},
                      P.UNREADABLE_IMAGE, R.SKIPPED_IMAGE, 0, 0),
    "unknown category": ({"000001.jpg": (100, 100)}, {"000001.json": anno_with(category_id=14)},
                         P.UNKNOWN_CATEGORY, R.SKIPPED_ITEM, 1, 0),
    "empty segmentation": ({"000001.jpg": (100, 100)}, {"000001.json": anno_with(segmentation=[])},
                           P.NO_POLYGON, R.SKIPPED_ITEM, 1, 0),
    "short polygon": ({"000001.jpg": (100, 100)},
                      {"000001.json": anno_with(segmentation=[rect(10, 20, 60, 80), [1, 2, 3, 4]])},
                      P.SHORT_POLYGON, R.DROPPED_POLYGON, 1, 1),
    "odd polygon": ({"000001.jpg": (100, 100)},
                    {"000001.json": anno_with(segmentation=[[1, 2, 3, 4, 5, 6, 7], rect(10, 20, 60, 80)])},
                    P.ODD_POLYGON, R.DROPPED_POLYGON, 1, 1),
    "few landmarks": ({"000001.jpg": (100, 100)}, {"000001.json": anno_with(landmarks=lm(24))},
                      P.FEW_LANDMARKS, R.CLEARED_LANDMARKS, 1, 1),
    "missing field": ({"000001.jpg": (100, 100)},
                      {"000001.json": {"source": "user", "pair_id": 1,
                                       "item1": {k: v for k, v in TOP.items() if k != "category_id"}}},
                      P.BAD_FIELD, R.SKIPPED_ITEM, 1, 0),
    "polygon entirely outside": ({"000001.jpg": (50, 50)},
                                 {"000001.json": anno_with(segmentation=[rect(60, 60, 90, 90)])},
                                 P.OUT_OF_IMAGE, R.SKIPPED_ITEM, 1, 0),
    "non-numeric file name": ({"000001.jpg": (100, 100), "cover.jpg": (10, 10)}, {"000001.json": GOOD},
                              P.BAD_FIELD, R.IGNORED, 1, 1),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_counted_reported_and_handled(case, tmp_path):
    images, annos, problem, action, n_images, n_anns = BAD_CASES[case]
    root = write_split(tmp_path / "s", images, annos)
    result, data = convert(root, tmp_path / "out.json", report_path=tmp_path / "report.jsonl")
    assert result.problem_counts == {(problem, action): 1}
    records = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert [(r["problem"], r["action"]) for r in records] == [(problem, action)]
    assert set(records[0]) == {"file", "item", "problem", "action", "detail"} and records[0]["detail"]
    assert len(data["images"]) == n_images and len(data["annotations"]) == n_anns
    assert result.num_images == n_images and result.num_annotations == n_anns


def test_few_landmarks_writes_unlabeled_keypoints(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (100, 100)}, {"000001.json": anno_with(landmarks=lm(24))})
    _, data = convert(root, tmp_path / "out.json")
    ann = data["annotations"][0]
    assert ann["num_keypoints"] == 0 and not any(ann["keypoints"])
    assert ann["bbox"] == [10, 20, 50, 60]  # the rest of the item is kept


def test_bad_bbox_is_replaced_by_polygon_extent(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (100, 100)},
                       {"000001.json": anno_with(bounding_box=[60, 20, 10, 80])})
    result, data = convert(root, tmp_path / "out.json")
    assert data["annotations"][0]["bbox"] == [10, 20, 50, 60]
    assert result.problem_counts == {(P.BAD_FIELD, R.BBOX_FROM_POLYGONS): 1}


# ---- --strict, usage errors, atomic output -------------------------------------------------------

def test_strict_with_problems_writes_no_output_but_writes_the_report(split, tmp_path):
    out = tmp_path / "out.json"
    result, _ = convert(split, out, strict=True, report_path=tmp_path / "report.jsonl")
    assert not result.written and result.num_problems == 1
    assert not out.exists()
    assert len((tmp_path / "report.jsonl").read_text().splitlines()) == 1
    assert _leftovers(tmp_path) == []


def test_strict_without_problems_writes_output(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (100, 100)}, {"000001.json": GOOD})
    result, data = convert(root, tmp_path / "out.json", strict=True)
    assert result.written and len(data["annotations"]) == 1


def test_strict_failure_does_not_clobber_existing_output(split, tmp_path):
    out = tmp_path / "out.json"
    out.write_text("previous")
    result, _ = convert(split, out, strict=True, force=True)
    assert not result.written and out.read_text() == "previous"


def test_existing_output_needs_force(split, tmp_path):
    out = tmp_path / "out.json"
    out.write_text("previous")
    with pytest.raises(ConvertError, match="exists"):
        convert(split, out)
    assert out.read_text() == "previous"
    result, data = convert(split, out, force=True)
    assert result.written and len(data["annotations"]) == 3


def test_existing_report_needs_force(split, tmp_path):
    (tmp_path / "r.jsonl").write_text("x")
    with pytest.raises(ConvertError, match="exists"):
        convert(split, tmp_path / "out.json", report_path=tmp_path / "r.jsonl")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"split_dir": "MISSING"}, "not found"),
    ({"annos_dir": "MISSING"}, "not found"),
    ({"area_mode": "polygon"}, "area mode"),
    ({"limit": 0}, "limit"),
    ({"out_name": "no_such_dir/out.json"}, "output folder not found"),
])
def test_usage_errors_raise_before_writing(split, tmp_path, kwargs, message):
    kwargs = dict(kwargs)
    split_dir = tmp_path / "missing" if kwargs.pop("split_dir", None) else split
    if kwargs.get("annos_dir") == "MISSING":
        kwargs["annos_dir"] = tmp_path / "missing_annos"
    out = tmp_path / kwargs.pop("out_name", "out.json")
    with pytest.raises(ConvertError, match=message):
        convert_split(split_dir, out, workers=1, **kwargs)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_crash_mid_run_leaves_no_output_and_no_temporary_files(split, tmp_path, monkeypatch):
    import df2coco.worker as worker

    calls = []

    def failing(task, options):
        calls.append(task.image_id)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(task, options)

    original = worker.convert_image
    monkeypatch.setattr(worker, "convert_image", failing)
    out = tmp_path / "out.json"
    out.write_text("previous")
    with pytest.raises(RuntimeError):
        convert_split(split, out, workers=1, force=True, report_path=tmp_path / "r.jsonl")
    assert out.read_text() == "previous"
    assert not (tmp_path / "r.jsonl").exists()
    assert _leftovers(tmp_path) == []


def test_the_split_is_never_modified(split, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in split.rglob("*") if p.is_file()}
    convert(split, tmp_path / "out.json", report_path=tmp_path / "r.jsonl")
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in split.rglob("*") if p.is_file()}
    assert before == after


def _leftovers(folder: Path) -> list[str]:
    """Temporary files the writer may have left behind."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# ---- parallel workers ------------------------------------------------------------------------------

def test_two_workers_give_byte_identical_output(tmp_path, monkeypatch):
    import df2coco.convert

    monkeypatch.setattr(df2coco.convert, "MIN_IMAGES_PER_WORKER", 50)  # 150 images: the pool is really used
    assert df2coco.convert._worker_count(2, 150) == 2
    n = 150  # > 2 chunks of 64
    images = {f"{i:06d}.jpg": (16 + i % 7, 16 + i % 5) for i in range(1, n + 1)}
    annos = {f"{i:06d}.json": {"item2": TOP | {"segmentation": [rect(1, 1, 8, 9)], "bounding_box": [1, 1, 8, 9]},
                               "source": "user", "pair_id": i,
                               "item1": TOP | {"segmentation": [rect(0, 0, 30, 4)], "bounding_box": [0, 0, 30, 4]}}
             for i in range(1, n + 1)}
    root = write_split(tmp_path / "s", images, annos)
    r1, _ = convert(root, tmp_path / "one.json", workers=1)
    r2, _ = convert(root, tmp_path / "two.json", workers=2)
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert r1.num_annotations == r2.num_annotations == 2 * n
    assert r1.problem_counts == r2.problem_counts == {(P.OUT_OF_IMAGE, R.CLIPPED): n}  # 30 px wide > 16..22
