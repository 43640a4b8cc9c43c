"""`fseg convert` and `fseg stats` through click's CliRunner: exit codes, messages, files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fseg.cli import cli

SQUARE = [10, 10, 40, 10, 40, 40, 10, 40, 10, 10]
ITEM = {"segmentation": [SQUARE], "scale": 1, "viewpoint": 2, "zoom_in": 1, "occlusion": 1, "style": 0,
        "landmarks": [12, 12, 2] * 8, "bounding_box": [10, 10, 40, 40], "category_id": 9,
        "category_name": "skirt"}


def make_split(root: Path, annos: dict[int, dict | bytes], with_annos: bool = True) -> Path:
    (root / "image").mkdir(parents=True)
    if with_annos:
        (root / "annos").mkdir()
    for n, content in annos.items():
        Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(root / "image" / f"{n:06d}.jpg")
        if with_annos:
            raw = content if isinstance(content, bytes) else json.dumps(content).encode()
            (root / "annos" / f"{n:06d}.json").write_bytes(raw)
    return root


@pytest.fixture
def clean_split(tmp_path):
    return make_split(tmp_path / "split", {1: {"source": "user", "pair_id": 1, "item1": ITEM},
                                           2: {"source": "shop", "pair_id": 1, "item1": ITEM, "item2": ITEM}})


@pytest.fixture
def broken_split(tmp_path):
    return make_split(tmp_path / "broken", {1: {"source": "user", "pair_id": 1, "item1": ITEM},
                                            2: b'{"source": "shop", "pair'})


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_convert_clean_split(clean_split, tmp_path):
    out = tmp_path / "out.json"
    result = run("convert", clean_split, "--out", out, "--workers", 1)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["images"]) == 2 and [a["id"] for a in data["annotations"]] == [1, 2, 3]
    assert "No problems found." in result.stderr
    assert "Wrote 2 images and 3 annotations" in result.stderr


def test_convert_with_problems_succeeds_and_summarises(broken_split, tmp_path):
    out, report = tmp_path / "out.json", tmp_path / "problems.jsonl"
    result = run("convert", broken_split, "--out", out, "--report", report, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "unreadable_file" in result.stderr and "skipped_image" in result.stderr
    assert json.loads(report.read_text())["problem"] == "unreadable_file"
    assert len(json.loads(out.read_text())["images"]) == 1


def test_strict_fails_with_exit_1_and_writes_nothing(broken_split, tmp_path):
    out = tmp_path / "out.json"
    result = run("convert", broken_split, "--out", out, "--strict", "--workers", 1)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 problem(s) found; --strict: no output written"
    assert not out.exists()


def test_strict_on_clean_split_exits_0(clean_split, tmp_path):
    result = run("convert", clean_split, "--out", tmp_path / "out.json", "--strict", "--workers", 1)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args_fn, message", [
    (lambda s, t: ["convert", t / "missing", "--out", t / "o.json"], "split folder not found"),
    (lambda s, t: ["convert", s, "--out", t / "o.json", "--annos", t / "missing"], "annotation folder not found"),
    (lambda s, t: ["convert", "--out", t / "o.json"], "give a split folder or --images"),
    (lambda s, t: ["convert", s, "--out", t / "nodir" / "o.json"], "output folder not found"),
])
def test_usage_errors_exit_2_with_one_line(clean_split, tmp_path, args_fn, message):
    result = run(*args_fn(clean_split, tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_bad_option_values_exit_2(clean_split, tmp_path):
    assert run("convert", clean_split, "--out", tmp_path / "o.json", "--area", "poly").exit_code == 2
    assert run("convert", clean_split, "--out", tmp_path / "o.json", "--limit", 0).exit_code == 2
    assert run("convert", clean_split).exit_code == 2  # --out missing


def test_existing_output_needs_force(clean_split, tmp_path):
    out = tmp_path / "out.json"
    out.write_text("keep me")
    result = run("convert", clean_split, "--out", out, "--workers", 1)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert out.read_text() == "keep me"
    assert run("convert", clean_split, "--out", out, "--workers", 1, "--force").exit_code == 0
    assert json.loads(out.read_text())["annotations"]


def test_options_reach_the_converter(clean_split, tmp_path):
    out = tmp_path / "out.json"
    result = run("convert", "--images", clean_split / "image", "--annos", clean_split / "annos", "--out", out,
                 "--area", "bbox", "--no-keypoints", "--limit", 1, "--workers", 1)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [im["id"] for im in data["images"]] == [1]
    (only,) = data["annotations"]
    assert only["area"] == 30 * 30 and "keypoints" not in only


def test_test_split_note(tmp_path):
    root = make_split(tmp_path / "test", {1: {}, 2: {}}, with_annos=False)
    out = tmp_path / "out.json"
    result = run("convert", root, "--out", out, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "images and categories only" in result.stderr
    assert len(json.loads(out.read_text())["images"]) == 2


def test_help_explains_and_gives_examples():
    result = run("convert", "--help")
    assert result.exit_code == 0
    for text in ("--strict", "--report", "--area", "--no-keypoints", "Examples:", "fseg convert"):
        assert text in result.output


def test_stats_text_and_json(clean_split, tmp_path):
    out = tmp_path / "out.json"
    assert run("convert", clean_split, "--out", out, "--workers", 1).exit_code == 0
    text = run("stats", out)
    assert text.exit_code == 0
    assert "images:      2" in text.output and "annotations: 3" in text.output
    skirt_line = next(line for line in text.output.splitlines() if " skirt " in line)
    assert skirt_line.split()[2] == "3" and "#" in skirt_line
    as_json = run("stats", out, "--json")
    stats = json.loads(as_json.output)
    assert stats["attributes"]["source"] == {"shop": 1, "user": 1}
    assert stats["area_quantiles"]["0.5"] == 900  # 30 x 30 squares


def test_stats_bad_file_exit_2(tmp_path):
    (tmp_path / "x.json").write_text("not json")
    result = run("stats", tmp_path / "x.json")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")
    assert run("stats", tmp_path / "missing.json").exit_code == 2
