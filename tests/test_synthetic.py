"""Tests of the synthetic DeepFashion2 generator (df2coco.synthetic) and `fseg synth`.

Quirks are re-detected from the written files by an independent checker written
here from the DeepFashion2 format description, not from the generator's code.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from df2coco import problems as P
from df2coco.categories import CATEGORIES, CATEGORY_BY_ID
from df2coco.synthetic import SynthSummary, generate_split, make_image_record

ITEM_KEYS = {"segmentation", "bounding_box", "landmarks", "category_id", "category_name", "style", "scale",
             "occlusion", "zoom_in", "viewpoint"}
NAME_TO_CATEGORY = {c.name: c for c in CATEGORIES}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _item_keys(annotation: dict) -> list[str]:
    return sorted((k for k in annotation if k.startswith("item")), key=lambda k: int(k[4:]))


@pytest.fixture(scope="module")
def records() -> list[tuple[int, np.ndarray, dict]]:
    """250 clean images in memory (enough for every category to appear)."""
    return [(i, *make_image_record(11, i, min_side=96, max_side=200)) for i in range(1, 251)]


# --- determinism --------------------------------------------------------------------------------------------


def test_same_files_whatever_the_worker_count(tmp_path):
    one = generate_split(tmp_path / "w1", 24, seed=5, quirk_rate=0.5, min_side=64, max_side=128, workers=1)
    two = generate_split(tmp_path / "w2", 24, seed=5, quirk_rate=0.5, min_side=64, max_side=128, workers=2)
    files = _files(tmp_path / "w1")
    assert files == _files(tmp_path / "w2")
    assert one == two
    assert len([f for f in files if f.startswith("annos/")]) == 24


def test_other_seed_gives_other_data(tmp_path):
    generate_split(tmp_path / "a", 3, seed=1, min_side=64, max_side=96, workers=1)
    generate_split(tmp_path / "b", 3, seed=2, min_side=64, max_side=96, workers=1)
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


def test_make_image_record_matches_the_written_file(tmp_path):
    generate_split(tmp_path, 4, seed=9, min_side=80, max_side=160, workers=1)
    for index in (1, 4):
        image, annotation = make_image_record(9, index, min_side=80, max_side=160)
        on_disk = json.loads((tmp_path / "annos" / f"{index:06d}.json").read_text())
        assert annotation == on_disk
        assert list(annotation) == list(on_disk)  # same (shuffled) key order
        decoded = cv2.imread(str(tmp_path / "image" / f"{index:06d}.jpg"))[..., ::-1]
        assert decoded.shape == image.shape
        assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 8  # JPEG noise; other images: ~50+


def test_make_image_record_accepts_a_generator():
    a = make_image_record(np.random.default_rng(3), 17, min_side=50, max_side=60)
    b = make_image_record(np.random.default_rng(3), 17, min_side=50, max_side=60)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert a[1]["pair_id"] == 17
    assert 50 <= a[0].shape[0] <= 60 and 50 <= a[0].shape[1] <= 60 and a[0].dtype == np.uint8


# --- format -------------------------------------------------------------------------------------------------


def _distance_to_polyline(point: np.ndarray, closed: np.ndarray) -> float:
    """Smallest distance from a point to the segments of a closed polygon [K+1, 2]."""
    a, b = closed[:-1].astype(float), closed[1:].astype(float)
    ab = b - a
    t = np.clip(((point - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-9), 0, 1)
    return float(np.min(np.linalg.norm(a + ab * t[:, None] - point, axis=1)))


def _check_item(item: dict, width: int, height: int) -> None:
    assert set(item) == ITEM_KEYS
    cat = CATEGORY_BY_ID[item["category_id"]]
    assert item["category_name"] == cat.name
    for key in ("style", "scale", "occlusion", "zoom_in", "viewpoint"):
        assert type(item[key]) is int
    assert item["style"] >= 0
    assert {item["scale"], item["occlusion"], item["zoom_in"], item["viewpoint"]} <= {1, 2, 3}
    seg = item["segmentation"]
    assert len(seg) >= 1
    for poly in seg:
        assert all(type(v) is int for v in poly)
        assert len(poly) % 2 == 0 and len(poly) >= 8  # >= 3 points plus the repeated first one
        assert poly[:2] == poly[-2:]  # closed explicitly
        xs, ys = poly[0::2], poly[1::2]
        assert 0 <= min(xs) and max(xs) <= width - 1 and 0 <= min(ys) and max(ys) <= height - 1
    outline = np.array(seg[0]).reshape(-1, 2)
    x1, y1, x2, y2 = item["bounding_box"]
    assert all(type(v) is int for v in item["bounding_box"])
    assert 0 <= x1 < x2 <= width - 1 and 0 <= y1 < y2 <= height - 1
    assert np.allclose([x1, y1], outline.min(0), atol=2) and np.allclose([x2, y2], outline.max(0), atol=2)
    lm = item["landmarks"]
    assert len(lm) == 3 * cat.num_landmarks and all(type(v) is int for v in lm)
    for x, y, v in zip(lm[0::3], lm[1::3], lm[2::3]):
        assert v in (0, 1, 2)
        if v == 0:
            assert (x, y) == (0, 0)
        else:
            assert _distance_to_polyline(np.array([x, y], float), outline) <= 1.5


def _parts_inside_outline(item: dict, width: int, height: int) -> bool:
    """Every sub-polygon lies within the outline (so the union of all polygons is the outline)."""
    outline = np.zeros((height, width), np.uint8)
    cv2.fillPoly(outline, [np.array(item["segmentation"][0]).reshape(-1, 2).astype(np.int32)], 1)
    outline = cv2.dilate(outline, np.ones((3, 3), np.uint8))
    for poly in item["segmentation"][1:]:
        part = np.zeros_like(outline)
        cv2.fillPoly(part, [np.array(poly).reshape(-1, 2).astype(np.int32)], 1)
        if (part & (1 - outline)).sum() > 0:
            return False
    return True


def test_every_file_has_the_deepfashion2_format(records):
    for _, image, ann in records:
        height, width = image.shape[:2]
        assert 96 <= height <= 200 and 96 <= width <= 200
        assert 0.6 <= height / width <= 1 / 0.6
        items = _item_keys(ann)
        assert set(ann) == {"source", "pair_id", *items}
        assert items == [f"item{n}" for n in range(1, len(items) + 1)]
        assert 1 <= len(items) <= 4
        assert ann["source"] in ("user", "shop") and type(ann["pair_id"]) is int
        for key in items:
            _check_item(ann[key], width, height)
            assert _parts_inside_outline(ann[key], width, height)


def test_all_categories_appear_with_their_sub_polygons(records):
    counts = Counter()
    polygons = {}
    for _, _, ann in records:
        for key in _item_keys(ann):
            item = ann[key]
            counts[item["category_id"]] += 1
            polygons.setdefault(item["category_id"], set()).add(len(item["segmentation"]))
    assert set(counts) == set(range(1, 14))
    assert min(counts.values()) >= 10
    for cid in (1, 2, 3, 4, 7, 8, 10, 11):  # sleeves or legs: outline + 2 parts, like real files
        assert polygons[cid] == {3}
    for cid in (5, 6, 9, 12, 13):
        assert polygons[cid] == {1}


def test_keys_are_shuffled(records):
    top_orders = {tuple(ann) for _, _, ann in records}
    item_orders = {tuple(ann[k]) for _, _, ann in records for k in _item_keys(ann)}
    assert len(top_orders) > 10 and len(item_orders) > 50
    assert any(list(ann)[0] not in ("source", "pair_id") for _, _, ann in records)


def test_pairs_are_consecutive_and_users_come_first(records):
    groups: dict[int, list[tuple[int, str]]] = {}
    for index, _, ann in records:
        groups.setdefault(ann["pair_id"], []).append((index, ann["source"]))
    pair_ids = [ann["pair_id"] for _, _, ann in records]
    assert pair_ids == sorted(pair_ids)
    for members in groups.values():
        indices = [i for i, _ in members]
        assert indices == list(range(indices[0], indices[0] + len(indices)))
        sources = [s for _, s in members]
        assert sources == sorted(sources, key=lambda s: s != "user")  # users, then shops
    assert 2 <= np.mean([len(m) for m in groups.values()]) <= 4


def test_style_marks_the_garment_shared_by_a_pair(records):
    by_pair: dict[int, list[set]] = {}
    for _, _, ann in records:
        styled = {ann[k]["category_id"] for k in _item_keys(ann) if ann[k]["style"] > 0}
        by_pair.setdefault(ann["pair_id"], []).append(styled)
    shared = [set.intersection(*m) for m in by_pair.values() if len(m) > 1 and all(m)]
    assert shared and all(len(s) == 1 for s in shared)


def test_occlusion_follows_draw_order(records):
    """Items are numbered in draw order: the last one is never covered, earlier ones can be."""
    occlusion_of_earlier = Counter()
    for _, _, ann in records:
        keys = _item_keys(ann)
        last = ann[keys[-1]]
        assert last["occlusion"] == 1 and 1 not in last["landmarks"][2::3]
        occlusion_of_earlier.update(ann[k]["occlusion"] for k in keys[:-1])
    assert set(occlusion_of_earlier) == {1, 2, 3}


def test_covered_landmarks_lie_under_a_later_item(records):
    """A landmark marked occluded (v=1) is inside the outline of an item drawn after it; v=2 is not."""
    checked = 0
    for _, image, ann in records[:80]:
        height, width = image.shape[:2]
        keys = _item_keys(ann)
        masks = []
        for k in keys:
            m = np.zeros((height, width), np.uint8)
            cv2.fillPoly(m, [np.array(ann[k]["segmentation"][0]).reshape(-1, 2).astype(np.int32)], 1)
            masks.append(m.astype(bool))
        for n, k in enumerate(keys):
            later = np.any(masks[n + 1:], axis=0) if n + 1 < len(keys) else np.zeros((height, width), bool)
            lm = ann[k]["landmarks"]
            for x, y, v in zip(lm[0::3], lm[1::3], lm[2::3]):
                if v:
                    assert later[y, x] == (v == 1)
                    checked += 1
    assert checked > 1000


# --- quirks -------------------------------------------------------------------------------------------------


def _numbers(value):
    if isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    else:
        yield value


def _detect_item(key: str, item: dict, width: int, height: int) -> list[tuple[str, str]]:
    found = []
    if "category_id" not in item:
        found.append(P.BAD_FIELD)
    elif item["category_id"] not in range(1, 14):
        found.append(P.UNKNOWN_CATEGORY)
    seg = item["segmentation"]
    if not seg:
        found.append(P.NO_POLYGON)
    if any(len(p) < 6 for p in seg):
        found.append(P.SHORT_POLYGON)
    if any(len(p) % 2 for p in seg):
        found.append(P.ODD_POLYGON)
    if len(item["landmarks"]) < 3 * NAME_TO_CATEGORY[item["category_name"]].num_landmarks:
        found.append(P.FEW_LANDMARKS)
    points = [(p[i], p[i + 1]) for p in seg for i in range(0, len(p) - 1, 2)]
    box = item["bounding_box"]
    points += [(box[0], box[1]), (box[2], box[3])]
    lm = item["landmarks"]
    points += list(zip(lm[0::3], lm[1::3]))
    if any(not (0 <= x <= width - 1 and 0 <= y <= height - 1) for x, y in points):
        found.append(P.OUT_OF_IMAGE)
    return [(key, name) for name in found]


def _detect(split: Path, stem: str) -> list[tuple[str | None, str]]:
    """Quirks of one image, found from the files alone."""
    image_path, anno_path = split / "image" / f"{stem}.jpg", split / "annos" / f"{stem}.json"
    if not image_path.exists():
        return [(None, P.MISSING_IMAGE)]
    image = cv2.imread(str(image_path))
    if image is None:
        return [(None, P.UNREADABLE_IMAGE)]
    try:
        ann = json.loads(anno_path.read_text())
    except json.JSONDecodeError:
        return [(None, P.UNREADABLE_FILE)]
    height, width = image.shape[:2]
    found: list[tuple[str | None, str]] = []
    keys = _item_keys(ann)
    if [int(k[4:]) for k in keys] != list(range(1, len(keys) + 1)):
        found.append((None, P.GAP_ITEM_KEYS))
    duplicate = split / "image" / f"{stem}.png"
    if duplicate.exists():
        assert np.array_equal(cv2.imread(str(duplicate)).shape, image.shape)  # the same picture, as PNG
        found.append((None, P.DUPLICATE_NUMBER))
    fields = [ann[k][f] for k in keys for f in ("segmentation", "bounding_box", "landmarks")]
    if any(isinstance(v, float) for v in _numbers(fields)):
        found.append((None, P.FLOAT_COORDS))
    for key in keys:
        found += _detect_item(key, ann[key], width, height)
    return found


def test_every_injected_quirk_is_recorded_exactly(tmp_path):
    summary = generate_split(tmp_path, 130, seed=21, quirk_rate=1.0, min_side=64, max_side=128, workers=2)
    detected = []
    for n in range(1, 131):
        stem = f"{n:06d}"
        detected += [(stem, key, name) for key, name in _detect(tmp_path, stem)]
    assert Counter(detected) == Counter(summary.quirk_records)
    assert set(summary.quirks) == set(P.PROBLEMS) | set(P.BENIGN_QUIRKS)  # every kind injected at this size
    assert summary.quirks == dict(Counter(name for _, _, name in summary.quirk_records))
    assert summary.quirk_records == sorted(summary.quirk_records, key=lambda r: (r[0], r[1] or "", r[2]))
    stems_with_quirks = {stem for stem, _, _ in summary.quirk_records}
    assert len(stems_with_quirks) == 130  # quirk_rate 1.0: every image


def test_no_quirks_without_a_quirk_rate(tmp_path):
    summary = generate_split(tmp_path, 20, seed=4, min_side=64, max_side=100, workers=1)
    assert summary.quirks == {} and summary.quirk_records == []
    assert all(_detect(tmp_path, f"{n:06d}") == [] for n in range(1, 21))
    assert summary.num_items == sum(summary.items_per_category.values())
    written = sum(len(_item_keys(json.loads(p.read_text()))) for p in (tmp_path / "annos").iterdir())
    assert summary.num_items == written


def test_images_only_split(tmp_path):
    summary = generate_split(tmp_path, 12, seed=2, quirk_rate=0.5, min_side=64, max_side=96, workers=1,
                             with_annos=False)
    assert not (tmp_path / "annos").exists()
    assert {name for _, _, name in summary.quirk_records} <= {P.UNREADABLE_IMAGE}
    bad = {stem for stem, _, _ in summary.quirk_records}
    for n in range(1, 13):
        readable = cv2.imread(str(tmp_path / "image" / f"{n:06d}.jpg")) is not None
        assert readable == (f"{n:06d}" not in bad)


def test_a_failing_worker_raises_instead_of_hanging(tmp_path):
    (tmp_path / "annos" / "000003.json").mkdir(parents=True)  # the worker cannot write this file
    with pytest.raises(RuntimeError, match="cannot write .*000003.json: Is a directory"):
        generate_split(tmp_path, 8, seed=1, min_side=64, max_side=80, workers=2)


def test_workers_after_in_process_generation(tmp_path):
    """Worker processes start cleanly after OpenCV's thread pool ran in this process (fork would hang)."""
    generate_split(tmp_path / "a", 4, seed=1, min_side=300, max_side=400, workers=1)
    summary = generate_split(tmp_path / "b", 6, seed=1, min_side=64, max_side=80, workers=2)
    assert summary.num_images == 6 and len(list((tmp_path / "b" / "annos").iterdir())) == 6


