"""``fseg export`` (issue 11): a SavedModel that gives ``MaskRCNN.detect``'s results without this code.

One small model is exported once per module; one fresh Python process (tests/export_client.py, run
outside the repository) loads it with TensorFlow alone and runs both signatures on every test image
and on a batch, and the tests compare what it got with ``MaskRCNN.detect`` on the same pixels and
weights. saved_model_cli (shipped with TensorFlow), ``fseg predict --model`` and the one-line errors
of bad inputs are checked against the same export.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fseg.cli import cli

REPO = Path(__file__).resolve().parents[1]
TEST_IMG = REPO / "test_img"
OUTPUT_KEYS = ("num_detections", "detection_boxes", "detection_classes", "detection_scores", "detection_masks",
               "image_shape")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def exported(small_model_files, tmp_path_factory):
    """(export folder, the MaskRCNN ``fseg export`` built and loaded the .h5 into): the CLI run once, its model
    kept (runtime.load_model wrapped) so the reference detections need no second build."""
    from fseg import runtime

    config, weights = small_model_files
    out = tmp_path_factory.mktemp("exports") / "fashion" / "1"
    built = []
    with pytest.MonkeyPatch.context() as patch:
        load_model = runtime.load_model
        patch.setattr(runtime, "load_model", lambda *a, **k: built.append(load_model(*a, **k)) or built[-1])
        result = run("export", "--weights", weights, "--config", config, "--out", out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == ["1"]  # no temporary folder left beside it
    assert len(built) == 1 and built[0][1].loaded  # the model, with the .h5 loaded into it
    return out, built[0][0]


@pytest.fixture(scope="module")
def export_dir(exported):
    return exported[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{name: (encoded file, [H, W, 3] uint8 pixels as read_image_rgb reads them)}: test_img's PNG photos, an
    RGB JPEG and a grayscale JPEG of other sizes."""
    from mrcnn.io.images import read_image_rgb

    folder = tmp_path_factory.mktemp("export_images")
    photo = Image.open(TEST_IMG / "test1.png").convert("RGB")
    photo.crop((30, 10, 481, 310)).save(folder / "wide.jpg", quality=92)  # 451 x 300
    photo.convert("L").resize((200, 333)).save(folder / "gray.jpg", quality=92)
    files = sorted(TEST_IMG.glob("*.png")) + [folder / "wide.jpg", folder / "gray.jpg"]
    return {path.name: (path, read_image_rgb(path)) for path in files}


BATCH = ("test.png", "wide.jpg", "gray.jpg")  # 512 x 512, 300 x 451, 333 x 200
# saved_model_cli is installed with TensorFlow; its module when the script is not on PATH.
SAVED_MODEL_CLI = ([shutil.which("saved_model_cli")] if shutil.which("saved_model_cli")
                   else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"])


@pytest.fixture(scope="module")
def external(export_dir, images, tmp_path_factory):
    """The fresh processes, started together so their start-ups overlap (and overlap the reference
    detections): the TensorFlow-only client (tests/export_client.py), ``saved_model_cli show --all`` and
    ``saved_model_cli run`` on detect_image. Yields ({name: Popen}, the folder they write into)."""
    folder = tmp_path_factory.mktemp("external")
    cases = {"images": [], "batch": list(BATCH)}
    for name, (path, pixels) in images.items():
        np.save(folder / f"{name}.npy", np.ascontiguousarray(pixels))
        cases["images"].append([name, str(path), str(folder / f"{name}.npy")])
    (folder / "cases.json").write_text(json.dumps(cases))
    np.save(folder / "batch_of_one.npy", images["wide.jpg"][1][None])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    commands = {
        "client": [sys.executable, str(REPO / "tests" / "export_client.py"), str(export_dir),
                   str(folder / "results.npz"), str(folder / "cases.json")],
        "show": [*SAVED_MODEL_CLI, "show", "--dir", str(export_dir), "--all"],
        "run": [*SAVED_MODEL_CLI, "run", "--dir", str(export_dir), "--tag_set", "serve", "--signature_def",
                "detect_image", "--inputs", f"image={folder / 'batch_of_one.npy'}", "--outdir", str(folder / "run")],
    }
    running = {}
    for name, command in commands.items():  # output to files: a full pipe would stall a process
        with open(folder / f"{name}.out", "wb") as out, open(folder / f"{name}.err", "wb") as err:
            running[name] = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=err)
    yield running, folder
    for process in running.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def reference(exported, images, external):
    """MaskRCNN.detect's result on each image, same weights (computed while the external processes run)."""
    model = exported[1]
    return {name: model.detect([pixels])[0] for name, (_, pixels) in images.items()}


