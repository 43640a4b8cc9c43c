"""Data faults of issue 9 at the library level: duplicate numbers, 1 px annotation noise, booleans,
problems of skipped items, source types kept by clipping, truncated images, temporary files when
closing fails.

Expected values are worked out by hand from the fixtures, not taken from the converter's output.
"""
from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from df2coco import problems as P
from df2coco import report as R
from df2coco.annotation import NOISE_PX
from df2coco.convert import convert_split
from df2coco.errors import OutputError
from df2coco.geometry import clip_box, clip_polygon
from df2coco.listing import list_numbered
from df2coco.reader import parse_annotation
from df2coco.writer import AtomicTextFile, CocoWriter, with_id


def rect(x1, y1, x2, y2):
    return [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]


SKIRT = {"segmentation": [rect(10, 10, 40, 40)], "bounding_box": [10, 10, 40, 40], "landmarks": [12, 12, 2] * 8,
         "category_id": 9, "category_name": "skirt", "style": 0, "scale": 1, "occlusion": 1, "zoom_in": 1,
         "viewpoint": 2}


def anno(**overrides) -> dict:
    return {"source": "user", "pair_id": 1, "item1": SKIRT | overrides}


def write_split(root: Path, images: dict, annos: dict) -> Path:
    """images: {name: (width, height) or bytes}; annos: {name: dict}."""
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    for name, spec in images.items():
        if isinstance(spec, bytes):
            (root / "image" / name).write_bytes(spec)
        else:
            Image.fromarray(np.full((spec[1], spec[0], 3), 90, np.uint8)).save(root / "image" / name)
    for name, content in annos.items():
        (root / "annos" / name).write_text(json.dumps(content))
    return root


def convert(root: Path, out: Path, **kwargs):
    result = convert_split(root, out, workers=1, report_path=out.with_suffix(".jsonl"), **kwargs)
    records = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    return result, (json.loads(out.read_text()) if result.written else None), records


# ---- duplicate numbers ------------------------------------------------------------------------------

def test_duplicate_image_and_annotation_numbers_are_reported_and_the_choice_is_documented(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50), "000001.png": (70, 50), "000002.jpg": (60, 50)},
                       {"000001.json": anno(), "1.json": anno(category_id=8), "000002.json": anno()})
    result, data, records = convert(root, tmp_path / "out.json")
    dupes = sorted((Path(r["file"]).name, r["action"]) for r in records if r["problem"] == P.DUPLICATE_NUMBER)
    assert dupes == [("000001.png", R.IGNORED), ("1.json", R.IGNORED)]
    assert result.problem_counts == {(P.DUPLICATE_NUMBER, R.IGNORED): 2}
    assert data["images"][0]["file_name"] == "000001.jpg" and data["images"][0]["width"] == 60
    assert data["annotations"][0]["category_id"] == 9  # from 000001.json, not 1.json (trousers)
    assert "same number as 000001.jpg" in next(r["detail"] for r in records if r["file"].endswith(".png"))


@pytest.mark.parametrize("names, used", [
    (["000001.png", "000001.jpeg", "000001.jpg"], "000001.jpg"),  # extension order .jpg, .jpeg, .png
    (["1.jpg", "000001.png"], "000001.png"),  # the six-digit name first, whatever the extension
    (["0000001.jpg", "01.jpg"], "0000001.jpg"),  # neither six digits: extension, then name order
    (["000001.jpg", "000001.JPG"], "000001.JPG"),  # code-point order: upper case first
])
def test_which_duplicate_is_used_does_not_depend_on_directory_order(tmp_path, names, used):
    for order in (names, names[::-1]):
        folder = tmp_path / "-".join(order)
        folder.mkdir()
        for name in order:
            (folder / name).write_bytes(b"x")
        listing = list_numbered(folder, (".jpg", ".jpeg", ".png"))
        assert listing.names[1] == used and listing.path(1) == str(folder / used)
        assert sorted(Path(p.file).name for p in listing.duplicates[1]) == sorted(set(names) - {used})


def test_limit_reports_only_duplicates_among_the_numbers_kept(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50), "000002.jpg": (60, 50), "000002.png": (60, 50)},
                       {"000001.json": anno(), "000002.json": anno()})
    result, _, _ = convert(root, tmp_path / "out.json", limit=1)
    assert result.problem_counts == {}


# ---- coordinates slightly outside the image ---------------------------------------------------------

