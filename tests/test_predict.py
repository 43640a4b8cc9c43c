"""``fseg predict`` and its helpers: fseg.runtime, mrcnn.eval.results, the command with a fake and a real model."""
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
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from fseg import runtime
from fseg.cli import cli
from mrcnn.eval.results import boxes_to_xywh, categories_records, detections_to_records, encode_masks

REPO = Path(__file__).resolve().parents[1]
TEST_IMG = REPO / "test_img"
FASHION_CONFIG = REPO / "configs" / "deepfashion2.toml"


# ------------------------------------------------------------------ fseg.runtime
def test_default_config_prefers_the_current_folder(tmp_path):
    assert runtime.default_config_path(tmp_path) == FASHION_CONFIG  # nothing local: the shipped copy
    local = tmp_path / "configs" / "deepfashion2.toml"
    local.parent.mkdir()
    local.write_text('NAME = "mine"\n')
    assert runtime.default_config_path(tmp_path) == local


def test_weights_resolution_order(tmp_path):
    logs, weights = tmp_path / "logs", tmp_path / "weights"
    explicit = tmp_path / "given.h5"
    explicit.write_bytes(b"")
    from_env = tmp_path / "env.h5"
    from_env.write_bytes(b"")
    fallback = weights / "fashion.h5"
    fallback.parent.mkdir()
    fallback.write_bytes(b"")
    ckpt = logs / "fashion20260101T1200" / "mask_rcnn_fashion_0004.h5"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")

    def resolve(option, env):
        return runtime.resolve_weights(option, "fashion", env=env, logs_dir=logs, weights_dir=weights).path

    env = {"FSEG_WEIGHTS": str(from_env)}
    assert resolve(str(explicit), env) == explicit
    assert resolve(None, env) == from_env
    assert resolve(None, {}) == ckpt
    assert resolve("last", env) == ckpt
    assert resolve(None, {"FSEG_WEIGHTS": "last"}) == ckpt
    ckpt.unlink()
    assert resolve(None, {}) == fallback


def test_missing_weights_say_where_to_download(tmp_path):
    with pytest.raises(runtime.WeightsNotFound) as err:
        runtime.resolve_weights(None, "deepfashion2", env={}, logs_dir=tmp_path / "logs",
                              weights_dir=tmp_path / "weights")
    message = str(err.value)
    assert "\n" not in message
    assert runtime.FASHION_MODEL_URL in message and runtime.COCO_MODEL_URL in message
    assert str(tmp_path / "weights" / "deepfashion2.h5") in message
    with pytest.raises(runtime.WeightsNotFound, match="nope.h5: file not found.*drive.google.com"):
        runtime.resolve_weights(str(tmp_path / "nope.h5"), "deepfashion2", env={})
    with pytest.raises(runtime.WeightsNotFound, match="no checkpoint"):
        runtime.resolve_weights("last", "deepfashion2", env={}, logs_dir=tmp_path / "logs")
    with pytest.raises(runtime.WeightsNotFound, match="folder"):
        runtime.resolve_weights(str(tmp_path), "deepfashion2", env={})


# ------------------------------------------------------------------ mrcnn.eval.results
def test_boxes_become_coco_xywh():
    # rows 10..29 and columns 5..44 (exclusive ends 30 and 45): x=5, y=10, w=40, h=20
    assert boxes_to_xywh(np.array([[10, 5, 30, 45]], np.int32)).tolist() == [[5.0, 10.0, 40.0, 20.0]]


def test_masks_encode_to_rle_that_decodes_back():
    masks = np.zeros((7, 9, 2), bool)
    masks[1:4, 2:6, 0] = True
    masks[6, 8, 1] = True
    rles = encode_masks(masks)
    assert [r["size"] for r in rles] == [[7, 9], [7, 9]]
    assert all(isinstance(r["counts"], str) for r in rles)
    for i, rle in enumerate(rles):
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), masks[:, :, i])
    assert encode_masks(np.zeros((7, 9, 0), bool)) == []