@pytest.fixture(scope="module")
def finished(external, reference):
    """{name: (return code, stdout, stderr)} of the external processes, and their folder."""
    running, folder = external
    done = {name: (process.wait(timeout=900), (folder / f"{name}.out").read_text(errors="replace"),
                   (folder / f"{name}.err").read_text(errors="replace")) for name, process in running.items()}
    return done, folder


@pytest.fixture(scope="module")
def client(finished):
    """What the fresh TensorFlow-only process got, as a dict of arrays."""
    done, folder = finished
    assert done["client"][0] == 0, done["client"][2][-3000:]
    with np.load(folder / "results.npz") as data:
        return {key: data[key] for key in data.files}


def test_the_client_process_never_imported_mrcnn_or_fseg(client):
    modules = set(client["modules"])
    assert "tensorflow" in modules
    assert not [m for m in modules if m.split(".")[0] in ("mrcnn", "fseg")]


def test_class_names_travel_with_the_model(client, small_model_files):
    from mrcnn.config import load_config

    assert list(client["class_names"]) == list(load_config(small_model_files[0]).class_names())


def pixel_boxes(boxes, image_shape):
    height, width = image_shape
    return np.round(boxes.astype(np.float64) * [height, width, height, width]).astype(np.int32)


def test_detect_image_gives_detect_results(client, reference, images):
    total = 0
    for name, expected in reference.items():
        got = {key: client[f"detect_image/{name}/{key}"][0] for key in (*OUTPUT_KEYS, "detection_masks_image")}
        height, width = images[name][1].shape[:2]
        assert tuple(got["image_shape"]) == (height, width)
        assert got["num_detections"] == len(expected["class_ids"]), name
        np.testing.assert_array_equal(got["detection_classes"], expected["class_ids"], err_msg=name)
        assert np.abs(pixel_boxes(got["detection_boxes"], (height, width)) - expected["rois"]).max(initial=0) <= 1
        np.testing.assert_allclose(got["detection_scores"], expected["scores"], rtol=0, atol=1e-4, err_msg=name)
        pasted = got["detection_masks_image"].astype(bool)  # [N, H, W]
        assert pasted.shape == (len(expected["class_ids"]), height, width)
        for k in range(len(expected["class_ids"])):
            ours, theirs = pasted[k], expected["masks"][:, :, k]
            union = np.logical_or(ours, theirs).sum()
            assert union == 0 or np.logical_and(ours, theirs).sum() / union >= 0.98, (name, k)
        total += len(expected["class_ids"])
    assert total > 0, "random weights with DETECTION_MIN_CONFIDENCE 0 should give detections"


def test_serving_default_on_encoded_bytes_gives_what_detect_image_gives(client, reference):
    for name in reference:
        alone = {key: client[f"serving_default/{name}/{key}"][0] for key in OUTPUT_KEYS}
        direct = {key: client[f"detect_image/{name}/{key}"][0] for key in OUTPUT_KEYS}
        n = int(direct["num_detections"])
        assert int(alone["num_detections"]) == n and alone["detection_boxes"].shape == (20, 4), name
        np.testing.assert_array_equal(alone["image_shape"], direct["image_shape"])
        np.testing.assert_array_equal(alone["detection_classes"][:n], direct["detection_classes"])
        for key in ("detection_boxes", "detection_scores", "detection_masks"):
            np.testing.assert_allclose(alone[key][:n], direct[key], rtol=0, atol=1e-5, err_msg=f"{name} {key}")
            assert not alone[key][n:].any(), f"{name}: {key} padding is not zero"


def test_a_batch_of_different_sizes_gives_each_image_what_it_gets_alone(client):
    assert len(client["batch/num_detections"]) == len(BATCH)
    for i, name in enumerate(BATCH):
        for key in OUTPUT_KEYS:
            np.testing.assert_allclose(client[f"batch/{key}"][i], client[f"serving_default/{name}/{key}"][0],
                                       rtol=0, atol=1e-6, err_msg=f"{name} {key}")
    assert len({tuple(s) for s in client["batch/image_shape"]}) == 3


def test_saved_model_cli_shows_both_signatures_and_runs_detect_image(finished, client):
    done, folder = finished
    code, text, errors = done["show"]
    assert code == 0, errors[-2000:]
    for name in ("signature_def['serving_default']", "signature_def['detect_image']", "inputs['images']",
                 "inputs['image']", "outputs['detection_masks_image']", *(f"outputs['{k}']" for k in OUTPUT_KEYS)):
        assert name in text, name
    code, _, errors = done["run"]
    assert code == 0, errors[-2000:]
    np.testing.assert_array_equal(np.load(folder / "run" / "detection_classes.npy"),
                                  client["detect_image/wide.jpg/detection_classes"])
    assert np.load(folder / "run" / "detection_masks_image.npy").shape[2:] == (300, 451)