def test_coordinates_within_one_pixel_outside_are_noise_not_problems(tmp_path):
    noisy = [-0.78, 10.0, 40.0, 10.0, 40.0, 50.0, -0.78, 10.0]  # image 60 x 50: x = -0.78 and y = 50 (on the edge)
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50)},
                       {"000001.json": anno(segmentation=[noisy], bounding_box=[0, 10, 61, 50])})
    result, data, records = convert(root, tmp_path / "out.json", strict=True)
    assert result.written and result.problem_counts == {} and records == []
    assert result.noise_clipped == 1
    poly = data["annotations"][0]["segmentation"][0]
    assert min(poly[0::2]) == 0.0 and type(min(poly[0::2])) is float
    assert data["annotations"][0]["bbox"] == [0, 10, 60, 40]


@pytest.mark.parametrize("where", ["polygon", "bbox", "landmark"])
def test_more_than_one_pixel_outside_stays_a_problem(tmp_path, where):
    item = {"polygon": {"segmentation": [rect(10, 10, 40, 51.5)]},
            "bbox": {"bounding_box": [10, 10, 40, 51.5]},
            "landmark": {"landmarks": [12, 12, 2] * 7 + [61.01, 20, 1]}}[where]
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50)}, {"000001.json": anno(**item)})
    result, _, records = convert(root, tmp_path / "out.json", strict=True)
    assert not result.written and result.noise_clipped == 0
    assert [(r["problem"], r["action"]) for r in records] == [(P.OUT_OF_IMAGE, R.CLIPPED)]
    assert "by up to 1.5 px" in records[0]["detail"] or "by up to 1.01 px" in records[0]["detail"]
    assert NOISE_PX == 1.0


def test_a_polygon_lost_entirely_is_a_problem_even_when_close_to_the_image(tmp_path):
    sliver = [-0.9, 10, -0.1, 10, -0.5, 20, -0.9, 10]  # wholly left of x = 0, by under 1 px
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50)},
                       {"000001.json": anno(segmentation=[rect(10, 10, 40, 40), sliver])})
    result, data, records = convert(root, tmp_path / "out.json")
    assert [(r["problem"], r["action"]) for r in records] == [(P.OUT_OF_IMAGE, R.CLIPPED)]
    assert "entirely outside" in records[0]["detail"]
    assert data["annotations"][0]["segmentation"] == [rect(10, 10, 40, 40)]


# ---- types: booleans are not numbers, floats stay floats --------------------------------------------

def test_booleans_are_not_numbers():
    item = SKIRT | {"segmentation": [[True, False, True, 1, 1, 1], rect(10, 10, 40, 40)],
                    "bounding_box": [True, 10, 40, 40], "landmarks": [12, 12, True] * 8}
    parsed, problems = parse_annotation({"source": "user", "pair_id": 1, "item1": item}, "f.json")
    (kept,) = parsed.items
    assert kept.polygons == [rect(10, 10, 40, 40)]
    assert kept.bounding_box is None and kept.landmarks is None
    assert sorted((p.problem, p.action) for p in problems) == [
        (P.BAD_FIELD, R.BBOX_FROM_POLYGONS), (P.BAD_FIELD, R.CLEARED_LANDMARKS), (P.BAD_FIELD, R.DROPPED_POLYGON)]


def test_boolean_polygon_never_reaches_the_output(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50)},
                       {"000001.json": anno(segmentation=[[True, False, True, 1, 1, 1]])})
    result, data, records = convert(root, tmp_path / "out.json")
    assert "true" not in json.dumps(data["annotations"])
    assert data["annotations"] == [] and result.problem_counts == {(P.BAD_FIELD, R.DROPPED_POLYGON): 1,
                                                                   (P.NO_POLYGON, R.SKIPPED_ITEM): 1}


@pytest.mark.parametrize("category_id, landmarks, expected", [
    (14, [1, 2], (P.BAD_FIELD, R.CLEARED_LANDMARKS)),  # unknown category: not whole triples
    (14, [1, 2, 7], (P.BAD_FIELD, R.CLEARED_LANDMARKS)),  # unknown category: v = 7
    (9, [1, 2, 2] * 3, (P.FEW_LANDMARKS, R.CLEARED_LANDMARKS)),  # skirt needs 8 triples
])
def test_a_skipped_item_reports_its_landmark_problems_too(category_id, landmarks, expected):
    item = SKIRT | {"category_id": category_id, "landmarks": landmarks,
                    "segmentation": [] if category_id == 9 else SKIRT["segmentation"]}
    parsed, problems = parse_annotation({"source": "user", "pair_id": 1, "item1": item}, "f.json")
    assert parsed.items == []
    found = {(p.problem, p.action) for p in problems}
    assert expected in found
    assert (P.UNKNOWN_CATEGORY, R.SKIPPED_ITEM) in found or (P.NO_POLYGON, R.SKIPPED_ITEM) in found


