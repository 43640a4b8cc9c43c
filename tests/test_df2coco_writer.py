"""df2coco.writer (atomic files, streaming COCO JSON), df2coco.leftovers and df2coco.report (summary table)."""
from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter

import pytest

from df2coco.errors import OutputError
from df2coco.leftovers import remove_dead_temporary_files, remove_dead_temporary_folders
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


# ---- never replace a non-regular file; no clobbering without replace; leftovers of killed runs -----------

def test_commit_never_renames_over_a_fifo(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="is not a regular file: not replaced"):
        with AtomicTextFile(fifo) as f:
            f.write("x")
            f.commit()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["out.json"]


def test_commit_without_replace_fails_if_the_file_appeared(tmp_path):
    path = tmp_path / "out.json"
    with pytest.raises(OutputError, match="created by something else while this run wrote it"):
        with CocoWriter(path, {}, [], replace=False) as w:
            path.write_text("another run's output")
            w.commit()
    assert path.read_text() == "another run's output" and os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("appears", [False, True])
def test_commit_without_replace_on_a_file_system_without_hard_links(tmp_path, monkeypatch, appears):
    def no_link(src, dst):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "out.json"
    f = AtomicTextFile(path, replace=False)
    f.write("new")
    if appears:
        path.write_text("other")
        with pytest.raises(OutputError, match="created by something else"), f:
            f.commit()
    else:
        with f:
            f.commit()
    assert path.read_text() == ("other" if appears else "new") and os.listdir(tmp_path) == ["out.json"]


def test_temporary_files_are_named_after_the_writer(tmp_path):
    with AtomicTextFile(tmp_path / "out.json") as f:
        assert f.tmp_path.name.startswith(f".out.json.{os.getpid()}.") and f.tmp_path.name.endswith(".tmp")


def test_only_temporary_files_of_ended_processes_are_removed(tmp_path, dead_and_live_pids):
    dead, live = dead_and_live_pids
    names = {"dead": f".out.json.{dead}.abcd1234.tmp", "live": f".out.json.{live}.abcd1234.tmp",
             "other output": f".other.json.{dead}.abcd1234.tmp", "no pid": ".out.json.abcd1234.tmp",
             "dead folder": f".out.json.{dead}.folder.tmp"}
    for name in names.values():
        (tmp_path / name).write_text("x")
    (tmp_path / names["dead folder"]).unlink()
    (tmp_path / names["dead folder"]).mkdir()
    assert remove_dead_temporary_files(tmp_path / "out.json") == [tmp_path / names["dead"]]
    assert sorted(os.listdir(tmp_path)) == sorted(n for k, n in names.items() if k != "dead")


def test_only_temporary_folders_of_ended_processes_are_removed(tmp_path, dead_and_live_pids):
    dead, live = dead_and_live_pids
    names = [f".split.tmp-{dead}-ab12", f".split.tmp-{live}-ab12", f".split.old-{dead}-ab12", ".split.tmp-ab12"]
    for name in names:
        (tmp_path / name / "image").mkdir(parents=True)
    assert remove_dead_temporary_folders(tmp_path / "split") == [tmp_path / names[0]]
    (tmp_path / "split").mkdir()  # the previous split is kept aside only while the new one is not in place
    assert remove_dead_temporary_folders(tmp_path / "split") == [tmp_path / names[2]]
    assert sorted(os.listdir(tmp_path)) == sorted([names[1], names[3], "split"])
