"""`fseg demo` in a shortened form (its time budget: tests/test_schedule.py)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from fseg.cli import cli


def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--minutes", "1", "--train-images", "12",
                                      "--val-images", "4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for path in ("train/image", "train/annos", "val/image", "train.json", "val.json",
                 "evaluation/metrics.json", "evaluation/results.json", "predictions/predictions.json"):
        assert (out / path).exists(), path
    assert list((out / "logs").glob("synthetic*/mask_rcnn_synthetic_*.h5")), "no checkpoint written"
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["images"] == 4 and metrics["instances"] > 0
    assert 0.0 <= metrics["segm"]["AP50"] <= 1.0
    assert len(list((out / "predictions").glob("*.jpg"))) == 4  # overlays keep the JPEG format
    assert 0.0 <= metrics["keypoints"]["AP"] <= 1.0  # the demo config trains the landmark head
    assert "mask AP50" in result.output and "landmark AP" in result.output

    again = CliRunner().invoke(cli, ["demo", "--out", str(out), "--minutes", "1"])
    assert again.exit_code == 2 and "not empty" in again.output