def test_no_keypoints_does_not_check_landmarks(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": (60, 50)}, {"000001.json": anno(landmarks=[1, 2])})
    result, _, _ = convert(root, tmp_path / "out.json", keypoints=False)
    assert result.problem_counts == {}


def test_clipping_keeps_untouched_vertices_in_their_source_type():
    poly = [52.0, 10.0, 120.5, 10.0, 120.5, 40.0, 52.0, 40.0, 52.0, 10.0]  # crosses x = 100
    clipped = clip_polygon(poly, 100, 50)
    assert set(zip(clipped[0::2], clipped[1::2])) == {(52.0, 10.0), (100.0, 10.0), (100.0, 40.0), (52.0, 40.0)}
    assert all(type(c) is float for c in clipped)
    assert json.dumps(clipped).count("52.0") == 3  # written as 52.0, not 52
    ints = clip_polygon([52, 10, 120, 10, 120, 40, 52, 40], 100, 50)
    assert all(type(c) is int for c in ints)
    assert clip_box([-0.5, 2.0, 120.0, 9.0], 100, 50) == [0.0, 2.0, 100.0, 9.0]
    assert [type(c) for c in clip_box([-0.5, 2.0, 120.0, 9.0], 100, 50)] == [float] * 4


# ---- truncated images -------------------------------------------------------------------------------

def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("name, fmt", [("000001.jpg", "JPEG"), ("000001.png", "PNG")])
def test_verify_images_reports_a_truncated_file(tmp_path, name, fmt):
    data = _encoded(fmt)
    root = write_split(tmp_path / "s", {name: data[: len(data) // 2]}, {"000001.json": anno()})
    result, output, _ = convert(root, tmp_path / "header.json")
    assert result.problem_counts == {} and len(output["images"]) == 1  # the header alone looks fine
    result, output, records = convert(root, tmp_path / "full.json", verify_images=True)
    assert result.problem_counts == {(P.UNREADABLE_IMAGE, R.SKIPPED_IMAGE): 1}
    assert output["images"] == [] and "cannot decode" in records[0]["detail"]


def test_verify_images_accepts_whole_files(tmp_path):
    root = write_split(tmp_path / "s", {"000001.jpg": _encoded("JPEG"), "000002.png": _encoded("PNG")},
                       {"000001.json": anno(), "000002.json": anno()})
    result, output, _ = convert(root, tmp_path / "out.json", verify_images=True)
    assert result.problem_counts == {} and len(output["images"]) == 2


# ---- temporary files when the disk fills up -----------------------------------------------------------

class _FullDisk(io.TextIOBase):
    """A text file whose writes fail with ENOSPC after ``budget`` characters and whose close fails too
    (after really closing, as a buffered file does when its last flush fails). Bytes written to its
    ``buffer`` (CocoWriter.commit copies the annotations part that way) use the same budget."""

    def __init__(self, real, budget: int):
        self.real, self.budget = real, budget

    def spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, text: str) -> int:
        self.spend(len(text))
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    @property
    def buffer(self) -> _FullDiskBytes:
        return _FullDiskBytes(self)

    def close(self) -> None:
        self.real.close()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDiskBytes:
    """The byte layer under a :class:`_FullDisk`."""

    def __init__(self, text_file: _FullDisk):
        self.text_file = text_file

    def write(self, data: bytes) -> int:
        self.text_file.spend(len(data))
        return self.text_file.real.buffer.write(data)


def test_discard_deletes_the_temporary_file_even_if_closing_fails(tmp_path):
    f = AtomicTextFile(tmp_path / "out.json")
    f.file = _FullDisk(f.file, budget=10**9)
    f.write("data")
    f.discard()
    assert os.listdir(tmp_path) == []


def test_a_disk_filling_while_the_parts_are_joined_raises_output_error_and_leaves_nothing(tmp_path):
    (tmp_path / "out.json").write_text("old")
    with pytest.raises(OutputError, match="No space left on device"):
        with CocoWriter(tmp_path / "out.json", {}, []) as writer:
            writer._out.file = _FullDisk(writer._out.file, budget=1000)  # the annotations part will not fit
            writer.add_image('{"id":1}')
            for ann_id in range(1, 11):
                writer.add_annotation(with_id('{"image_id":1,"pad":"' + "x" * 500 + '"}', ann_id))
            writer.commit()
    assert os.listdir(tmp_path) == ["out.json"] and (tmp_path / "out.json").read_text() == "old"


def test_a_failed_commit_raises_output_error_and_leaves_nothing(tmp_path):
    (tmp_path / "out.json").write_text("old")
    with pytest.raises(OutputError, match="No space left on device"):
        with CocoWriter(tmp_path / "out.json", {}, []) as writer:
            writer._out.file = _FullDisk(writer._out.file, budget=10**9)
            writer.add_image('{"id":1}')
            writer.commit()
    assert os.listdir(tmp_path) == ["out.json"] and (tmp_path / "out.json").read_text() == "old"
