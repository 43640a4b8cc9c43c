"""`fseg demo` in a shortened form, and the time budget it relies on."""
from __future__ import annotations

import json

import keras
import numpy as np
from click.testing import CliRunner

from fseg.cli import cli
from mrcnn.trainer import TimeLimit


def test_time_limit_stops_at_the_end_of_the_first_epoch_past_the_budget():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 2)), np.zeros((8, 1))
    budget = TimeLimit(0.0)
    history = model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[budget])
    assert len(history.history["loss"]) == 1 and budget.expired
    # A budget that has not run out lets every epoch run.
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[TimeLimit(3600)])
    assert len(history.history["loss"]) == 3


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
    assert "mask AP50" in result.output

    again = CliRunner().invoke(cli, ["demo", "--out", str(out), "--minutes", "1"])
    assert again.exit_code == 2 and "not empty" in again.output
