"""Where `fseg convert` and `fseg synth` may write (audit items 1, 7-11): never over a device, FIFO or
socket; never over a file another run wrote meanwhile (without --force); never an arbitrary folder;
leftovers of killed runs removed, those of running ones kept; malformed numbers and nesting reported.
"""
from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from test_cli_convert_faults import SKIRT, assert_one_line_error, leftovers, make_split, run, snapshot


@pytest.fixture
def split(tmp_path):
    return make_split(tmp_path / "split", 3)


# ---- item 1: a device, FIFO, socket or symbolic link is never replaced ----------------------------------

def _make(kind: str, path: Path) -> None:
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.with_name("target.json").write_text("target")
        path.symlink_to("target.json")


@pytest.mark.parametrize("kind, mode", [("FIFO", stat.S_ISFIFO), ("socket", stat.S_ISSOCK),
                                        ("symbolic link", stat.S_ISLNK)])
@pytest.mark.parametrize("option", ["--out", "--report"])
def test_a_non_regular_output_is_refused_before_work(split, tmp_path, monkeypatch, kind, mode, option):
    import df2coco.worker

    def no_work(*args):
        raise AssertionError("an image was read")

    monkeypatch.setattr(df2coco.worker, "convert_image", no_work)
    target = tmp_path / "target"
    _make(kind, target)
    paths = {"--out": tmp_path / "out.json", "--report": tmp_path / "r.jsonl"} | {option: target}
    result = run("convert", split, "--out", paths["--out"], "--report", paths["--report"], "--force")
    assert_one_line_error(result, 2, f"{target} is a {kind}, not a regular file; give a file path")
    assert mode(os.lstat(target).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["split", "target"] + (
        ["target.json"] if kind == "symbolic link" else []))


# ---- item 7, 8: malformed numbers, deep nesting, repeated item keys are reported, the run goes on -------