@pytest.mark.parametrize("kwargs", [dict(num_images=-1), dict(quirk_rate=1.5), dict(min_side=300, max_side=200)])
def test_bad_arguments_raise(tmp_path, kwargs):
    args = dict(num_images=2) | kwargs
    with pytest.raises(ValueError):
        generate_split(tmp_path, args.pop("num_images"), **args)


def test_generator_does_not_import_tensorflow():
    code = "import sys, df2coco.synthetic; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --- CLI ----------------------------------------------------------------------------------------------------


def _synth(*args):
    from fseg.cli import cli

    return CliRunner().invoke(cli, ["synth", *map(str, args)])


def test_cli_writes_a_split_and_a_summary(tmp_path):
    out = tmp_path / "split"
    result = _synth(out, "--images", 6, "--seed", 3, "--min-side", 64, "--max-side", 96, "--workers", 1,
                    "--quirk-rate", 1.0)
    assert result.exit_code == 0, result.output
    assert "6 images" in result.output and "short sleeve top" in result.output
    assert "Injected quirks" in result.output
    assert len(list((out / "annos").iterdir())) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]  # no temporary folder left
    again = generate_split(tmp_path / "lib", 6, seed=3, quirk_rate=1.0, min_side=64, max_side=96, workers=1)
    assert isinstance(again, SynthSummary) and _files(out) == _files(tmp_path / "lib")


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path):
    out = tmp_path / "split"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = _synth(out, "--images", 2, "--min-side", 64, "--max-side", 80)
    assert result.exit_code == 2 and "Error:" in result.output and "--force" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = _synth(out, "--images", 2, "--min-side", 64, "--max-side", 80, "--force", "--no-annos")
    assert result.exit_code == 2 and "keep.txt" in result.output  # --force replaces only a split
    (out / "keep.txt").unlink()
    (out / "image").mkdir()
    (out / "image" / "000009.jpg").write_bytes(b"an earlier split")
    result = _synth(out, "--images", 2, "--min-side", 64, "--max-side", 80, "--force", "--no-annos")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "image").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]


