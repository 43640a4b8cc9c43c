"""Training schedules: the config's TRAIN_SCHEDULE run stage after stage, by epochs or within a time budget.

    stages = plan_stages(config)                               # TRAIN_SCHEDULE (or one --layers stage)
    summary = run_schedule(model, train_set, val_set, stages)   # stage by stage, until its epoch
    summary = run_schedule(..., time_limit=600)                 # the same shape mapped onto 10 minutes

A stage is ``{"layers": group, "epochs": end epoch, "lr_scale": factor}``; its learning
rate is ``LEARNING_RATE * lr_scale``. Without a time limit each stage trains until its end
epoch (matterport's COCO sample does the same with three ``train`` calls). With a time
limit, the end epochs become shares of the clock: stage i ends when ``epochs_i / epochs_last``
of the budget is used, whatever the machine's speed, so every stage (the low-rate one at the
end included) gets its share; training stops when the whole budget is used, in the middle
of an epoch if need be (that epoch's checkpoint is written). ``fseg train``, ``fseg demo``
and ``scripts/bench_train.py`` all run schedules through :func:`run_schedule`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import keras

from mrcnn.train.layer_groups import layer_regex

log = logging.getLogger(__name__)

# With a time limit, a stage may run this many epochs at most (its share of the clock ends it first).
_EPOCHS_WITHIN_A_BUDGET = 1_000_000


def plan_stages(config, layers: str | None = None, epochs: int | None = None) -> list[dict]:
    """The stages to run: one ``layers`` stage up to ``epochs`` (default 1), or TRAIN_SCHEDULE cut at ``epochs``.

    Raises:
      ValueError: ``layers`` is neither a layer group nor a valid regex (one line).
    """
    if layers is not None:
        layer_regex(layers)  # a bad regex fails here
        return [{"layers": layers, "epochs": epochs or 1, "lr_scale": 1.0}]
    stages = [dict(s) for s in config.TRAIN_SCHEDULE]
    if epochs is not None:
        stages = [s for s in stages if s["epochs"] < epochs] + [
            {**next((s for s in stages if s["epochs"] >= epochs), stages[-1]), "epochs": epochs}]
    return stages


class Deadline(keras.callbacks.Callback):
    """Stops training at the first step that ends after ``deadline`` (``time.monotonic()`` seconds)."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.reached = False

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() >= self.deadline:
            self.reached = True
            self.model.stop_training = True


@dataclass
class ScheduleSummary:
    """What :func:`run_schedule` did: the stages it ran, the last epoch, whether the budget ran out."""

    stages_run: list[dict] = field(default_factory=list)
    final_epoch: int = 0
    stopped_by_budget: bool = False
    seconds: float = 0.0


def run_schedule(model, train_dataset, val_dataset, stages: list[dict], *, time_limit: float | None = None,
                 announce: Callable[[dict, float], None] | None = None, custom_callbacks=(),
                 **train_options) -> ScheduleSummary:
    """Runs ``stages`` on a training-mode ``MaskRCNN`` (see the module docstring).

    Args:
      model: a ``MaskRCNN(mode="training")``; ``model.epoch`` says where it starts (resumed runs
        skip the stages that are done when there is no time limit).
      train_dataset, val_dataset: prepared ``Dataset`` objects (val may be None).
      stages: from :func:`plan_stages`.
      time_limit: seconds for the whole schedule, counted from this call; None = run by epochs.
      announce: called as ``announce(stage, learning_rate)`` before each stage starts.
      custom_callbacks, train_options: passed to every ``model.train`` call (augmentation, seed, verbose, ...).
    Returns:
      a :class:`ScheduleSummary`. KeyboardInterrupt and FloatingPointError pass through (``model.epoch``
      is then the last epoch with a checkpoint).
    """
    start = time.monotonic()
    summary = ScheduleSummary(final_epoch=model.epoch)
    last_end = stages[-1]["epochs"]
    for stage in stages:
        callbacks = list(custom_callbacks)
        if time_limit is None:
            if stage["epochs"] <= model.epoch:
                continue
            end_epoch = stage["epochs"]
        else:
            deadline = start + time_limit * stage["epochs"] / last_end
            if time.monotonic() >= deadline:
                continue  # earlier stages overran this one's share
            end_epoch = model.epoch + _EPOCHS_WITHIN_A_BUDGET
            callbacks.insert(0, Deadline(deadline))
        learning_rate = model.config.LEARNING_RATE * stage["lr_scale"]
        if announce is not None:
            announce(stage, learning_rate)
        log.info("stage: layers %s until epoch %s, learning rate %g", stage["layers"],
                 "its time share ends" if time_limit else end_epoch, learning_rate)
        model.train(train_dataset, val_dataset, learning_rate=learning_rate, epochs=end_epoch,
                    layers=stage["layers"], custom_callbacks=callbacks, **train_options)
        summary.stages_run.append(stage)
        summary.final_epoch = model.epoch
    summary.seconds = time.monotonic() - start
    summary.stopped_by_budget = time_limit is not None and summary.seconds >= time_limit
    return summary
