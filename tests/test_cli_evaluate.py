"""``fseg evaluate``: scoring a results file through the CLI, bad usage, and one run of a tiny random model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fseg.cli import cli

REPO = Path(__file__).resolve().parents[1]
FASHION_CONFIG = REPO / "configs" / "deepfashion2.toml"
METRICS_KEYS = {"info", "images", "instances", "detections", "bbox", "segm", "keypoints", "per_category", "by",
                "matterport"}
H, W = 50, 70


def run(args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)], catch_exceptions=False)


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def rle_of(x1, y1, x2, y2):
    rle = mask_utils.frPyObjects([[x1, y1, x2, y1, x2, y2, x1, y2]], H, W)[0]
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def write_files(folder: Path) -> tuple[Path, Path]:
    """A 3-garment ground truth (DeepFashion2 category names) and results with one shifted box and one miss."""
    boxes = {1: (1, 1, 8, 5, 40, 30, 1), 2: (1, 8, 45, 10, 68, 48, 2), 3: (2, 9, 10, 10, 30, 40, 3)}
    gt = {"images": [{"id": i, "file_name": f"{i:06d}.jpg", "width": W, "height": H, "source": "user"}
                     for i in (1, 2)],
          "categories": [{"id": 1, "name": "short_sleeved_shirt"}, {"id": 8, "name": "trousers"},
                         {"id": 9, "name": "skirt"}],
          "annotations": [{"id": k, "image_id": i, "category_id": c, "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
                           "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                           "scale": scale} for k, (i, c, x1, y1, x2, y2, scale) in boxes.items()]}
    results = [{"image_id": 1, "category_id": 1, "bbox": [5, 8, 35, 22], "score": 0.9, "segmentation": rle_of(5, 8, 40, 30)},
               {"image_id": 1, "category_id": 8, "bbox": [50, 10, 18, 38], "score": 0.8,
                "segmentation": rle_of(50, 10, 68, 48)}]  # shifted 5 px; the skirt in image 2 is missed
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "res.json").write_text(json.dumps(results))
    return folder / "gt.json", folder / "res.json"


def pycocotools_ap(gt_path: Path, res_path: Path, iou_type: str) -> float:
    gt = COCO(str(gt_path))
    records = json.loads(res_path.read_text())
    if iou_type == "segm":
        records = [{k: v for k, v in r.items() if k != "bbox"} for r in records]
    evaluator = COCOeval(gt, gt.loadRes(records), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats[0]


# ------------------------------------------------------------------ --results
def test_scores_a_results_file_and_prints_the_tables(tmp_path):
    gt_path, res_path = write_files(tmp_path)
    result = run(["--annotations", gt_path, "--results", res_path, "--by", "scale", "--out", tmp_path / "eval"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == METRICS_KEYS
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == pytest.approx(pycocotools_ap(gt_path, res_path, iou_type), abs=1e-12)
    assert 0 < metrics["segm"]["AP"] < 1
    assert [row["instances"] for row in metrics["by"]["scale"]["values"]] == [1, 1, 1]
    assert metrics["images"] == 2 and metrics["instances"] == 3 and metrics["detections"] == 2
    assert metrics["matterport"]["mAP50"] == pytest.approx(0.5)  # image 1: both found; image 2: its skirt missed
    for text in ("COCO metrics", "AR100", "trousers", "AP by scale", "1 small", "matterport mAP@0.5", "0.500"):
        assert text in result.output
    assert not (tmp_path / "eval" / "results.json").exists()  # nothing but metrics.json with --results


def test_results_default_out_is_the_results_folder_and_limit_counts_images(tmp_path):
    gt_path, res_path = write_files(tmp_path)
    result = run(["-a", gt_path, "-r", res_path, "--limit", "1"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["instances"] == 2 and metrics["info"]["limit"] == 1


@pytest.mark.parametrize("extra, message", [
    (["--weights", "x.h5"], "--weights cannot be used with it"),
    (["--config", "c.toml"], "--config cannot be used with it"),
])
def test_results_with_model_options_is_bad_usage(tmp_path, extra, message):
    gt_path, res_path = write_files(tmp_path)
    result = run(["-a", gt_path, "-r", res_path, *extra])
    assert result.exit_code == 2 and len(error_lines(result)) == 1 and message in error_lines(result)[0]


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path):
    gt_path, res_path = write_files(tmp_path)
    cases = [
        (["-a", gt_path], "--images DIR is needed"),
        (["-a", gt_path, "--images", tmp_path / "nope"], "image folder not found"),
        (["-a", tmp_path / "missing.json", "-r", res_path], "annotation file not found"),
        (["-a", res_path, "-r", res_path], "not a COCO instances file"),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    cases.append((["-a", gt_path, "-r", bad, "--out", tmp_path / "out"], "image ids not in the ground truth: 7"))
    for args, message in cases:
        result = run(args)
        assert result.exit_code == 2, (args, result.output)
        assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "metrics.json").exists()


def test_results_mode_does_not_import_tensorflow(tmp_path):
    gt_path, res_path = write_files(tmp_path)
    code = ("import sys; from fseg.cli import cli\n"
            f"try: cli(['evaluate', '-a', {str(gt_path)!r}, '-r', {str(res_path)!r}])\n"
            "except SystemExit as e: assert e.code == 0, e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_category_mismatch_lists_both(tmp_path):
    gt_path, _ = write_files(tmp_path)
    config = tmp_path / "other.toml"
    config.write_text('NAME = "other"\nNUM_CLASSES = 3\nCLASS_NAMES = ["BG", "cat", "dog"]\n')
    (tmp_path / "imgs").mkdir()
    result = run(["-a", gt_path, "--images", tmp_path / "imgs", "--config", config, "--weights", gt_path])
    assert result.exit_code == 2, result.output
    line = error_lines(result)[0]
    assert "short_sleeved_shirt, trousers, skirt" in line and "cat, dog" in line


def test_help_teaches():
    result = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert result.exit_code == 0
    for text in ("--results", "--by", "metrics.json", "matterport", "Examples", "missing"):
        assert text in result.output


# ------------------------------------------------------------------ end to end, tiny random model
TINY_CONFIG = """
NAME = "tinyeval"
NUM_CLASSES = 14
BACKBONE = "resnet18_half"
TOP_DOWN_PYRAMID_SIZE = 64
FPN_CLASSIF_FC_LAYERS_SIZE = 128
IMAGES_PER_GPU = 2
IMAGE_MIN_DIM = 128
IMAGE_MAX_DIM = 128
POST_NMS_ROIS_INFERENCE = 50
DETECTION_MAX_INSTANCES = 10
DETECTION_MIN_CONFIDENCE = 0.9
"""


@pytest.mark.slow
def test_end_to_end_with_a_tiny_model_counts_missing_images(tmp_path, monkeypatch):
    from df2coco.convert import convert_split
    from fseg import runtime
    from df2coco.synthetic.split import generate_split
    from mrcnn.config import load_config
    from mrcnn.model import MaskRCNN

    generate_split(tmp_path / "val", 3, seed=3, min_side=64, max_side=128, workers=1)
    convert_split(tmp_path / "val", tmp_path / "val.json", workers=1)
    (tmp_path / "val" / "image" / "000002.jpg").unlink()
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(TINY_CONFIG + f"CLASS_NAMES = {json.dumps(load_config(FASHION_CONFIG).CLASS_NAMES)}\n")
    MaskRCNN(mode="inference", config=load_config(config_path), model_dir=str(tmp_path / "logs")).save_weights(
        str(tmp_path / "tiny.h5"))

    configs = []  # the config the model is built with
    real_load_model = runtime.load_model
    monkeypatch.setattr(runtime, "load_model", lambda config, path, *args, **kwargs: configs.append(config) or
                        real_load_model(config, path, *args, **kwargs))
    result = run(["-a", tmp_path / "val.json", "-i", tmp_path / "val" / "image", "-w", tmp_path / "tiny.h5",
                  "-c", config_path, "--by", "scale", "--by", "source"])
    assert result.exit_code == 1, result.output  # the missing image fails the run, after scoring
    assert "1 of 3 images were missing or unreadable" in error_lines(result)[0]
    out = tmp_path / "tiny_eval_val"  # default: next to the weights
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRICS_KEYS and metrics["images"] == 3
    assert [Path(p).name for p in metrics["info"]["missing_images"]] == ["000002.jpg"]
    assert metrics["info"]["detection_min_confidence"] == 0.0
    for key in ("bbox", "segm"):
        assert set(metrics[key]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
                                     "ARs", "ARm", "ARl"}
    total = sum(row["instances"] for row in metrics["by"]["scale"]["values"])
    assert total == metrics["instances"] == len(json.loads((tmp_path / "val.json").read_text())["annotations"])
    records = json.loads((out / "results.json").read_text())
    assert records and {r["image_id"] for r in records} <= {1, 3}  # nothing for the missing image
    assert len(records) <= 2 * 10 and all(1 <= r["category_id"] <= 13 for r in records)
    # the config's threshold 0.9 and 2 images per batch are overridden, as matterport's COCO evaluation does
    assert configs[0].DETECTION_MIN_CONFIDENCE == 0.0 and configs[0].BATCH_SIZE == 1
    assert COCO(str(tmp_path / "val.json")).loadRes(records).getAnnIds()
    assert "matterport mAP@0.5" in result.output and "missing or unreadable" in result.output
