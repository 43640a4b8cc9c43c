"""df2coco.reader: parsing and structural validation of one DeepFashion2 annotation file."""
from __future__ import annotations

import json
import sys

import pytest

from df2coco import problems as P
from df2coco import report as R
from df2coco.reader import decode_json, parse_annotation, read_annotation, read_bytes

SQUARE = [0, 0, 10, 0, 10, 10, 0, 10, 0, 0]


def item(category_id=9, **overrides):
    """A valid skirt item (8 landmarks) unless overridden."""
    base = {"segmentation": [SQUARE], "scale": 1, "viewpoint": 2, "zoom_in": 3, "occlusion": 1, "style": 4,
            "landmarks": [1, 1, 2] * 8, "bounding_box": [0, 0, 10, 10], "category_id": category_id,
            "category_name": "skirt"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def parse(data):
    return parse_annotation(data, "annos/000001.json")


def found(problems):
    return {(p.item, p.problem, p.action) for p in problems}


def test_valid_file_gives_typed_records_sorted_by_item_number(tmp_path):
    data = {"item3": item(), "source": "shop", "pair_id": 7, "item1": item(), "item2": item()}
    path = tmp_path / "000001.json"
    path.write_text(json.dumps(data))
    ann, problems = read_annotation(path)
    assert problems == []
    assert (ann.source, ann.pair_id) == ("shop", 7)
    assert [it.key for it in ann.items] == ["item1", "item2", "item3"]
    first = ann.items[0]
    assert first.number == 1 and first.category_id == 9
    assert first.bounding_box == [0, 0, 10, 10] and first.polygons == [SQUARE]
    assert first.landmarks == [1, 1, 2] * 8
    assert first.attributes == {"style": 4, "scale": 1, "occlusion": 1, "zoom_in": 3, "viewpoint": 2}


@pytest.mark.parametrize("content", [b'{"item1": {"segm', b"[1, 2, 3]", b"\xff\xfe\x00", b""])
def test_unreadable_file_is_skipped(tmp_path, content):
    path = tmp_path / "000001.json"
    path.write_bytes(content)
    ann, problems = read_annotation(path)
    assert ann is None
    assert found(problems) == {(None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE)}
    assert problems[0].file == str(path)


def test_missing_file_is_unreadable(tmp_path):
    ann, problems = read_annotation(tmp_path / "nope.json")
    assert ann is None and problems[0].problem == P.UNREADABLE_FILE


@pytest.mark.parametrize("category_id", [0, 14, -1])
def test_unknown_category_skips_item(category_id):
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(category_id), "item2": item()})
    assert [it.key for it in ann.items] == ["item2"]
    assert found(problems) == {("item1", P.UNKNOWN_CATEGORY, R.SKIPPED_ITEM)}


def test_empty_segmentation_is_no_polygon():
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(segmentation=[])})
    assert ann.items == []
    assert found(problems) == {("item1", P.NO_POLYGON, R.SKIPPED_ITEM)}


def test_short_and_odd_polygons_are_dropped_and_reported():
    seg = [[1, 1, 5, 5], SQUARE, [1, 1, 5, 5, 9], [0, 0, 4, 0, 4, 4]]
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(segmentation=seg)})
    assert ann.items[0].polygons == [SQUARE, [0, 0, 4, 0, 4, 4]]
    assert found(problems) == {("item1", P.SHORT_POLYGON, R.DROPPED_POLYGON),
                               ("item1", P.ODD_POLYGON, R.DROPPED_POLYGON)}


def test_no_valid_polygon_left_skips_item_and_reports_each_reason():
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(segmentation=[[1, 2, 3, 4]])})
    assert ann.items == []
    assert found(problems) == {("item1", P.SHORT_POLYGON, R.DROPPED_POLYGON),
                               ("item1", P.NO_POLYGON, R.SKIPPED_ITEM)}


def test_few_landmarks_clears_landmarks_but_keeps_item():
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(landmarks=[1, 1, 2] * 7)})
    assert ann.items[0].landmarks is None
    assert found(problems) == {("item1", P.FEW_LANDMARKS, R.CLEARED_LANDMARKS)}