def test_detection_records_carry_coco_fields_and_names():
    masks = np.zeros((20, 30, 1), bool)
    masks[2:5, 3:9, 0] = True
    detections = {"rois": np.array([[2, 3, 5, 9]], np.int32), "class_ids": np.array([8], np.int32),
                  "scores": np.array([0.75], np.float32), "masks": masks}
    names = ["BG"] + [f"c{i}" for i in range(1, 14)]
    (record,) = detections_to_records(detections, 42, names, file_name="a.jpg")
    assert record["image_id"] == 42 and record["category_id"] == 8 and record["category_name"] == "c8"
    assert record["bbox"] == [3.0, 2.0, 6.0, 3.0] and record["score"] == pytest.approx(0.75)
    assert (record["width"], record["height"], record["file_name"]) == (30, 20, "a.jpg")
    json.dumps(record)  # JSON-ready: no NumPy scalars, no bytes
    coco_ids = list(range(100, 114))
    (mapped,) = detections_to_records(detections, 1, names, category_ids=coco_ids)
    assert mapped["category_id"] == 108
    assert categories_records(["BG", "a", "b"]) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


# ------------------------------------------------------------------ the command, with a fake model
class FakeModel:
    """Stands in for MaskRCNN: one detection per image whose score encodes the image (its mean / 255),
    plus one with an empty mask (no crop for it)."""

    def __init__(self):
        self.batches: list[int] = []

    def detect(self, images, verbose=0):
        self.batches.append(len(images))
        results = []
        for image in images:
            h, w = image.shape[:2]
            masks = np.zeros((h, w, 2), bool)
            masks[h // 4:h // 2, w // 4:w // 2, 0] = True
            results.append({
                "rois": np.array([[h // 4, w // 4, h // 2, w // 2], [0, 0, 2, 2]], np.int32),
                "class_ids": np.array([1, 13], np.int32),
                "scores": np.array([image.mean() / 255.0, 0.01], np.float32),
                "masks": masks,
            })
        return results


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    """Patch the model loader; run in an empty folder without $FSEG_WEIGHTS."""
    model = FakeModel()
    monkeypatch.setattr(runtime, "load_model", lambda config, path, *args, **kwargs: (model, None))
    monkeypatch.delenv("FSEG_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fake.h5").write_bytes(b"")
    return model


def run(args):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], catch_exceptions=False)


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def make_images(folder: Path, names, size=(40, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pixels = np.full(size + (3,), 20 + 30 * i, np.uint8)
        Image.fromarray(pixels).save(folder / name)


def test_batches_are_padded_and_results_match_their_images(fake_model, tmp_path):
    make_images(tmp_path / "in", [f"p{i}.png" for i in range(6)])
    result = run([tmp_path / "in", "--out", "out", "--weights", "fake.h5", "--config", FASHION_CONFIG,
                  "--batch-size", "4", "--crops"])
    assert result.exit_code == 0, result.output
    assert fake_model.batches == [4, 4]  # 6 images: 4, then 2 padded to 4
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [img["file_name"] for img in images["images"]] == [f"p{i}.png" for i in range(6)]
    by_id = {img["id"]: img["file_name"] for img in images["images"]}
    main = [r for r in records if r["category_id"] == 1]
    assert len(main) == 6 and len(records) == 12
    for record in main:
        i = int(by_id[record["image_id"]][1])
        assert record["score"] == pytest.approx((20 + 30 * i) / 255.0, abs=1e-6)
        assert record["bbox"] == [15.0, 10.0, 15.0, 10.0]  # rows 10..19, columns 15..29 of 40x60
        assert record["crop"] == f"crops/p{i}_1_short_sleeve_top.png"
    assert all(r["crop"] is None for r in records if r["category_id"] == 13)  # empty mask: no crop
    crop = np.asarray(Image.open(tmp_path / "out" / "crops" / "p3_1_short_sleeve_top.png"))
    assert crop.shape == (10, 15, 4) and (crop[..., 3] == 255).all() and (crop[..., 0] == 110).all()
    assert sorted(p.name for p in (tmp_path / "out").glob("p*.png")) == [f"p{i}.png" for i in range(6)]
    gt = COCO(str(tmp_path / "out" / "images.json"))
    assert len(gt.loadRes(str(tmp_path / "out" / "predictions.json")).getAnnIds()) == 12


def test_unreadable_image_is_reported_and_the_rest_processed(fake_model, tmp_path):
    make_images(tmp_path / "in", ["a.png", "c.png"])
    (tmp_path / "in" / "b.png").write_text("not an image")
    (tmp_path / "in" / "notes.txt").write_text("ignored: not an image suffix")
    result = run([tmp_path / "in", "--out", "out", "--weights", "fake.h5", "--config", FASHION_CONFIG])
    assert result.exit_code == 1
    assert "b.png" in result.output
    assert len(error_lines(result)) == 1 and "1 of 3 images" in error_lines(result)[0]
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert [img["file_name"] for img in images] == ["a.png", "c.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png", "images.json",
                                                                   "predictions.json"]


def test_numbered_files_keep_their_numbers_and_jpegs_give_jpeg_overlays(fake_model, tmp_path):
    make_images(tmp_path / "in", ["000012.jpg", "000005.png"])
    result = run([tmp_path / "in" / "000012.jpg", tmp_path / "in" / "000005.png", "--out", "out",
                  "--weights", "fake.h5", "--config", FASHION_CONFIG, "--no-overlay"])
    assert result.exit_code == 0, result.output
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert [(img["id"], img["file_name"]) for img in images] == [(12, "000012.jpg"), (5, "000005.png")]
    assert not list((tmp_path / "out").glob("0000*"))  # --no-overlay
    run([tmp_path / "in", "--out", "out2", "--weights", "fake.h5", "--config", FASHION_CONFIG])
    assert sorted(p.name for p in (tmp_path / "out2").glob("0000*")) == ["000005.png", "000012.jpg"]


def test_same_stem_in_two_folders_gets_two_outputs(fake_model, tmp_path):
    make_images(tmp_path / "a", ["x.png"])
    make_images(tmp_path / "b", ["x.png"])
    result = run([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "a" / "x.png",
                  "--out", "out", "--weights", "fake.h5", "--config", FASHION_CONFIG])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("x*.png")) == ["x.png", "x_2.png"]
    assert len(json.loads((tmp_path / "out" / "images.json").read_text())["images"]) == 2  # duplicate dropped


def test_glob_inputs(fake_model, tmp_path):
    make_images(tmp_path / "in", ["a.png", "b.jpg", "c.png"])
    result = run([str(tmp_path / "in" / "*.png"), "--out", "out", "--weights", "fake.h5",
                  "--config", FASHION_CONFIG])
    assert result.exit_code == 0, result.output
    names = [i["file_name"] for i in json.loads((tmp_path / "out" / "images.json").read_text())["images"]]
    assert names == ["a.png", "c.png"]


def test_defaults_find_config_and_newest_checkpoint(fake_model, tmp_path):
    make_images(tmp_path / "in", ["a.png"])
    ckpt = tmp_path / "logs" / "deepfashion220260101T0000" / "mask_rcnn_deepfashion2_0003.h5"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    result = run([tmp_path / "in", "--out", "out"])
    assert result.exit_code == 0, result.output
    assert f"Config:  {FASHION_CONFIG}" in result.output
    assert "Weights: logs/deepfashion220260101T0000/mask_rcnn_deepfashion2_0003.h5" in result.output
    info = json.loads((tmp_path / "out" / "images.json").read_text())["info"]
    assert info["weights"].endswith("mask_rcnn_deepfashion2_0003.h5") and info["min_confidence"] == 0.7


@pytest.mark.parametrize("args, message", [
    (["missing_dir", "--out", "out"], "input not found: missing_dir"),
    (["empty", "--out", "out"], "no images found"),
    (["nomatch*.png", "--out", "out"], "no files match"),
    (["in", "--out", "out", "--config", "nope.toml"], "config file not found"),
    (["in", "--out", "out", "--weights", "nope.h5"], "nope.h5: file not found"),
    (["in", "--out", "out"], "no weights found"),
    (["in", "--out", "in"], "would overwrite the input"),
])
def test_bad_usage_is_one_line_and_exit_2(fake_model, tmp_path, args, message):
    make_images(tmp_path / "in", ["a.png"])
    (tmp_path / "empty").mkdir()
    if "--weights" not in args and message != "no weights found":
        args = args + ["--weights", "fake.h5"]
    result = run(args)
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0]
    assert "Traceback" not in result.output
    assert fake_model.batches == []


def test_batches_need_equal_image_sizes(fake_model, tmp_path):
    make_images(tmp_path / "in", ["a.png"])
    (tmp_path / "pad.toml").write_text(FASHION_CONFIG.read_text().replace("IMAGE_MIN_DIM = 800", "IMAGE_MIN_DIM = 768")
                                       + 'IMAGE_RESIZE_MODE = "pad64"\n')
    result = run(["in", "--out", "o", "--weights", "fake.h5", "--config", "pad.toml", "--batch-size", "2"])
    assert result.exit_code == 2 and "IMAGE_RESIZE_MODE" in error_lines(result)[0]
    result = run(["in", "--out", "o", "--weights", "fake.h5", "--config", "pad.toml"])
    assert result.exit_code == 0, result.output


def test_a_training_crop_config_predicts_whole_images_at_the_same_scale(fake_model, monkeypatch, tmp_path):
    configs = []
    monkeypatch.setattr(runtime, "load_model", lambda config, *args, **kwargs: (configs.append(config) or fake_model,
                                                                                 None))
    make_images(tmp_path / "in", ["a.png"])
    text = FASHION_CONFIG.read_text().replace("IMAGE_MIN_DIM = 800", "IMAGE_MIN_DIM = 768")
    text = re.sub(r"(?m)^IMAGES_PER_GPU = .*$", "", text)
    (tmp_path / "crop.toml").write_text(text + 'IMAGE_RESIZE_MODE = "crop"\nIMAGES_PER_GPU = 2\n')
    result = run(["in", "--out", "o", "--weights", "fake.h5", "--config", "crop.toml"])
    assert result.exit_code == 0, result.output
    assert [c.IMAGE_RESIZE_MODE for c in configs] == ["pad64"] and configs[0].IMAGE_MIN_DIM == 768
    assert configs[0].BATCH_SIZE == 1  # the training batch of 2 cannot hold photos of their own sizes
    assert 'IMAGE_RESIZE_MODE "pad64" for its "crop"' in result.output
    (tmp_path / "crop800.toml").write_text(FASHION_CONFIG.read_text() + 'IMAGE_RESIZE_MODE = "crop"\n')
    result = run(["in", "--out", "o2", "--weights", "fake.h5", "--config", "crop800.toml"])
    assert result.exit_code == 2 and "IMAGE_MIN_DIM must be a multiple of 64 in pad64 mode" in error_lines(result)[0]
    assert len(configs) == 1 and not (tmp_path / "o2").exists()
    result = run(["in", "--out", "o3", "--weights", "fake.h5", "--config", "crop.toml", "--batch-size", "2"])
    assert result.exit_code == 2 and 'in "pad64" mode each photo keeps its own size' in error_lines(result)[0]


def test_out_of_range_options_are_rejected(fake_model, tmp_path):
    make_images(tmp_path / "in", ["a.png"])
    assert run(["in", "--out", "o", "--weights", "fake.h5", "--min-confidence", "1.5"]).exit_code == 2
    assert run(["in", "--out", "o", "--weights", "fake.h5", "--batch-size", "0"]).exit_code == 2


def test_help_teaches():
    result = CliRunner().invoke(cli, ["predict", "--help"])
    assert result.exit_code == 0
    for text in ("--weights", "FILE|last", "--crops", "predictions.json", "fseg predict test_img/ --out Result/"):
        assert text in result.output


# ------------------------------------------------------------------ end to end, real model
@pytest.mark.slow
def test_predict_end_to_end_on_test_img(small_model_files, reuse_built_models, tmp_path):
    config_path, weights_path = small_model_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = run([TEST_IMG, broken, "--out", out, "--weights", weights_path, "--config", config_path, "--crops"])
    assert result.exit_code == 1, result.output  # the broken image fails; the six photos do not
    assert "broken.png" in error_lines(result)[0] and f"Weights: {weights_path}" in result.output

    photos = sorted(p.name for p in TEST_IMG.glob("*.png"))
    assert sorted(p.name for p in out.glob("*.png")) == photos
    for name in photos:
        overlay = np.asarray(Image.open(out / name))
        assert overlay.shape == np.asarray(Image.open(TEST_IMG / name)).shape[:2] + (3,)

    records = json.loads((out / "predictions.json").read_text())
    assert records, "DETECTION_MIN_CONFIDENCE 0 with random weights should keep some detections"
    results = COCO(str(out / "images.json")).loadRes(str(out / "predictions.json"))
    assert len(results.getAnnIds()) == len(records)
    sizes = {img["id"]: (img["height"], img["width"]) for img in results.dataset["images"]}
    assert sizes[4] == (1024, 1024) and len(sizes) == 6  # test3.png is the 1024 x 1024 one
    for record in records:
        h, w = sizes[record["image_id"]]
        x, y, bw, bh = record["bbox"]
        assert record["segmentation"]["size"] == [h, w]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and 0 <= record["score"] <= 1
        assert 1 <= record["category_id"] <= 13

    with_crops = [r for r in records if r["crop"]]
    assert with_crops and len(list((out / "crops").iterdir())) == len(with_crops)
    crop = Image.open(out / with_crops[0]["crop"])
    assert crop.mode == "RGBA" and crop.size == tuple(int(v) for v in with_crops[0]["bbox"][2:])


@pytest.mark.slow
def test_predict_batched_without_overlays(small_model_files, reuse_built_models, tmp_path):
    config_path, weights_path = small_model_files
    shutil.copytree(TEST_IMG, tmp_path / "imgs")
    result = run([tmp_path / "imgs", "--out", tmp_path / "out", "--weights", weights_path, "--config", config_path,
                  "--batch-size", "4", "--no-overlay", "--min-confidence", "0.5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.json", "predictions.json"]
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert all(r["score"] >= 0.5 for r in records)
    assert len(json.loads((tmp_path / "out" / "images.json").read_text())["images"]) == 6


@pytest.mark.slow
def test_stderr_holds_no_tensorflow_start_up_notices(small_model_files, tmp_path):
    # A real process: TensorFlow's C++ notices go to file descriptor 2, past any Python capture. On a
    # machine with CUDA's libraries and no GPU, listing the devices printed "E0000 ... failed call to cuInit".
    config_path, weights_path = small_model_files
    done = subprocess.run([sys.executable, "-m", "fseg", "predict", str(TEST_IMG / "test.png"),
                           "--out", str(tmp_path / "out"), "--weights", str(weights_path),
                           "--config", str(config_path)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    absl_lines = [line for line in done.stderr.splitlines() if re.match(r"[IWEF]\d{4} ", line)]
    assert absl_lines == [], done.stderr
    assert "1 image" in done.stderr, done.stderr  # the summary line, after the notices would be


@pytest.mark.slow
def test_damaged_weights_file_is_a_one_line_error(small_model_files, tmp_path):
    config_path, weights_path = small_model_files
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(weights_path.read_bytes()[:4096])
    result = run([TEST_IMG / "test.png", "--out", tmp_path / "out", "--weights", damaged, "--config", config_path])
    assert result.exit_code == 1, result.output
    assert len(error_lines(result)) == 1 and "damaged.h5" in error_lines(result)[0]
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_very_thin_photo_is_segmented_like_any_other(small_model_files, reuse_built_models, tmp_path):
    # Resized to fit the 256 px square, 3 x 4000 pixels would round to 0 rows: it keeps 1.
    config_path, weights_path = small_model_files
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (4000, 3), (200, 100, 50)).save(folder / "strip.png")
    shutil.copy(TEST_IMG / "test.png", folder / "test.png")
    result = run([folder, "--out", tmp_path / "out", "--weights", weights_path, "--config", config_path])
    assert result.exit_code == 0, result.output
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert {(i["file_name"], i["height"], i["width"]) for i in images} >= {("strip.png", 3, 4000)}
    assert np.asarray(Image.open(tmp_path / "out" / "strip.png")).shape == (3, 4000, 3)


@pytest.mark.slow
def test_weights_of_another_model_are_refused_not_run_on_random_layers(small_model_files, tmp_path):
    import h5py

    config_path, weights_path = small_model_files
    partial = tmp_path / "no_mask_layer.h5"
    shutil.copy(weights_path, partial)
    with h5py.File(partial, "r+") as f:  # the file without one layer (the mask head's last conv)
        names = [n for n in f.attrs["layer_names"] if (n.decode() if isinstance(n, bytes) else n) != "mrcnn_mask"]
        assert len(names) == len(f.attrs["layer_names"]) - 1
        f.attrs["layer_names"] = names
        del f["mrcnn_mask"]
    result = run([TEST_IMG / "test.png", "--out", tmp_path / "out", "--weights", partial, "--config", config_path])
    assert result.exit_code == 1, result.output
    assert len(error_lines(result)) == 1 and "no weights for 1 of the model's" in error_lines(result)[0]
    assert "mrcnn_mask" in error_lines(result)[0] and not (tmp_path / "out").exists()