@pytest.mark.parametrize("args", [["--images", 0], ["--images", 2, "--min-side", 200, "--max-side", 100],
                                  ["--images", 2, "--quirk-rate", 2], []])
def test_cli_bad_usage_exits_2(tmp_path, args):
    result = _synth(tmp_path / "out", *args)
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_cli_output_that_is_a_file_exits_2(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = _synth(target, "--images", 1, "--force")
    assert result.exit_code == 2 and target.read_text() == "x"
    assert "Traceback" not in result.output


def test_cli_failure_exits_1_and_keeps_the_old_split(tmp_path, monkeypatch):
    import df2coco.synthetic

    out = tmp_path / "split"
    (out / "annos").mkdir(parents=True)
    (out / "annos" / "000001.json").write_text("old")

    def broken(out_dir, *args, **kwargs):
        (Path(out_dir) / "image").mkdir()
        (Path(out_dir) / "image" / "000001.jpg").write_bytes(b"half")
        raise RuntimeError("synthetic-data worker exited with code 1: disk full")

    monkeypatch.setattr(df2coco.synthetic, "generate_split", broken)
    result = _synth(out, "--images", 3, "--force")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "Error: synthetic-data worker exited with code 1: disk full"
    assert [p.name for p in out.iterdir()] == ["annos"] and (out / "annos" / "000001.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]  # temporary folder removed