@pytest.mark.parametrize("landmarks", [[1, 1, 2] * 9, [1, 1, 3] * 8, "x", None])
def test_bad_landmarks_are_cleared(landmarks):
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(landmarks=landmarks)})
    assert ann.items[0].landmarks is None
    assert found(problems) == {("item1", P.BAD_FIELD, R.CLEARED_LANDMARKS)}


@pytest.mark.parametrize("box", [[0, 0, 10], [5, 0, 1, 10], ["0", 0, 10, 10], ..., None])
def test_bad_bbox_is_taken_from_polygons(box):
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(bounding_box=box)})
    assert ann.items[0].bounding_box is None
    assert found(problems) == {("item1", P.BAD_FIELD, R.BBOX_FROM_POLYGONS)}


@pytest.mark.parametrize("overrides", [{"category_id": ...}, {"category_id": "9"}, {"segmentation": ...},
                                       {"segmentation": {"a": 1}}])
def test_missing_or_mistyped_required_field_skips_item(overrides):
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(**overrides)})
    assert ann.items == []
    assert ("item1", P.BAD_FIELD, R.SKIPPED_ITEM) in found(problems)


def test_item_that_is_not_an_object_is_skipped():
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": [1, 2]})
    assert ann.items == [] and found(problems) == {("item1", P.BAD_FIELD, R.SKIPPED_ITEM)}


def test_bad_attributes_and_image_fields_become_null():
    ann, problems = parse({"source": "web", "item1": item(scale="big", style=...)})
    assert ann.source is None and ann.pair_id is None
    assert ann.items[0].attributes["scale"] is None and ann.items[0].attributes["style"] is None
    assert found(problems) == {(None, P.BAD_FIELD, R.SET_NULL), ("item1", P.BAD_FIELD, R.SET_NULL)}
    assert len(problems) == 4  # source, pair_id, scale, style


def test_unexpected_key_is_ignored_and_gap_in_item_keys_is_fine():
    ann, problems = parse({"source": "user", "pair_id": 1, "item3": item(), "item1": item(), "extra": 5})
    assert [it.number for it in ann.items] == [1, 3]
    assert found(problems) == {(None, P.BAD_FIELD, R.IGNORED)}


def test_nan_or_infinite_coordinates_are_rejected():
    seg = [[0, 0, float("nan"), 0, 10, 10], SQUARE, [0, 0, float("inf"), 0, 10, 10]]
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(segmentation=seg)})
    assert ann.items[0].polygons == [SQUARE]
    assert found(problems) == {("item1", P.BAD_FIELD, R.DROPPED_POLYGON)}
    assert "2 of 3" in problems[0].detail


def test_float_coordinates_are_accepted_as_is():
    poly = [0.5, 0.5, 10.25, 0.5, 10.25, 9.75, 0.5, 0.5]
    ann, problems = parse({"source": "user", "pair_id": 1,
                           "item1": item(segmentation=[poly], bounding_box=[0.5, 0.5, 10.25, 9.75])})
    assert problems == []
    assert ann.items[0].polygons == [poly] and ann.items[0].bounding_box == [0.5, 0.5, 10.25, 9.75]


def test_every_problem_of_a_condemned_item_is_reported():
    bad = item(category_id=20, segmentation=[[1, 2, 3]], bounding_box=None)
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": bad})
    assert ann.items == []
    assert {p.problem for p in problems} == {P.UNKNOWN_CATEGORY, P.ODD_POLYGON, P.NO_POLYGON, P.BAD_FIELD}


@pytest.mark.parametrize("size", [0, 1, 4095, 70_000])
def test_read_bytes_reads_whole_files_of_any_size(tmp_path, size):
    path = tmp_path / "f.json"
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(content)
    assert read_bytes(path) == content


def test_read_bytes_reads_past_the_size_the_file_system_reports():
    # /proc files report size 0 but have content: the path for files that grow after fstat
    content = read_bytes("/proc/self/status")
    assert content.startswith(b"Name:") and content.endswith(b"\n") and len(content) > 200