def test_malformed_files_are_reported_and_the_run_goes_on(split, tmp_path):
    annos = split / "annos"
    (annos / "000001.json").write_text(json.dumps({"source": "user", "pair_id": 1, "item1": SKIRT | {
        "landmarks": [10**400, 12, 2] + [12, 12, 2] * 7, "bounding_box": [10, 10, 10**400, 40]}}))
    (annos / "000002.json").write_text("[" * 100_000 + "]" * 100_000)
    item = json.dumps(SKIRT)
    (annos / "000003.json").write_text(f'{{"source": "user", "pair_id": 3, "item1": {item}, "item1": {item}}}')
    result = run("convert", split, "--out", tmp_path / "out.json", "--report", tmp_path / "r.jsonl")
    assert result.exit_code == 0, result.output
    found = {(Path(p["file"]).name, p["item"], p["problem"], p["action"])
             for p in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert found == {("000001.json", "item1", "bad_field", "cleared_landmarks"),
                     ("000001.json", "item1", "bad_field", "bbox_from_polygons"),
                     ("000002.json", None, "unreadable_file", "skipped_image"),
                     ("000003.json", "item1", "bad_field", "skipped_item")}
    coco = json.loads((tmp_path / "out.json").read_text())
    assert [a["image_id"] for a in coco["annotations"]] == [1, 3]


# ---- item 10: without --force, an output created during the run is not replaced -------------------------

def another_run_writes(monkeypatch, path: Path, text: str) -> None:
    """While the patched convert runs its first chunk, another run creates ``path``."""
    import df2coco.convert

    real_convert_chunk = df2coco.convert.convert_chunk

    def convert_chunk(chunk, options):
        path.write_text(text)
        return real_convert_chunk(chunk, options)

    monkeypatch.setattr(df2coco.convert, "convert_chunk", convert_chunk)


def test_an_output_created_during_the_run_is_not_replaced(split, tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    another_run_writes(monkeypatch, out, "another run's output")
    result = run("convert", split, "--out", out, "--report", tmp_path / "r.jsonl", "--workers", 1)
    assert_one_line_error(result, 1, f"{out} was created by something else while this run wrote it "
                                     "(another run?); it was left as it is (use --force to replace it)")
    assert out.read_text() == "another run's output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "split"]  # no report, no temporary file


def test_a_report_created_during_the_run_takes_the_new_output_back(split, tmp_path, monkeypatch):
    report = tmp_path / "r.jsonl"
    another_run_writes(monkeypatch, report, "another run's report")
    result = run("convert", split, "--out", tmp_path / "out.json", "--report", report, "--workers", 1)
    assert result.exit_code == 1 and "r.jsonl was created by something else" in result.output
    assert report.read_text() == "another run's report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "split"]


# ---- item 11: temporary files of killed runs ------------------------------------------------------------

def test_convert_removes_leftovers_of_ended_runs_only(split, tmp_path, dead_and_live_pids):
    dead, live = dead_and_live_pids
    dead_names = [f".out.json.{dead}.abcd1234.tmp", f".out.json.annotations.{dead}.abcd1234.tmp",
                  f".r.jsonl.{dead}.abcd1234.tmp"]
    live_names = [f".out.json.{live}.abcd1234.tmp", f".out.json.annotations.{live}.abcd1234.tmp"]
    for name in dead_names + live_names:
        (tmp_path / name).write_text("partial")
    result = run("convert", split, "--out", tmp_path / "out.json", "--report", tmp_path / "r.jsonl")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(live_names + ["out.json", "r.jsonl", "split"])
    assert f"Removed {tmp_path / dead_names[0]}: a temporary file of an earlier run that was killed" in result.output


def test_synth_removes_leftovers_of_ended_runs_only(tmp_path, dead_and_live_pids):
    dead, live = dead_and_live_pids
    for name in (f".synth.tmp-{dead}-ab12", f".synth.tmp-{live}-ab12"):
        (tmp_path / name / "image").mkdir(parents=True)
    result = run("synth", tmp_path / "synth", "--images", 2, "--workers", 1, "--min-side", 32, "--max-side", 40)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".synth.tmp-{live}-ab12", "synth"]


# ---- item 9: synth never replaces the current folder or a folder that is not a split --------------------

def test_synth_refuses_an_empty_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("precious")
    before = snapshot(tmp_path)
    for force in ([], ["--force"]):
        result = run("synth", "", "--images", 2, *force)
        assert_one_line_error(result, 2, "OUT_DIR is empty; give a folder path")
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("where", [".", ".."])
def test_synth_refuses_the_current_folder_and_its_parents(tmp_path, monkeypatch, where):
    (tmp_path / "inner" / "image").mkdir(parents=True)  # even one that looks like a split
    monkeypatch.chdir(tmp_path / "inner")
    result = run("synth", where, "--images", 2, "--force")
    out = (tmp_path / "inner" / where).resolve()
    assert_one_line_error(result, 2, f"{out} holds the current folder; give a new or split folder as OUT_DIR")
    assert (tmp_path / "inner" / "image").is_dir() and leftovers(tmp_path) == []


@pytest.mark.parametrize("extra", ["notes.txt", "image/notes.txt", "annos/000001.json.bak", "image/sub/",
                                   "image/000002.jpg@"])
def test_synth_force_replaces_only_a_split(tmp_path, extra):
    out = tmp_path / "home"
    (out / "image").mkdir(parents=True)
    (out / "annos").mkdir()
    (out / "image" / "000001.jpg").write_bytes(b"jpg")
    path = out / extra.rstrip("/@")
    if extra.endswith("/"):
        path.mkdir()
    elif extra.endswith("@"):
        path.symlink_to(out / "image" / "000001.jpg")
    else:
        path.write_text("precious")
    before = snapshot(tmp_path)
    result = run("synth", out, "--images", 2, "--force")
    assert_one_line_error(result, 2, f"{out} is not a split ({extra.rstrip('/@')} is not an image/ or annos/ "
                                     "file): --force replaces only an earlier split")
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []
