"""The landmark head through the CLI: `fseg evaluate` scores landmarks, `fseg predict` draws and writes them."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fseg.cli import cli
from mrcnn.eval.keypoint_eval import DEEPFASHION2_OKS_SIGMAS, KEYPOINT_STAT_NAMES
from mrcnn.io.overlay import draw_instances


@pytest.fixture(scope="module")
def landmark_files(tmp_path_factory, tiny_landmark_model_files):
    """(folder, config, weights, val.json) for a tiny random landmark model and 2 synthetic images."""
    from df2coco.convert import convert_split
    from df2coco.synthetic.split import generate_split

    folder = tmp_path_factory.mktemp("landmark_cli")
    generate_split(folder / "val", 2, seed=5, min_side=96, max_side=128, workers=1)
    convert_split(folder / "val", folder / "val.json", workers=1)
    config_path, weights = tiny_landmark_model_files
    return folder, config_path, weights, folder / "val.json"


def test_evaluate_reports_landmark_ap_beside_box_and_mask(landmark_files):
    folder, config, weights, annotations = landmark_files
    result = CliRunner().invoke(cli, ["evaluate", "-a", annotations, "-i", folder / "val" / "image", "-w", weights,
                                      "-c", config, "-o", folder / "eval", "--by", "scale"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert list(metrics["keypoints"]) == list(KEYPOINT_STAT_NAMES)
    assert metrics["keypoints"]["AP"] is not None and 0.0 <= metrics["keypoints"]["AP"] <= 1.0
    assert all("keypoints" in row for row in metrics["per_category"])
    assert all("keypoints" in row for row in metrics["by"]["scale"]["values"])
    assert "Landmarks (COCO keypoint AP" in result.output and "lmk AP" in result.output
    # The results carry 882 values per detection, only the predicted category's slice filled.
    records = json.loads((folder / "eval" / "results.json").read_text())
    assert records and all(len(r["keypoints"]) == 882 for r in records)
    counts = [25, 33, 31, 39, 15, 15, 10, 14, 8, 29, 37, 19, 19]
    for record in records[:5]:
        start = sum(counts[:record["category_id"] - 1])
        scores = np.asarray(record["keypoints"]).reshape(294, 3)[:, 2]
        filled = np.flatnonzero(scores)
        assert filled.min() == start and filled.max() == start + counts[record["category_id"] - 1] - 1
        # Landmark AP ranks a detection's landmarks by its score times their mean confidence.
        assert record["landmark_score"] == pytest.approx(record["score"] * scores[filled].mean(), abs=0.005)


def test_predict_writes_coco_keypoint_results_pycocotools_scores(landmark_files):
    folder, config, weights, annotations = landmark_files
    images = sorted((folder / "val" / "image").iterdir())
    result = CliRunner().invoke(cli, ["predict", *map(str, images), "-w", str(weights), "-c", str(config),
                                      "-o", str(folder / "predicted")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = json.loads((folder / "predicted" / "predictions.json").read_text())
    assert records and all(len(r["keypoints"]) == 882 for r in records)
    gt = COCO(str(annotations))
    by_name = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
    for record in records:  # predict numbers its inputs; the ground truth names them
        record["image_id"] = by_name[record["file_name"]]
    evaluator = COCOeval(gt, gt.loadRes(records), "keypoints")
    evaluator.params.kpt_oks_sigmas = DEEPFASHION2_OKS_SIGMAS
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert len(evaluator.stats) == 10 and evaluator.stats[0] >= 0


def test_overlays_draw_the_class_slice_landmarks_as_dots():
    image = np.zeros((60, 80, 3), np.uint8)
    masks = np.zeros((60, 80, 1), bool)
    landmarks = np.zeros((1, 4, 3), np.float32)
    landmarks[0, 1] = (30, 20, 0.7)
    landmarks[0, 3] = (50, 40, 0.0)  # another class's landmark: score 0, not drawn
    drawn = draw_instances(image, np.array([[10, 10, 50, 70]]), masks, np.array([1]), ["BG", "a"],
                           show_bbox=False, captions=[""], landmarks=landmarks)
    plain = draw_instances(image, np.array([[10, 10, 50, 70]]), masks, np.array([1]), ["BG", "a"],
                           show_bbox=False, captions=[""])
    changed = np.argwhere((drawn != plain).any(axis=2))
    assert len(changed) and np.abs(changed - [20, 30]).max() <= 5  # a small dot around (x 30, y 20) only


def test_train_refuses_a_file_without_keypoints_for_the_landmark_head(landmark_files, tmp_path):
    from fseg.cli_util import EXIT_USAGE, CommandError
    from fseg.cmd_train import _load_dataset
    from mrcnn.config import load_config
    from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields

    folder, config_path, _, annotations = landmark_files
    data = json.loads(annotations.read_text())
    for ann in data["annotations"]:
        ann.pop("keypoints")
    bare = tmp_path / "no_keypoints.json"
    bare.write_text(json.dumps(data))
    config = load_config(config_path)
    with pytest.raises(CommandError, match="no annotation has 'keypoints'") as error:
        _load_dataset(bare, folder / "val" / "image", config, "training")
    assert error.value.exit_code == EXIT_USAGE
    dataset = _load_dataset(annotations, folder / "val" / "image", config, "training")
    fields = dataset.load_instance_fields(0, instance_fields(build_roi_heads(config)))
    assert fields["keypoints"].shape[1:] == (294, 3) and fields["keypoints"][..., 2].max() > 0