def test_inspect_prints_the_signatures(export_dir):
    result = run("export", "--inspect", export_dir)
    assert result.exit_code == 0, result.output
    for fragment in ("Signature serving_default:", "Signature detect_image:", "input  images", "input  image ",
                     "output detection_masks_image", "Classes:     14", "small.h5"):
        assert fragment in result.output, fragment


def test_predict_with_an_export_writes_detect_results_and_skips_undecodable_images(export_dir, reference, images,
                                                                                    tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [images[name][0] for name in ("test.png", "wide.jpg", "gray.jpg")]
    out = tmp_path / "out"
    result = run("predict", inputs[0], broken, *inputs[1:], "--out", out, "--model", export_dir)
    one_line_error(result, 1, "1 of 4 images could not be read", "broken.jpg")
    assert "Skipped:" in result.output and f"Model:   {export_dir}" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["gray.jpg", "images.json", "predictions.json", "test.png",
                                                     "wide.jpg"]
    records = json.loads((out / "predictions.json").read_text())
    index = {img["id"]: img["file_name"] for img in json.loads((out / "images.json").read_text())["images"]}
    for path in inputs:
        mine = [r for r in records if Path(index[r["image_id"]]).name == path.name]
        expected = reference[path.name]
        assert [r["category_id"] for r in mine] == expected["class_ids"].tolist(), path.name
        np.testing.assert_allclose([r["score"] for r in mine], expected["scores"], rtol=0, atol=1e-4)


# ---------------------------------------------------------------- bad input: one line, nothing written
def nothing_beside(folder: Path, *allowed: str) -> bool:
    return sorted(p.name for p in folder.iterdir()) == sorted(allowed)


def test_missing_weights(small_model_files, tmp_path):
    result = run("export", "--weights", tmp_path / "nope.h5", "--config", small_model_files[0], "--out",
                 tmp_path / "e")
    one_line_error(result, 2, "nope.h5", "not found")
    assert nothing_beside(tmp_path)


def test_a_config_of_another_class_count(small_model_files, tmp_path):
    config = tmp_path / "five.toml"
    text = small_model_files[0].read_text().replace("NUM_CLASSES = 14", "NUM_CLASSES = 5")
    config.write_text(text.split("CLASS_NAMES")[0] + 'CLASS_NAMES = ["BG", "a", "b", "c", "d"]\n')
    result = run("export", "--weights", small_model_files[1], "--config", config, "--out", tmp_path / "e")
    one_line_error(result, 2, "has 14 classes", "NUM_CLASSES = 5")
    assert "Weights:" not in result.output and nothing_beside(tmp_path, "five.toml")


def test_an_existing_out_is_kept_without_force(small_model_files, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("export", "--weights", small_model_files[1], "--config", small_model_files[0], "--out", out)
    one_line_error(result, 2, "exists", "--force")
    assert nothing_beside(tmp_path, "e") and nothing_beside(out, "keep.txt")


def test_force_replaces_only_an_earlier_export(small_model_files, tmp_path):
    # A folder of other things (a training run, a project) is never deleted by --force.
    out = tmp_path / "logs"
    out.mkdir()
    (out / "run1.h5").write_text("a training run")
    result = run("export", "--weights", small_model_files[1], "--config", small_model_files[0], "--out", out,
                 "--force")
    one_line_error(result, 2, "not an export", "saved_model.pb")
    assert nothing_beside(out, "run1.h5")


def test_force_refuses_an_out_that_holds_the_weights(small_model_files, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "saved_model.pb").write_text("looks like an export")
    weights = project / "model.h5"
    weights.write_bytes(small_model_files[1].read_bytes())
    result = run("export", "--weights", weights, "--config", small_model_files[0], "--out", project, "--force")
    one_line_error(result, 2, "holds the input", "model.h5")
    assert nothing_beside(project, "saved_model.pb", "model.h5")


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_folder(small_model_files, reuse_built_models, tmp_path,
                                                                   monkeypatch):
    import tensorflow as tf

    def full_disk(*args, **kwargs):  # what SaveV2 raises when the variables do not fit
        raise tf.errors.ResourceExhaustedError(None, None, "model/variables.data-00000-of-00001.tempstate123; "
                                                           "No space left on device [Op:SaveV2]")

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    out = tmp_path / "exports" / "fashion" / "1"
    result = run("export", "--weights", small_model_files[1], "--config", small_model_files[0], "--out", out)
    one_line_error(result, 1, "No space left on device", f"nothing was written to {out}")
    assert nothing_beside(tmp_path)  # the temporary folder and the parents made for it are gone


def test_more_detections_than_proposals_are_refused(small_model_files, tmp_path):
    from mrcnn.config import load_config

    proposals = load_config(small_model_files[0]).POST_NMS_ROIS_INFERENCE
    result = run("export", "--weights", small_model_files[1], "--config", small_model_files[0], "--out",
                 tmp_path / "e", "--max-detections", proposals + 1)
    one_line_error(result, 2, f"--max-detections {proposals + 1}", "POST_NMS_ROIS_INFERENCE")
    assert "Weights:" not in result.output and not (tmp_path / "e").exists()


def test_a_training_crop_config_needs_a_pad64_size(small_model_files, tmp_path):
    # "crop" becomes "pad64" for inference (as in fseg predict), which needs IMAGE_MIN_DIM in multiples of 64.
    config = tmp_path / "crop.toml"
    text = re.sub(r"(?m)^IMAGE_MIN_DIM = .*$", "IMAGE_MIN_DIM = 96", small_model_files[0].read_text())
    config.write_text(text + 'IMAGE_RESIZE_MODE = "crop"\n')
    result = run("export", "--weights", small_model_files[1], "--config", config, "--out", tmp_path / "e")
    one_line_error(result, 2, "IMAGE_MIN_DIM must be a multiple of 64 in pad64 mode")
    assert nothing_beside(tmp_path, "crop.toml")


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d.mkdir(), "not a SavedModel"),
    (lambda d: d.write_text("x"), "is a file"),
    (lambda d: None, "not found"),
])
def test_model_folders_that_are_no_export(small_model_files, tmp_path, make, fragment):
    model = tmp_path / "m"
    make(model)
    out = tmp_path / "out"
    for args in (("predict", TEST_IMG / "test.png", "--out", out, "--model", model), ("export", "--inspect", model)):
        one_line_error(run(*args), 2, str(model), fragment)
    assert not out.exists()


