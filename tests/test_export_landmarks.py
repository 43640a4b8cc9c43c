"""``fseg export`` of a model with the landmark head, with --min-confidence / --max-detections, and --force.

The export carries the landmarks (issue 13) as TF Object Detection API keypoints; ``ExportedModel``
turns them back into ``detect()``'s "landmarks". The export's thresholds are the ones given on the
command line, and a second export with --force replaces the first in place.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fseg.cli import cli

MIN_CONFIDENCE, MAX_DETECTIONS = 0.05, 6  # the config's are 0.0 and 8


@pytest.fixture(scope="module")
def exported(tiny_landmark_model_files, tmp_path_factory):
    """The export made twice into one folder: first with the config's thresholds, then --force with others."""
    config_path, weights = tiny_landmark_model_files
    folder = tmp_path_factory.mktemp("landmark_export")
    out = folder / "export"
    first = CliRunner().invoke(cli, ["export", "--weights", str(weights), "--config", str(config_path),
                                     "--out", str(out)])
    assert first.exit_code == 0, first.output
    first_info = json.loads((out / "assets.extra" / "fseg_export.json").read_text())
    again = CliRunner().invoke(cli, ["export", "--weights", str(weights), "--config", str(config_path),
                                     "--out", str(out), "--min-confidence", str(MIN_CONFIDENCE),
                                     "--max-detections", str(MAX_DETECTIONS)])
    assert again.exit_code == 2 and "--force" in again.output, again.output  # an existing export is kept ...
    forced = CliRunner().invoke(cli, ["export", "--weights", str(weights), "--config", str(config_path),
                                      "--out", str(out), "--min-confidence", str(MIN_CONFIDENCE),
                                      "--max-detections", str(MAX_DETECTIONS), "--force"])
    assert forced.exit_code == 0, forced.output  # ... unless --force
    assert [p.name for p in folder.iterdir()] == ["export"]  # no temporary folder left beside it
    return out, first_info


def test_force_replaced_the_export_with_the_new_thresholds(exported):
    out, first_info = exported
    info = json.loads((out / "assets.extra" / "fseg_export.json").read_text())
    assert first_info["detection_min_confidence"] == 0.0 and first_info["detection_max_instances"] == 8
    assert info["detection_min_confidence"] == pytest.approx(MIN_CONFIDENCE)
    assert info["detection_max_instances"] == MAX_DETECTIONS


def test_the_export_carries_the_landmarks_of_detect(exported, tiny_landmark_model_files, tmp_path):
    from fseg import runtime
    from mrcnn.export.adapter import ExportedModel
    from mrcnn.model import MaskRCNN

    out, _ = exported
    config_path, weights = tiny_landmark_model_files
    overrides = {"DETECTION_MIN_CONFIDENCE": MIN_CONFIDENCE, "DETECTION_MAX_INSTANCES": MAX_DETECTIONS}
    config, _ = runtime.load_config(config_path, overrides=overrides)
    model = MaskRCNN("inference", config, str(tmp_path))
    model.load_weights(str(weights), by_name=True)
    export = ExportedModel(out)
    rng = np.random.default_rng(0)
    seen = 0
    for shape in ((100, 140, 3), (128, 128, 3), (90, 60, 3)):
        image = rng.integers(0, 255, shape, dtype=np.uint8)
        [expected] = model.detect([image])
        [got] = export.detect([image])
        assert len(got["class_ids"]) <= MAX_DETECTIONS and (got["scores"] >= MIN_CONFIDENCE).all()
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
        assert np.abs(got["rois"] - expected["rois"]).max(initial=0) <= 1
        assert got["landmarks"].shape == expected["landmarks"].shape == (len(expected["class_ids"]), 294, 3)
        np.testing.assert_allclose(got["landmarks"], expected["landmarks"], atol=2e-3)
        outside = expected["landmarks"][..., 2] == 0
        assert (got["landmarks"][outside] == 0).all()  # zero outside each detection's category slice
        seen += len(expected["class_ids"])
    assert seen > 0, "no detection in any image: the comparison compared nothing"


def test_serving_default_returns_keypoints_in_the_od_api_layout(exported):
    import tensorflow as tf

    out, _ = exported
    loaded = tf.saved_model.load(str(out))
    image = np.random.default_rng(1).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(image)
    result = loaded.signatures["serving_default"](images=tf.stack([encoded, encoded]))
    assert result["detection_keypoints"].shape == (2, MAX_DETECTIONS, 294, 2)
    assert result["detection_keypoint_scores"].shape == (2, MAX_DETECTIONS, 294)
    keypoints = result["detection_keypoints"].numpy()
    assert ((keypoints >= 0) & (keypoints <= 1)).all()  # normalised (y, x) of the original image
