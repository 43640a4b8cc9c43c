"""`fseg train` on inputs that used to train nothing, forever, or over another run: each now stops with one line
or keeps the other run intact (issue 12's hostile-user audit)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli_train import error_lines, invoke, write_config
from test_training import make_split

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("train_inputs_split"), images=4)


def landmark_config(path: Path) -> Path:
    from mrcnn.config import load_config

    counts = load_config(REPO / "configs" / "deepfashion2.toml").LANDMARK_COUNTS
    return write_config(path, ROI_HEADS=["mask", "landmarks"], LANDMARK_COUNTS=counts)


def edited_annotations(annotations: Path, folder: Path, edit) -> Path:
    coco = json.loads(annotations.read_text())
    edit(coco)
    path = folder / "edited.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.mark.parametrize("layers, schedule", [("Heads", None), (None, "al")])
def test_layers_that_select_no_layer_stop_before_training(split, tmp_path, layers, schedule):
    annotations, images = split
    config = write_config(tmp_path / "tiny.toml")
    if schedule is not None:
        config.write_text(config.read_text() + f'TRAIN_SCHEDULE = [{{layers = "{schedule}", epochs = 1, lr_scale = 1.0}}]\n')
    args = ["--layers", layers] if layers else []
    result = invoke("--annotations", annotations, "--images", images, "--weights", "none", "--config", config,
                    "--logs", tmp_path / "logs", *args)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert f"layers '{layers or schedule}' selects no layer" in line and "heads, 3+, 4+, 5+, all" in line
    assert not list((tmp_path / "logs").rglob("*.h5"))


def test_epochs_with_a_time_limit_stop_at_the_epoch(split, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--weights", "none",
                    "--config", write_config(tmp_path / "tiny.toml"), "--logs", tmp_path / "logs",
                    "--layers", "heads", "--epochs", "1", "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "logs").rglob("*.h5")] == ["mask_rcnn_tiny_0001.h5"]


def test_no_readable_training_image_is_one_line_not_a_hang(split, tmp_path):
    annotations, images = split
    broken = tmp_path / "broken"
    broken.mkdir()
    for image in Path(images).iterdir():
        (broken / image.name).write_bytes(b"")  # an interrupted copy: every file empty
    command = [sys.executable, "-m", "fseg", "train", "--annotations", str(annotations), "--images", str(broken),
               "--weights", "none", "--config", str(write_config(tmp_path / "tiny.toml")),
               "--logs", str(tmp_path / "logs"), "--layers", "heads"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "none of the 4 images of the input could be read" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_training_process_prints_no_tensorflow_notices(split, tmp_path):
    # A real process: TensorFlow's C++ lines go to file descriptor 2, past any Python capture. On a 2-core AMD
    # EPYC (Zen 4) every run printed "E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512. Falling
    # back to the default Eigen-based implementation" in its first epoch, between the progress lines.
    annotations, images = split
    command = [sys.executable, "-m", "fseg", "train", "--annotations", str(annotations), "--images", str(images),
               "--weights", "none", "--config", str(write_config(tmp_path / "tiny.toml")),
               "--logs", str(tmp_path / "logs"), "--layers", "heads", "--epochs", "1", "--steps-per-epoch", "2"]
    user_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=user_env)
    assert done.returncode == 0, done.stderr
    absl_lines = [line for line in done.stderr.splitlines() if re.match(r"[IWEF]\d{4} ", line)]
    assert absl_lines == [], done.stderr
    assert "run folder:" in done.stderr and list((tmp_path / "logs").rglob("*_0001.h5"))


def test_keypoints_of_the_wrong_size_are_one_line_before_the_model(split, tmp_path):
    annotations, images = split

    def shorten(coco):
        coco["annotations"][0]["keypoints"] = coco["annotations"][0]["keypoints"][:30]

    bad = edited_annotations(annotations, tmp_path, shorten)
    result = invoke("--annotations", bad, "--images", images, "--weights", "none",
                    "--config", landmark_config(tmp_path / "lmk.toml"), "--logs", tmp_path / "logs")
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert "edited.json: annotation" in line and "'keypoints' has 30 values; it needs 882" in line
    assert "run folder" not in result.output and not (tmp_path / "logs").exists()


def test_no_annotation_at_all_says_so(split, tmp_path):
    annotations, images = split
    empty = edited_annotations(annotations, tmp_path, lambda coco: coco.update(annotations=[]))
    result = invoke("--annotations", empty, "--images", images, "--weights", "none",
                    "--config", landmark_config(tmp_path / "lmk.toml"), "--logs", tmp_path / "logs")
    assert result.exit_code == 2
    assert error_lines(result) == [f"Error: {empty}: no image has an annotated instance: nothing to train on"]


def test_a_run_continues_only_from_its_newest_checkpoint_and_only_under_its_logs(tmp_path):
    from mrcnn.config import load_config
    from mrcnn.model import MaskRCNN

    run = tmp_path / "logs" / "tiny20260101T000000"
    run.mkdir(parents=True)
    for epoch in (1, 2):
        (run / f"mask_rcnn_tiny_000{epoch}.h5").write_bytes(b"")
    model = MaskRCNN("training", load_config(write_config(tmp_path / "tiny.toml")), model_dir=tmp_path / "logs")
    model.set_log_dir(run / "mask_rcnn_tiny_0002.h5")  # the newest: resume in the run's folder
    assert (model.log_dir, model.epoch, model.log_dir_claimed) == (str(run), 2, True)
    model.set_log_dir(run / "mask_rcnn_tiny_0001.h5")  # an older one: its epoch 2 must not be overwritten
    assert model.epoch == 1 and not model.log_dir_claimed and Path(model.log_dir).parent == tmp_path / "logs"
    assert model.claim_log_dir() != run
    elsewhere = MaskRCNN("training", model.config, model_dir=tmp_path / "other_logs")
    elsewhere.set_log_dir(run / "mask_rcnn_tiny_0002.h5")  # another logs folder: a new run there
    assert elsewhere.epoch == 2 and Path(elsewhere.claim_log_dir()).parent == tmp_path / "other_logs"
    assert sorted(p.name for p in run.iterdir()) == ["mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5"]


def test_a_dataset_loaded_without_the_heads_fields_fails_before_training(split, tmp_path):
    # From Python, as docs/usage_train.md shows: a landmark config with a CocoDataset loaded without
    # annotation_fields used to fail mid-epoch with a TensorFlow traceback.
    from mrcnn.config import load_config
    from mrcnn.data.coco import CocoDataset
    from mrcnn.data.dataset import DatasetError
    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields

    annotations, images = split
    config = load_config(landmark_config(tmp_path / "lmk.toml"))
    dataset = CocoDataset()
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES)
    dataset.prepare()
    with pytest.raises(DatasetError, match=r"'keypoints' was not kept: pass annotation_fields=\['keypoints'\]"):
        build_training_dataset(dataset, config, instance_fields=instance_fields(build_roi_heads(config)))
