"""mrcnn.train.schedule: stages from the config, run by epochs or mapped onto a time budget."""
from __future__ import annotations

import textwrap
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from mrcnn.config import config_from_dict
from mrcnn.train import schedule
from mrcnn.train.schedule import Deadline, StageRates, plan_stages, run_schedule

SCHEDULE = [{"layers": "heads", "epochs": 4, "lr_scale": 1.0},
            {"layers": "4+", "epochs": 8, "lr_scale": 1.0},
            {"layers": "all", "epochs": 10, "lr_scale": 0.1}]
# Two stages of the same layers (configs/synthetic.toml's shape): one fit, the rate changes in it.
SAME_LAYERS = [{"layers": "all", "epochs": 4, "lr_scale": 1.0},
               {"layers": "all", "epochs": 10, "lr_scale": 0.1}]


def config(**settings):
    return config_from_dict({"NAME": "s", "TRAIN_SCHEDULE": SCHEDULE, "LEARNING_RATE": 0.02, **settings})


class FakeModel:
    """Records the train() calls of a schedule. Each call 'trains' one step per epoch until its end epoch,
    calling the callbacks as fit() does (so Deadline and StageRates act), and records each epoch's rate."""

    def __init__(self, cfg, clock, seconds_per_epoch=10.0, epoch=0):
        self.config, self.clock, self.seconds_per_epoch, self.epoch = cfg, clock, seconds_per_epoch, epoch
        self.calls = []

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, custom_callbacks=(), **options):
        callbacks = [c for c in custom_callbacks if isinstance(c, keras.callbacks.Callback)]
        deadline = next((c.deadline for c in callbacks if isinstance(c, Deadline)), None)
        call = {"layers": layers, "lr": learning_rate, "from": self.epoch, "until": epochs,
                "deadline": deadline, "options": options, "rates": []}
        self.calls.append(call)
        trainer = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=learning_rate), stop_training=False)
        for callback in callbacks:
            callback.set_model(trainer)
        while self.epoch < epochs and not trainer.stop_training:
            for callback in callbacks:
                callback.on_epoch_begin(self.epoch)
                callback.on_train_batch_begin(0)
            call["rates"].append(trainer.optimizer.learning_rate)
            self.clock[0] += self.seconds_per_epoch
            for callback in callbacks:
                callback.on_train_batch_end(0)
            self.epoch += 1


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
                           announce=lambda stage, lr, epoch: announced.append((stage["layers"], lr)))
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


def test_stages_of_the_same_layers_share_one_fit_whose_rate_changes_at_the_stage_end(clock):
    model = FakeModel(config(), clock)
    announced = []
    summary = run_schedule(model, "train", None, SAME_LAYERS,
                           announce=lambda stage, lr, epoch: announced.append((stage["epochs"], lr, epoch)))
    assert [(c["layers"], c["from"], c["until"], c["lr"]) for c in model.calls] == [("all", 0, 10, 0.02)]
    assert model.calls[0]["rates"] == pytest.approx([0.02] * 4 + [0.002] * 6)
    assert announced == [(4, 0.02, 1), (10, pytest.approx(0.002), 5)]
    assert summary.stages_run == SAME_LAYERS and summary.final_epoch == 10

    resumed = FakeModel(config(), clock, epoch=5)  # the full-rate stage is done: start at the low rate
    run_schedule(resumed, "train", None, SAME_LAYERS)
    assert [(c["from"], c["until"]) for c in resumed.calls] == [(5, 10)]
    assert resumed.calls[0]["rates"] == pytest.approx([0.002] * 5)


def test_with_a_time_budget_the_rate_changes_at_the_first_step_after_the_stage_share(clock):
    # 100 s, the full-rate stage ends at 40 s; 7 s per epoch (one step each here).
    model = FakeModel(config(), clock, seconds_per_epoch=7.0)
    announced = []
    summary = run_schedule(model, "train", None, SAME_LAYERS, time_limit=100.0,
                           announce=lambda stage, lr, epoch: announced.append((stage["epochs"], lr, epoch)))
    assert len(model.calls) == 1 and model.calls[0]["deadline"] - 1000.0 == pytest.approx(100.0)
    # Steps starting at 0, 7, ..., 35 s at 0.02; from 42 s (epoch 7) at 0.002; the step ending at 105 s stops it.
    assert model.calls[0]["rates"] == pytest.approx([0.02] * 6 + [0.002] * 9)
    assert announced == [(4, 0.02, 1), (10, pytest.approx(0.002), 7)]
    assert summary.stopped_by_budget and summary.final_epoch == 15 and summary.stages_run == SAME_LAYERS


def test_stage_rates_set_the_rate_of_a_real_keras_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    stages = [({"layers": "all", "epochs": 2}, 0.1, 2), ({"layers": "all", "epochs": 4}, 0.01, 4)]
    x, y = np.zeros((8, 2)), np.zeros((8, 1))
    model.fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[StageRates(stages, by_time=False), Record()])
    assert seen == pytest.approx([0.1] * 4 + [0.01] * 4)


# After test_training.TWO_CPUS_PREAMBLE (two logical CPUs, the module as ``t``).
MIRRORED_SCHEDULE_BODY = textwrap.dedent("""
    import csv, os
    from mrcnn.model import MaskRCNN
    from mrcnn.train.schedule import plan_stages, run_schedule

    annotations, images, logs = sys.argv[3:6]
    schedule = [{"layers": "heads", "epochs": 2, "lr_scale": 1.0}, {"layers": "heads", "epochs": 3, "lr_scale": 0.1}]
    config = t.small_config(IMAGES_PER_GPU=1, GPU_COUNT=2, STEPS_PER_EPOCH=1, LEARNING_RATE=0.01,
                            TRAIN_SCHEDULE=schedule)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model = MaskRCNN("training", config, model_dir=logs, strategy=strategy)
    announced = []
    summary = run_schedule(model, t.load_dataset(annotations, images, config), None, plan_stages(config),
                           announce=lambda stage, rate, epoch: announced.append([rate, epoch]), seed=0, verbose=0)
    with open(os.path.join(model.log_dir, "training_log.csv")) as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    print("RESULT " + json.dumps({"rates": rates, "announced": announced, "epoch": model.epoch,
                                  "stages": len(summary.stages_run), "replicas": strategy.num_replicas_in_sync}))
""")


def test_a_schedule_lowers_the_rate_inside_one_fit_on_two_replicas(tmp_path):
    """StageRates sets the (mirrored) optimizer's rate from a callback under MirroredStrategy."""
    from test_training import REPO, TWO_CPUS_PREAMBLE, make_split, result_of, run_python

    split = make_split(tmp_path / "data", images=4)
    script = TWO_CPUS_PREAMBLE + MIRRORED_SCHEDULE_BODY
    result = result_of(run_python(script, REPO, REPO / "tests", *split, tmp_path / "logs"))
    assert result["replicas"] == 2 and result["epoch"] == 3 and result["stages"] == 2
    assert result["rates"] == pytest.approx([0.01, 0.01, 0.001])
    assert result["announced"] == [[0.01, 1], [pytest.approx(0.001), 3]]
