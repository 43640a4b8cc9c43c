"""mrcnn.train.schedule: stages from the config, run by epochs or mapped onto a time budget."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from mrcnn.config import config_from_dict
from mrcnn.train import schedule
from mrcnn.train.schedule import Deadline, plan_stages, run_schedule

SCHEDULE = [{"layers": "heads", "epochs": 4, "lr_scale": 1.0},
            {"layers": "4+", "epochs": 8, "lr_scale": 1.0},
            {"layers": "all", "epochs": 10, "lr_scale": 0.1}]


def config(**settings):
    return config_from_dict({"NAME": "s", "TRAIN_SCHEDULE": SCHEDULE, "LEARNING_RATE": 0.02, **settings})


class FakeModel:
    """Records the train() calls of a schedule; each call 'trains' until its end epoch (or its deadline)."""

    def __init__(self, cfg, clock, seconds_per_epoch=10.0, epoch=0):
        self.config, self.clock, self.seconds_per_epoch, self.epoch = cfg, clock, seconds_per_epoch, epoch
        self.calls = []

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, custom_callbacks=(), **options):
        deadline = next((c.deadline for c in custom_callbacks if isinstance(c, Deadline)), None)
        self.calls.append({"layers": layers, "lr": learning_rate, "from": self.epoch, "until": epochs,
                           "deadline": deadline, "options": options})
        while self.epoch < epochs:
            self.clock[0] += self.seconds_per_epoch
            self.epoch += 1
            if deadline is not None and self.clock[0] >= deadline:
                break


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(schedule.time, "monotonic", lambda: now[0])
    return now


def test_plan_stages_from_the_schedule_a_layer_group_or_an_epoch_cut():
    assert plan_stages(config()) == SCHEDULE
    assert plan_stages(config(), layers="heads", epochs=3) == [{"layers": "heads", "epochs": 3, "lr_scale": 1.0}]
    assert plan_stages(config(), layers="res5.*") == [{"layers": "res5.*", "epochs": 1, "lr_scale": 1.0}]
    cut = plan_stages(config(), epochs=6)
    assert cut == [SCHEDULE[0], {"layers": "4+", "epochs": 6, "lr_scale": 1.0}]
    with pytest.raises(Exception):
        plan_stages(config(), layers="res(")  # a bad regex


def test_by_epochs_each_stage_runs_to_its_end_and_a_resumed_run_skips_done_stages(clock):
    model = FakeModel(config(), clock)
    summary = run_schedule(model, "train", None, SCHEDULE, seed=3)
    assert [(c["layers"], c["from"], c["until"]) for c in model.calls] == [
        ("heads", 0, 4), ("4+", 4, 8), ("all", 8, 10)]
    assert [c["lr"] for c in model.calls] == pytest.approx([0.02, 0.02, 0.002])
    assert all(c["options"] == {"seed": 3} and c["deadline"] is None for c in model.calls)
    assert summary.final_epoch == 10 and not summary.stopped_by_budget

    resumed = FakeModel(config(), clock, epoch=5)
    run_schedule(resumed, "train", None, SCHEDULE)
    assert [(c["layers"], c["from"], c["until"]) for c in resumed.calls] == [("4+", 5, 8), ("all", 8, 10)]


def test_a_time_budget_gives_each_stage_its_share_of_the_clock(clock):
    # 100 s over epochs 4 / 8 / 10: stages end at 40 s, 80 s, 100 s; an epoch takes 7 s here.
    model = FakeModel(config(), clock, seconds_per_epoch=7.0)
    announced = []
    summary = run_schedule(model, "train", None, SCHEDULE, time_limit=100.0,
                           announce=lambda stage, lr: announced.append((stage["layers"], lr)))
    assert [c["deadline"] - 1000.0 for c in model.calls] == pytest.approx([40.0, 80.0, 100.0])
    assert announced == [("heads", 0.02), ("4+", 0.02), ("all", pytest.approx(0.002))]
    # heads ran epochs 1-6 (42 s), 4+ 7-12 (84 s), all 13-15 (105 s): the low-rate stage was reached.
    assert [c["from"] for c in model.calls] == [0, 6, 12] and model.epoch == 15
    assert summary.stopped_by_budget and summary.final_epoch == 15


def test_a_stage_whose_share_is_used_up_is_skipped(clock):
    model = FakeModel(config(), clock, seconds_per_epoch=90.0)  # the first epoch overruns two shares
    run_schedule(model, "train", None, SCHEDULE, time_limit=100.0)
    assert [c["layers"] for c in model.calls] == ["heads", "all"]


def test_deadline_stops_in_the_middle_of_an_epoch(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(schedule.time, "monotonic", lambda: now[0])

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            now[0] += 1.0

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((40, 2)), np.zeros((40, 1))
    deadline = Deadline(3.0)
    history = model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[Tick(), deadline])
    assert deadline.reached and len(history.history["loss"]) == 1  # stopped after step 3 of epoch 1
    assert now[0] == 3.0
