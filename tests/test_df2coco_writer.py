"""df2coco.writer (atomic files, streaming COCO JSON) and df2coco.report (summary table)."""
from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from df2coco.report import Problem, format_summary
from df2coco.writer import AtomicTextFile, CocoWriter, with_id


def test_coco_writer_streams_valid_json(tmp_path):
    out = tmp_path / "coco.json"
    with CocoWriter(out, {"description": "t"}, [{"id": 1, "name": "a"}]) as w:
        w.add_image('{"id":1}')
        w.add_annotation(with_id('{"image_id":1}', 1))
        w.add_image('{"id":2}')
        w.add_annotation(with_id('{"image_id":2}', 2))
        w.commit()
    assert json.loads(out.read_text()) == {
        "info": {"description": "t"}, "licenses": [], "categories": [{"id": 1, "name": "a"}],
        "images": [{"id": 1}, {"id": 2}],
        "annotations": [{"id": 1, "image_id": 1}, {"id": 2, "image_id": 2}]}
    assert os.listdir(tmp_path) == ["coco.json"]


def test_coco_writer_with_no_records(tmp_path):
    out = tmp_path / "coco.json"
    with CocoWriter(out, {}, []) as w:
        w.commit()
    assert json.loads(out.read_text())["images"] == [] and json.loads(out.read_text())["annotations"] == []


def test_uncommitted_writer_leaves_nothing_and_keeps_old_file(tmp_path):
    out = tmp_path / "coco.json"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with CocoWriter(out, {}, []) as w:
            w.add_image('{"id":1}')
            raise KeyboardInterrupt
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["coco.json"]


def test_atomic_text_file_replaces_on_commit_only(tmp_path):
    path = tmp_path / "r.jsonl"
    with AtomicTextFile(path) as f:
        f.write("x\n")
        assert not path.exists()
        f.commit()
    assert path.read_text() == "x\n"
    with AtomicTextFile(path) as f:
        f.write("y\n")  # no commit
    assert path.read_text() == "x\n" and os.listdir(tmp_path) == ["r.jsonl"]


def test_problem_record_and_summary_table():
    p = Problem("annos/000001.json", "item2", "odd_polygon", "dropped_polygon", "1 of 2 polygon(s)")
    assert json.loads(p.to_json()) == {"file": "annos/000001.json", "item": "item2", "problem": "odd_polygon",
                                       "action": "dropped_polygon", "detail": "1 of 2 polygon(s)"}
    table = format_summary(Counter({("odd_polygon", "dropped_polygon"): 2, ("missing_image", "skipped_image"): 1}))
    rows = [line.split() for line in table.splitlines()]
    assert rows[2] == ["missing_image", "skipped_image", "1"]
    assert rows[3] == ["odd_polygon", "dropped_polygon", "2"]
    assert rows[-1] == ["total", "3"]
    assert format_summary(Counter()) == "No problems found."