# ---- numbers too large for a float, nesting too deep, repeated item keys (audit item 7, 8) --------------

HUGE = 10**400  # a valid JSON integer that no float can hold


@pytest.mark.parametrize("field, overrides, action", [
    ("landmarks", {"landmarks": [HUGE, 1, 2] + [1, 1, 2] * 7}, R.CLEARED_LANDMARKS),
    ("polygon", {"segmentation": [[0, 0, HUGE, 0, 10, 10], SQUARE]}, R.DROPPED_POLYGON),
    ("polygon with floats", {"segmentation": [[0.5, 0, HUGE, 0, 10, 10], SQUARE]}, R.DROPPED_POLYGON),
    ("bounding_box", {"bounding_box": [0, 0, HUGE, 10]}, R.BBOX_FROM_POLYGONS),
    ("finite but beyond 1e9", {"bounding_box": [0, 0, 1e300, 10]}, R.BBOX_FROM_POLYGONS),
    ("cancelling values", {"segmentation": [[-1e300, 0, 1e300, 0, 10, 10], SQUARE]}, R.DROPPED_POLYGON),
])
def test_a_number_too_large_for_a_float_is_a_bad_field(tmp_path, field, overrides, action):
    path = tmp_path / "000001.json"
    path.write_text(json.dumps({"source": "user", "pair_id": 1, "item1": item(**overrides)}))
    ann, problems = read_annotation(path)
    assert found(problems) == {("item1", P.BAD_FIELD, action)}
    (kept,) = ann.items  # the item is kept with what is left of it
    assert kept.polygons == [SQUARE]


def test_json_nested_too_deeply_is_an_unreadable_file(tmp_path):
    path = tmp_path / "000001.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    ann, problems = read_annotation(path)
    assert ann is None
    assert found(problems) == {(None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE)}
    assert "nested too deeply" in problems[0].detail


def test_a_deeply_nested_field_value_is_a_bad_field():
    deep = 0
    for _ in range(sys.getrecursionlimit()):  # too deep for repr(), which names a bad value in the detail
        deep = [deep]
    ann, problems = parse({"source": "user", "pair_id": 1, "item1": item(style=deep, bounding_box=deep)})
    assert found(problems) == {("item1", P.BAD_FIELD, R.SET_NULL), ("item1", P.BAD_FIELD, R.BBOX_FROM_POLYGONS)}
    assert ann.items[0].attributes["style"] is None


def test_a_repeated_item_key_is_reported_and_the_last_object_used(tmp_path):
    first, last = json.dumps(item(category_id=9)), json.dumps(item(category_id=8, landmarks=[1, 1, 2] * 14))
    path = tmp_path / "000001.json"
    path.write_text(f'{{"item1": {first}, "source": "user", "pair_id": 1, "item2": {first}, "item1": {last}}}')
    ann, problems = read_annotation(path)
    assert [(it.key, it.category_id) for it in ann.items] == [("item1", 8), ("item2", 9)]
    assert found(problems) == {("item1", P.BAD_FIELD, R.SKIPPED_ITEM)}
    assert problems[0].detail == "item1 appears 2 times; the last one is used, the 1 earlier one(s) skipped"


    path.write_text(json.dumps({"source": "user", "pair_id": 1, "item1": item(category_name='"item1"')}))
    assert read_annotation(path)[1] == []  # '"item' in a string: decoded again, nothing repeats


@pytest.mark.parametrize("content", [b'{"a": 1}', b'{"a": 1} \n', b'{"a": 1} x', b'{"a": 1}{', b"{", b'{"a":',
                                     b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16-le"), b'{"a": "\xff"}',
                                     b'{"a": "\xed\xa0\x80"}', b' {"a": 1}', b"[1]", b'{"a": 1}\x00'])
def test_decode_json_is_json_loads(content):
    def outcome(decode):
        try:
            return decode(content)
        except ValueError as exc:
            return type(exc), str(exc)

    assert outcome(decode_json) == outcome(json.loads)
