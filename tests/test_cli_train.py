"""`fseg train` through click's CliRunner: bad input, interrupt and resume, NaN stop, logs.

The expensive part is one interrupted run followed by one resumed run that a NaN
stops (module fixture ``runs``); the tests below check its different promises.
The bad-input tests stop before a model is built.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fseg.cli import cli

from test_training import SMALL, make_split

NAME = "tiny"
CLASS_NAMES = ["BG", "short sleeve top", "long sleeve top", "short sleeve outwear", "long sleeve outwear",
               "vest", "sling", "shorts", "trousers", "skirt", "short sleeve dress", "long sleeve dress",
               "vest dress", "sling dress"]


def toml_value(value) -> str:
    return json.dumps(value)  # numbers, strings and lists of them are the same in TOML and JSON


# The command's behaviour does not depend on the backbone: the light one builds and traces fastest.
LIGHT = {"BACKBONE": "resnet18_half", "TOP_DOWN_PYRAMID_SIZE": 64, "FPN_CLASSIF_FC_LAYERS_SIZE": 128}
C5_CHANNELS = 256  # resnet18_half's last stage


def write_config(path: Path, **overrides) -> Path:
    settings = {"NAME": NAME, "NUM_CLASSES": len(CLASS_NAMES), "CLASS_NAMES": CLASS_NAMES, **SMALL, **LIGHT,
                "STEPS_PER_EPOCH": 1, "VALIDATION_STEPS": 50, **overrides}
    path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items()))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("cli_train_split"), images=4)


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "tiny.toml")


# ------------------------------------------------------------------ bad input (no model built)
def test_val_options_go_together(split, config, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--val-annotations", annotations,
                    "--weights", "none", "--config", config, "--logs", tmp_path / "logs")
    assert result.exit_code == 2
    assert error_lines(result) == ["Error: --val-annotations and --val-images go together"]
    assert "Traceback" not in result.output


def test_weights_last_without_checkpoint_is_a_usage_error(split, config, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--weights", "last", "--config", config,
                    "--logs", tmp_path / "empty_logs")
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and "--weights last: no checkpoint of 'tiny'" in result.output


def test_missing_weights_file_is_a_usage_error(split, config, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--weights", tmp_path / "nope.h5",
                    "--config", config, "--logs", tmp_path / "logs")
    assert result.exit_code == 2 and "nope.h5: file not found" in result.output


def test_annotation_file_that_is_not_coco(split, config, tmp_path):
    _, images = split
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": "world"}))
    result = invoke("--annotations", bad, "--images", images, "--weights", "none", "--config", config,
                    "--logs", tmp_path / "logs")
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and "not a COCO" in error_lines(result)[0]
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ TRAIN_THREADS_PER_OP
def test_threads_per_op_are_set_in_a_fresh_process(split, tmp_path):
    import subprocess
    import sys

    _, images = split
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": "world"}))  # stops the run after the settings are printed
    config = write_config(tmp_path / "threads.toml", TRAIN_THREADS_PER_OP=1)
    result = subprocess.run([sys.executable, "-m", "fseg", "train", "--annotations", str(bad), "--images", str(images),
                             "--weights", "none", "--config", str(config), "--logs", str(tmp_path / "logs")],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2 and "not a COCO" in result.stderr
    assert "1 CPU thread(s) per op" in result.stderr and "not applied" not in result.stderr


def test_threads_per_op_that_come_too_late_are_a_warning(split, tmp_path):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow runs in this process: its thread pools are fixed
    _, images = split
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": "world"}))
    wanted = tf.config.threading.get_intra_op_parallelism_threads() + 3
    config = write_config(tmp_path / "threads.toml", TRAIN_THREADS_PER_OP=wanted)
    result = invoke("--annotations", bad, "--images", images, "--weights", "none", "--config", config,
                    "--logs", tmp_path / "logs")
    assert f"warning: TRAIN_THREADS_PER_OP {wanted} not applied" in result.output
    assert result.exit_code == 2 and "not a COCO" in result.output  # the run went on to the bad file


def test_categories_that_differ_from_the_config_are_listed(split, config, tmp_path):
    annotations, images = split
    coco = json.loads(Path(annotations).read_text())
    coco["categories"] = [{"id": 1, "name": "hat"}, {"id": 2, "name": "shoe"}]
    coco["annotations"] = [dict(a, category_id=1) for a in coco["annotations"]]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(coco))
    result = invoke("--annotations", other, "--images", images, "--weights", "none", "--config", config,
                    "--logs", tmp_path / "logs")
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "hat, shoe" in line and "short sleeve top" in line and "sling dress" in line


def test_missing_images_are_reported_skipped_and_counted(split, tmp_path):
    annotations, images = split
    coco = json.loads(Path(annotations).read_text())
    coco["images"][1]["file_name"] = "missing_1.jpg"
    coco["images"][2]["file_name"] = "missing_2.jpg"
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(coco))
    # 2 usable images, batch of 4: the run stops right after reporting them.
    config = write_config(tmp_path / "batch4.toml", IMAGES_PER_GPU=4)
    result = invoke("--annotations", partial, "--images", images, "--weights", "none", "--config", config,
                    "--logs", tmp_path / "logs")
    assert "training: 2 images (2 missing on disk" in result.output
    assert "missing_1.jpg: image file missing, skipped" in result.output
    assert result.exit_code == 2
    assert error_lines(result) == ["Error: training set has 2 usable images, fewer than the batch size 4"]


def test_bad_layers_regex_is_a_usage_error(split, config, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--weights", "none", "--config", config,
                    "--layers", "res(4", "--logs", tmp_path / "logs")
    assert result.exit_code == 2 and "neither a layer group nor a regex" in result.output


# ------------------------------------------------------------------ interrupt, resume, NaN
def other_class_weights(path: Path) -> Path:
    """A tiny matterport-layout file: fpn_c5p5 (class-independent) plus a 3-class mrcnn_class_logits."""
    from mrcnn.io.h5_legacy import write_legacy_h5

    fc, pyramid = LIGHT["FPN_CLASSIF_FC_LAYERS_SIZE"], LIGHT["TOP_DOWN_PYRAMID_SIZE"]
    write_legacy_h5(path, [
        ("fpn_c5p5", [("fpn_c5p5/kernel:0", np.full((1, 1, C5_CHANNELS, pyramid), 1e-3, np.float32)),
                      ("fpn_c5p5/bias:0", np.zeros(pyramid, np.float32))]),
        ("mrcnn_class_logits", [("mrcnn_class_logits/kernel:0", np.zeros((fc, 3), np.float32)),
                                ("mrcnn_class_logits/bias:0", np.zeros(3, np.float32))]),
    ])
    return path


class InterruptAt:
    """Raises KeyboardInterrupt (as Ctrl-C would) when a given epoch (counted from 1) starts its first step."""

    def __init__(self, epoch: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch_index, logs=None):
                cb.epoch_index = epoch_index

            def on_train_batch_begin(cb, batch, logs=None):
                if cb.epoch_index + 1 == epoch:
                    raise KeyboardInterrupt

        self.callback = Callback()


class RecordStartAndPoisonAt:
    """Records the weights when training starts; at a given epoch sets a head kernel to NaN."""

    def __init__(self, epoch: int):
        import keras

        self.start_weights: dict | None = None
        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                if outer.start_weights is None:
                    outer.start_weights = {v.path: np.array(v.numpy()) for v in cb.model.graph.weights}

            def on_epoch_begin(cb, epoch_index, logs=None):
                if epoch_index + 1 == epoch:
                    kernel = cb.model.graph.get_layer("mrcnn_class_logits").kernel
                    kernel.assign(np.full(kernel.shape, np.nan, np.float32))

        self.callback = Callback()


def run_with_callback(monkeypatch, callback, *args):
    from mrcnn.model import MaskRCNN

    original = MaskRCNN.train

    def train(self, *a, custom_callbacks=None, **kw):
        return original(self, *a, custom_callbacks=[*(custom_callbacks or []), callback], **kw)

    with monkeypatch.context() as patch:
        patch.setattr(MaskRCNN, "train", train)
        return invoke(*args)


@pytest.fixture(scope="module")
def runs(split, tmp_path_factory):
    """Run 1: epoch 1 completes, Ctrl-C during epoch 2. Run 2: --weights last, epoch 2 completes, NaN in epoch 3."""
    monkeypatch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("cli_train_runs")
    annotations, images = split
    config = write_config(folder / "tiny.toml")
    logs = folder / "logs"
    common = ["--annotations", annotations, "--images", images, "--config", config, "--logs", logs,
              "--layers", "heads", "--seed", "0"]
    first = run_with_callback(monkeypatch, InterruptAt(epoch=2).callback, *common,
                              "--val-annotations", annotations, "--val-images", images,
                              "--weights", other_class_weights(folder / "three_classes.h5"), "--epochs", "2")
    (run_dir,) = [p for p in logs.iterdir() if p.is_dir()]
    files_after_first = sorted(p.name for p in run_dir.iterdir())
    checkpoint_1 = run_dir / f"mask_rcnn_{NAME}_0001.h5"
    from mrcnn.io.h5_legacy import read_weights

    saved_1 = read_weights(checkpoint_1) if checkpoint_1.exists() else None
    recorder = RecordStartAndPoisonAt(epoch=3)
    second = run_with_callback(monkeypatch, recorder.callback, *common, "--weights", "last", "--epochs", "3")
    return {"first": first, "second": second, "run_dir": run_dir, "logs": logs, "saved_1": saved_1,
            "files_after_first": files_after_first, "start_weights": recorder.start_weights}


def test_weights_with_another_class_count_load_without_the_heads(runs):
    output = runs["first"].output
    assert "has 3 classes, the config 14: loading all but the class-specific heads" in output
    assert "(1 layers loaded)" in output


def test_interrupt_exits_130_and_keeps_the_finished_epoch(runs):
    first = runs["first"]
    assert first.exit_code == 130, first.output
    assert error_lines(first) == [
        f"Error: interrupted during epoch 2; checkpoints up to epoch 1 kept in {runs['run_dir']}; "
        f"resume with --weights last --config {runs['run_dir'].parent.parent / 'tiny.toml'} --logs {runs['logs']}"]
    files = runs["files_after_first"]
    assert f"mask_rcnn_{NAME}_0001.h5" in files
    assert f"mask_rcnn_{NAME}_0002.h5" not in files
    assert not [f for f in files if f.endswith(".tmp")]  # atomic writes leave no partial file


def test_resume_continues_from_the_last_checkpoint_with_its_weights(runs):
    second = runs["second"]
    assert f"weights: {runs['run_dir'] / f'mask_rcnn_{NAME}_0001.h5'}" in second.output
    assert f"run folder: {runs['run_dir']} (continuing the run, starting after epoch 1)" in second.output
    assert (runs["run_dir"] / f"mask_rcnn_{NAME}_0002.h5").is_file()
    assert [p for p in runs["logs"].iterdir() if p.is_dir()] == [runs["run_dir"]]  # same run folder
    # The weights training resumed from are exactly those of checkpoint 1.
    saved, start = runs["saved_1"], runs["start_weights"]
    assert saved is not None and start
    compared = 0
    for layer, values in saved.layers.items():
        for weight_name, array in values:
            leaf = weight_name.split("/")[-1].split(":")[0]
            matches = [p for p in start if p.endswith(f"{weight_name.split('/')[-2]}/{leaf}")]
            if len(matches) == 1:
                np.testing.assert_array_equal(start[matches[0]], array, err_msg=weight_name)
                compared += 1
    assert compared > 100


def test_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(runs):
    second = runs["second"]
    assert second.exit_code == 1, second.output
    (line,) = error_lines(second)
    assert line.startswith("Error: training stopped: non-finite loss at epoch 3, step 1")
    assert f"the last good checkpoint is epoch 2 in {runs['run_dir']}" in line
    assert (runs["run_dir"] / f"mask_rcnn_{NAME}_0002.h5").is_file()
    assert not (runs["run_dir"] / f"mask_rcnn_{NAME}_0003.h5").exists()


def test_csv_log_has_a_row_per_epoch_with_losses_and_learning_rate(runs):
    with (runs["run_dir"] / "training_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]  # epoch 3 is the one a NaN stopped
    assert [r["status"] for r in rows] == ["ok", "ok", "nan"]
    for row in rows:
        assert float(row["learning_rate"]) == pytest.approx(0.001)
        assert row["layers"] == "heads"
    for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
                 "mrcnn_mask_loss"):
        assert np.isfinite(float(rows[0][name])) and np.isfinite(float(rows[1][name]))
    assert not np.isfinite(float(rows[2]["loss"]))
    # Validation ran in the first run only (it had --val-*): min(VALIDATION_STEPS, 4 images // 2) batches.
    assert np.isfinite(float(rows[0]["val_loss"])) and rows[1]["val_loss"] == ""
    assert "ran out of data" not in runs["first"].output


def test_tensorboard_has_a_step_per_checkpoint(runs):
    from mrcnn.train.run_log import RunLog

    events = list(runs["run_dir"].rglob("events.out.tfevents.*"))
    assert any("train" in p.parent.name for p in events)
    assert any("validation" in p.parent.name for p in events)
    run_log = RunLog(runs["run_dir"], NAME, [])
    assert run_log.tensorboard_steps() == set(run_log.checkpoint_epochs()) == {1, 2}  # none for the NaN epoch


# ------------------------------------------------------------------ --precision
def test_bf16_is_refused_where_it_would_be_emulated(split, config, tmp_path, monkeypatch):
    from mrcnn.modeling import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: [])
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--config", config, "--weights", "none",
                    "--logs", tmp_path / "logs", "--precision", "bf16")
    assert result.exit_code == 2 and "--precision bf16 needs bfloat16 instructions" in result.output, result.output
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def test_bf16_and_mixed_precision_exclude_each_other(split, config, tmp_path):
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--config", config, "--weights", "none",
                    "--logs", tmp_path / "logs", "--precision", "bf16", "--mixed-precision")
    assert result.exit_code == 2 and "exclude each other" in result.output, result.output


@pytest.mark.parametrize("option, shown", [(("--precision", "bf16"), "mixed bfloat16"),
                                           (("--mixed-precision",), "mixed float16")])
def test_reduced_precision_training_writes_a_float32_checkpoint_with_finite_losses(
        split, config, tmp_path, monkeypatch, option, shown):
    import keras

    from mrcnn.io.h5_legacy import read_weights
    from mrcnn.modeling import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ["amx_bf16"])  # any CPU computes it (maybe slowly)
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])  # float16 is emulated: said, not refused
    from fseg import runtime

    built, real_load_model = [], runtime.load_model
    monkeypatch.setattr(runtime, "load_model", lambda *args, **kwargs: built.append(real_load_model(*args, **kwargs))
                        or built[-1])
    annotations, images = split
    result = invoke("--annotations", annotations, "--images", images, "--config", config, "--weights", "none",
                    "--logs", tmp_path / "logs", *option, "--epochs", "1", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert shown in result.output
    warned = "warning: --mixed-precision computes in float16, which this machine emulates" in result.output
    assert warned == (option == ("--mixed-precision",))
    assert keras.config.dtype_policy().name == "float32"  # the command left the process as it found it
    policies = {layer.dtype_policy.name for layer in built[0][0].keras_model.layers if layer.name in ("conv1", "fpn_p2")}
    assert policies == {"mixed_bfloat16" if "bfloat16" in shown else "mixed_float16"}
    (run_dir,) = [p for p in (tmp_path / "logs").iterdir() if p.is_dir()]
    weights = read_weights(run_dir / f"mask_rcnn_{NAME}_0001.h5")
    arrays = [array for layer in weights.layers.values() for _, array in layer]
    assert arrays and all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays)
    row = (run_dir / "training_log.csv").read_text().splitlines()[1].split(",")
    assert row[1] == "ok" and np.isfinite(float(row[3]))
