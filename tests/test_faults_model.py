"""Faults around the model commands (issue 9): each is fed and checked for its one-line message, the exit
code, no temporary file left behind, and earlier outputs and inputs unchanged. The converter's faults are
in tests/test_cli_convert_faults.py and tests/test_cli_convert_signals.py.

Disk-full and read-only cases inject the OS error (a patched writer) or use a folder without write
permission; as root, permissions do not stop writes, so those cases patch ``os.access`` instead.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fseg.cli import cli

TEST_IMG = Path(__file__).resolve().parents[1] / "test_img"

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def one_line_error(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- 5, 7: outputs that cannot be written
def test_predict_refuses_an_unwritable_out_before_loading_the_model(small_model_files, tmp_path, monkeypatch):
    config, weights = small_model_files
    out = tmp_path / "out"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == out and mode & os.W_OK else real_access(p, mode))
    result = run("predict", TEST_IMG / "test.png", "--out", out, "--weights", weights, "--config", config)
    one_line_error(result, 2, "not writable")
    assert "Weights:" not in result.output and not list(out.iterdir())  # stopped before any work


@pytest.mark.parametrize("taken, flags, fragment", [
    ("predictions.json", (), "a folder of that name exists"),
    ("crops", ("--crops",), "a file of that name exists"),
])
def test_predict_output_names_taken_by_the_wrong_kind(small_model_files, tmp_path, taken, flags, fragment):
    config, weights = small_model_files
    out = tmp_path / "out"
    out.mkdir()
    (out / taken).mkdir() if taken.endswith(".json") else (out / taken).write_text("not a folder")
    before = tree_digest(out)
    result = run("predict", TEST_IMG / "test.png", "--out", out, "--weights", weights, "--config", config, *flags)
    one_line_error(result, 2, fragment)
    assert tree_digest(out) == before


def interrupted_predict(monkeypatch, out: Path, config, weights, *inputs) -> None:
    """A predict of ``inputs`` into ``out`` stopped by a full disk at its third overlay (two images finished)."""
    from mrcnn.io import images as image_io

    real_write = image_io.write_image
    calls = []

    def write_until_full(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, image)

    with monkeypatch.context() as patch:
        patch.setattr(image_io, "write_image", write_until_full)
        result = run("predict", *inputs, "--out", out, "--weights", weights, "--config", config)
    one_line_error(result, 1, "No space left on device", "--resume")


def test_predict_on_a_full_disk_keeps_finished_images_and_resumes(small_model_files, reuse_built_models, tmp_path,
                                                                  monkeypatch):
    config, weights = small_model_files
    out = tmp_path / "out"
    interrupted_predict(monkeypatch, out, config, weights, TEST_IMG)
    assert no_temporary_files(out) and not (out / "predictions.json").exists()
    assert len(list(out.glob("*.png"))) == 2  # the two finished overlays are kept
    resumed = run("predict", TEST_IMG, "--out", out, "--weights", weights, "--config", config, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "2 of 6 images were done before" in resumed.output
    images = json.loads((out / "images.json").read_text())["images"]
    assert sorted(i["file_name"] for i in images) == sorted(p.name for p in TEST_IMG.glob("*.png"))
    assert not (out / ".predict-journal").exists()


def test_predict_resume_knows_the_images_however_their_folder_is_spelled(small_model_files, reuse_built_models,
                                                                         tmp_path, monkeypatch):
    config, weights = small_model_files
    out = tmp_path / "out"
    interrupted_predict(monkeypatch, out, config, weights, TEST_IMG)  # an absolute path
    monkeypatch.chdir(REPO)
    resumed = run("predict", "test_img/", "--out", out, "--weights", weights, "--config", config, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "2 of 6 images were done before" in resumed.output
    images = json.loads((out / "images.json").read_text())["images"]
    assert sorted(i["id"] for i in images) == [1, 2, 3, 4, 5, 6]  # each image once
    ids = {r["image_id"] for r in json.loads((out / "predictions.json").read_text())}
    assert ids <= {1, 2, 3, 4, 5, 6}


def test_predict_resume_with_other_inputs_is_refused(small_model_files, reuse_built_models, tmp_path, monkeypatch):
    config, weights = small_model_files
    out = tmp_path / "out"
    interrupted_predict(monkeypatch, out, config, weights, TEST_IMG)
    journal = (out / ".predict-journal").read_bytes()
    others = tmp_path / "others"
    others.mkdir()
    (others / "mine.png").write_bytes((TEST_IMG / "test.png").read_bytes())
    result = run("predict", others, "--out", out, "--weights", weights, "--config", config, "--resume")
    one_line_error(result, 2, "--resume", "2 finished images", "not among these inputs")
    # The same photos in another order would number them differently (ids follow the input order here).
    reordered = sorted(TEST_IMG.glob("*.png"), reverse=True)
    result = run("predict", *reordered, "--out", out, "--weights", weights, "--config", config, "--resume")
    one_line_error(result, 2, "--resume", "number the images differently")
    assert (out / ".predict-journal").read_bytes() == journal and not (out / "predictions.json").exists()


def test_train_on_a_full_disk_at_a_checkpoint(tmp_path, monkeypatch):
    import test_cli_train as t
    from mrcnn.io import weights as weights_io

    annotations, images = t.make_split(tmp_path / "data", images=4)
    config = t.write_config(tmp_path / "tiny.toml")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights_io, "save_weights", full)
    monkeypatch.setattr("mrcnn.train.callbacks.save_weights", full)
    result = run("train", "--annotations", annotations, "--images", images, "--weights", "none", "--config", config,
                 "--logs", tmp_path / "logs", "--layers", "heads", "--epochs", "1")
    one_line_error(result, 1, "cannot write the checkpoint", "No space left on device", "no epoch was completed")
    assert no_temporary_files(tmp_path / "logs")


def test_train_refuses_unwritable_logs_and_a_nan_learning_rate(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == logs and mode & os.W_OK else real_access(p, mode))
    base = ["train", "--annotations", __file__, "--images", tmp_path, "--weights", "none"]
    one_line_error(run(*base, "--logs", logs), 2, "--logs", "not writable")
    one_line_error(run(*base, "--logs", tmp_path / "other", "--lr", "nan"), 2, "--lr must be a finite number")


def test_train_without_any_annotation_is_refused(tmp_path):
    import test_cli_train as t

    annotations, images = t.make_split(tmp_path / "data", images=4)
    coco = json.loads(annotations.read_text())
    coco["annotations"] = []
    annotations.write_text(json.dumps(coco))
    result = run("train", "--annotations", annotations, "--images", images, "--weights", "none",
                 "--config", t.write_config(tmp_path / "tiny.toml"), "--logs", tmp_path / "logs")
    one_line_error(result, 2, "no image has an annotated instance")
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").iterdir())


# ---------------------------------------------------------------- 8: damaged weights
def damaged_copy(weights: Path, folder: Path) -> Path:
    data = bytearray(weights.read_bytes())
    data[2000:22000] = bytes(20000)
    damaged = folder / "damaged.h5"
    damaged.write_bytes(bytes(data))
    return damaged


def test_damaged_hdf5_metadata_is_one_line_everywhere(small_model_files, tmp_path):
    config, weights = small_model_files
    damaged = damaged_copy(weights, tmp_path)
    one_line_error(run("weights", "inspect", damaged), 1, "damaged.h5")
    one_line_error(run("predict", TEST_IMG / "test.png", "--out", tmp_path / "out", "--weights", damaged,
                       "--config", config), 1, "damaged.h5")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 9: config values
@pytest.mark.parametrize("setting, fragment", [
    ("IMAGES_PER_GPU = 0", "IMAGES_PER_GPU must be an integer >= 1"),
    ("IMAGES_PER_GPU = -2", "IMAGES_PER_GPU must be an integer >= 1"),
    ("IMAGE_MIN_DIM = inf", "IMAGE_MIN_DIM must be an integer"),
    ("IMAGE_MIN_DIM = 200.5", "IMAGE_MIN_DIM must be an integer"),
    ("IMAGE_MIN_DIM = -256", "IMAGE_MIN_DIM must be an integer >= 0"),
    ("DETECTION_MAX_INSTANCES = 0", "DETECTION_MAX_INSTANCES must be an integer >= 1"),
    ("DETECTION_MIN_CONFIDENCE = nan", "DETECTION_MIN_CONFIDENCE must be a finite number"),
    ("LEARNING_RATE = inf", "LEARNING_RATE must be a finite number"),
    ('OPTIMIZER = "rmsprop"', "OPTIMIZER must be one of sgd, adam"),
    ("LANDMARK_ROI_MARGIN = 1.5", "LANDMARK_ROI_MARGIN must be a finite number in [0, 1)"),
    ("LANDMARK_ROI_MARGIN = -0.1", "LANDMARK_ROI_MARGIN must be a finite number in [0, 1)"),
    ("TRAIN_THREADS_PER_OP = -1", "TRAIN_THREADS_PER_OP must be an integer >= 0"),
    ("TRAIN_THREADS_PER_OP = true", "TRAIN_THREADS_PER_OP must be an integer"),
])
def test_bad_config_values_are_refused_before_any_model(tmp_path, setting, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(f'NAME = "bad"\n{setting}\n')
    one_line_error(run("predict", TEST_IMG / "test.png", "--out", tmp_path / "out", "--config", path), 2,
                   fragment, "bad.toml")


def test_a_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('NAME = "caf\xe9"\n'.encode("latin-1"))
    one_line_error(run("predict", TEST_IMG / "test.png", "--out", tmp_path / "out", "--config", path), 2,
                   "not UTF-8")


# ---------------------------------------------------------------- 10: results files
@pytest.mark.parametrize("change, fragment", [
    ({"score": "0.9"}, "score must be a finite number"),
    ({"score": None}, "score must be a finite number"),
    ({"score": float("nan")}, "score must be a finite number"),
    ({"bbox": [1, 2, float("nan"), 4]}, "bbox must be"),
    ({"segmentation": {"size": [10, 10], "counts": 7}}, "segmentation RLE needs counts"),
])
def test_evaluate_rejects_bad_result_values(tmp_path, change, fragment):
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
          "categories": [{"id": 1, "name": "top"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                           "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]}]}
    record = {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [1, 1, 4, 4]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps([{**record, **change}]))
    result = run("evaluate", "-a", tmp_path / "gt.json", "-r", tmp_path / "res.json")
    one_line_error(result, 2, "record 0", fragment)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("change, fragment", [
    ({"width": "abc"}, "width 'abc', not a positive integer"),
    ({"height": 0}, "height 0, not a positive integer"),
    ({"id": "1"}, "id '1', not an integer"),
    ({"file_name": None}, "file_name None, not a string"),
])
def test_evaluate_rejects_bad_ground_truth_values(tmp_path, change, fragment):
    image = {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}
    gt = {"images": [{**image, **change}], "categories": [{"id": 1, "name": "top"}], "annotations": []}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps([]))
    one_line_error(run("evaluate", "-a", tmp_path / "gt.json", "-r", tmp_path / "res.json"), 2, "gt.json", fragment)
    assert not (tmp_path / "metrics.json").exists()


def test_evaluate_stopped_while_scoring_keeps_its_detections_and_no_stale_metrics(
        small_model_files, reuse_built_models, tmp_path, monkeypatch):
    from df2coco.convert import convert_split
    from df2coco.synthetic.split import generate_split
    from fseg import cmd_evaluate
    from fseg.cli_util import Interrupted

    config, weights = small_model_files
    generate_split(tmp_path / "val", 2, seed=4, min_side=64, max_side=128, workers=1)
    convert_split(tmp_path / "val", tmp_path / "val.json", workers=1)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"an earlier run": 1}')

    def stopped(*args, **kwargs):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(cmd_evaluate, "score", stopped)
    result = run("evaluate", "-a", tmp_path / "val.json", "-i", tmp_path / "val" / "image", "-w", weights,
                 "-c", config, "--out", out)
    one_line_error(result, 143, "SIGTERM", f"the detections are in {out / 'results.json'}", "--results")
    assert isinstance(json.loads((out / "results.json").read_text()), list)
    assert not (out / "metrics.json").exists()  # it scored other detections


# ---------------------------------------------------------------- 11: signals, and resuming after them
@pytest.mark.slow
def test_predict_stopped_by_sigterm_exits_143_and_resumes(small_model_files, tmp_path):
    config, weights = small_model_files
    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(30):
        (inputs / f"{k:03d}.png").write_bytes((TEST_IMG / "test1.png").read_bytes())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fseg", "predict", str(inputs), "--out", str(out), "--weights", str(weights),
               "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list(out.glob("*.png"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "--resume" in lines[0] and "Traceback" not in stderr
    assert no_temporary_files(out) and not (out / "predictions.json").exists()
    # An image is finished once its journal line is written, after its overlay: a SIGTERM between the two
    # leaves one overlay more than finished images, and --resume redoes that image.
    journal = out / ".predict-journal"
    finished = len(journal.read_text().splitlines()) if journal.exists() else 0
    assert finished <= len(list(out.glob("*.png"))) <= finished + 1
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} of 30 images were done before" in resumed.stderr or finished == 0
    images = json.loads((out / "images.json").read_text())["images"]
    assert sorted(i["file_name"] for i in images) == sorted(p.name for p in inputs.iterdir())
    records = json.loads((out / "predictions.json").read_text())
    assert all(r["image_id"] in {i["id"] for i in images} for r in records)


def test_two_predict_runs_into_one_folder(small_model_files, reuse_built_models, tmp_path):
    """The second run stops at once while the first holds the journal."""
    import fcntl

    from fseg.predict_output import JOURNAL_FILE

    config, weights = small_model_files
    out = tmp_path / "out"
    out.mkdir()
    with (out / JOURNAL_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run("predict", TEST_IMG / "test.png", "--out", out, "--weights", weights, "--config", config)
    one_line_error(result, 2, "another fseg predict is writing")


def test_training_skips_truncated_images_and_names_them(tmp_path, caplog):
    """10 % of the training images are truncated JPEGs: the run finishes its epochs and names them."""
    import csv

    import test_cli_train as t

    annotations, images = t.make_split(tmp_path / "data", images=10)
    coco = json.loads(annotations.read_text())
    victim = next(images / i["file_name"] for i in coco["images"])
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])  # a cut download
    # 10 steps of one image: the epoch needs more than the 9 readable images, so it has tried all 10.
    config = t.write_config(tmp_path / "tiny.toml", STEPS_PER_EPOCH=10, IMAGES_PER_GPU=1)
    result = run("train", "--annotations", annotations, "--images", images, "--weights", "none",
                 "--config", config, "--logs", tmp_path / "logs", "--layers", "heads", "--epochs", "2")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "logs").iterdir()
    with (run_dir / "training_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [float(r["skipped_images"]) for r in rows] == [1, 1]  # a running count: the one image, once
    assert "skipped_images" in result.output  # the epoch line of the progress output
    named = [r.getMessage() for r in caplog.records if "unreadable image" in r.getMessage()]
    assert named and all(victim.name in message for message in named)