@pytest.mark.parametrize("option", [("--batch-size", "2"), ("--weights", "x.h5"), ("--config", "x.toml")])
def test_predict_model_refuses_options_the_export_fixed(tmp_path, option):
    one_line_error(run("predict", TEST_IMG / "test.png", "--out", tmp_path / "o", "--model", tmp_path / "m",
                       *option), 2, option[0], "cannot be used")
    assert nothing_beside(tmp_path)


def test_replacing_an_export_keeps_the_old_one_until_the_new_one_is_in_place(tmp_path):
    from mrcnn.export.saved_model import _replace_folder

    old, new = tmp_path / "e", tmp_path / ".e.new"
    old.mkdir()
    (old / "saved_model.pb").write_text("old")
    new.mkdir()
    (new / "saved_model.pb").write_text("new")
    _replace_folder(new, old, force=True)
    assert (old / "saved_model.pb").read_text() == "new" and nothing_beside(tmp_path, "e")


def fake_export(folder: Path, min_confidence: float) -> Path:
    """A folder that passes the checks made before loading (saved_model.pb present, class names, facts)."""
    (folder / "assets").mkdir(parents=True)
    (folder / "assets.extra").mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / "assets" / "class_names.txt").write_text("BG\ntop\n")
    (folder / "assets.extra" / "fseg_export.json").write_text(json.dumps({"detection_min_confidence": min_confidence}))
    return folder


def test_predict_model_cannot_lower_the_exports_threshold(tmp_path):
    model = fake_export(tmp_path / "m", 0.5)
    result = run("predict", TEST_IMG / "test.png", "--out", tmp_path / "o", "--model", model, "--min-confidence", 0.3)
    one_line_error(result, 2, "below the export's 0.5")
    assert not (tmp_path / "o").exists()


def test_a_higher_threshold_filters_the_exports_detections():
    from fseg.cmd_predict import keep_scores_from

    masks = np.zeros((4, 5, 3), bool)
    masks[0, 0, 2] = True
    found = {"rois": np.arange(12).reshape(3, 4), "class_ids": np.array([3, 1, 2]),
             "scores": np.array([0.9, 0.4, 0.7], np.float32), "masks": masks}
    [kept] = keep_scores_from(lambda images, verbose=0: [dict(found)], 0.7)([None])
    assert kept["class_ids"].tolist() == [3, 2] and kept["rois"].tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert kept["masks"].shape == (4, 5, 2) and kept["masks"][0, 0, 1]
