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
of an epoch if need be (that epoch's checkpoint is written). Consecutive stages that train the
same layers (e.g. a low-rate stage after a full-rate one) share one ``model.train`` call whose
learning rate :class:`StageRates` changes at the stage's end, so the step is traced once; a
change of layers needs a new call. ``fseg train``, ``fseg demo`` and ``scripts/bench_train.py``
all run schedules through :func:`run_schedule`.
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


class StageRates(keras.callbacks.Callback):
    """Moves one ``fit`` through consecutive stages of the same layers by changing the learning rate.

    ``stages`` are ``(stage, learning_rate, end)`` in order; ``end`` is the stage's end epoch
    (by epochs) or its deadline in ``time.monotonic()`` seconds (``by_time``). The first stage's
    rate is the one ``fit`` starts with; when a stage ends the next one's rate is set (between
    epochs, or at the first step after the deadline) and ``announce(stage, rate, epoch)`` is
    called with the (1-based) epoch in which it starts.
    One ``fit`` instead of one per stage: the training step is traced once (10-40 s on 2 cores)
    and the optimizer keeps its momentum, as any learning-rate schedule does.
    """

    def __init__(self, stages: list[tuple[dict, float, float]], by_time: bool, announce=None):
        super().__init__()
        self.stages, self.by_time, self.announce = stages, by_time, announce
        self.current = 0  # index of the stage being trained
        self.epoch = 0  # the epoch fit is in, counted from 0 as Keras does

    def _advance(self, now: float) -> None:
        while self.current + 1 < len(self.stages) and now >= self.stages[self.current][2]:
            self.current += 1
            stage, learning_rate, _ = self.stages[self.current]
            self.model.optimizer.learning_rate = learning_rate
            log.info("stage: layers %s, learning rate %g", stage["layers"], learning_rate)
            if self.announce is not None:
                self.announce(stage, learning_rate, self.epoch + 1)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if not self.by_time:
            self._advance(epoch)  # Keras counts epochs from 0: epoch e runs after e are done

    def on_train_batch_begin(self, batch, logs=None):
        if self.by_time:
            self._advance(time.monotonic())


@dataclass
class ScheduleSummary:
    """What :func:`run_schedule` did: the stages it ran, the last epoch, whether the budget ran out."""

    stages_run: list[dict] = field(default_factory=list)
    final_epoch: int = 0
    stopped_by_budget: bool = False
    seconds: float = 0.0


def run_schedule(model, train_dataset, val_dataset, stages: list[dict], *, time_limit: float | None = None,
                 max_epoch: int | None = None, announce: Callable[[dict, float, int], None] | None = None,
                 custom_callbacks=(), **train_options) -> ScheduleSummary:
    """Runs ``stages`` on a training-mode ``MaskRCNN`` (see the module docstring).

    Args:
      model: a ``MaskRCNN(mode="training")``; ``model.epoch`` says where it starts (resumed runs
        skip the stages that are done when there is no time limit).
      train_dataset, val_dataset: prepared ``Dataset`` objects (val may be None).
      stages: from :func:`plan_stages`.
      time_limit: seconds for the whole schedule, counted from this call; None = run by epochs.
      max_epoch: with a time limit, also stop after this epoch (``fseg train --epochs N --time-limit M``:
        whichever comes first); None = only the clock ends it.
      announce: called as ``announce(stage, learning_rate, epoch)`` when each stage starts in ``epoch``
        (counted from 1).
      custom_callbacks, train_options: passed to every ``model.train`` call (augmentation, seed, verbose, ...).
    Returns:
      a :class:`ScheduleSummary`. KeyboardInterrupt and FloatingPointError pass through (``model.epoch``
      is then the last epoch with a checkpoint).
    """
    start = time.monotonic()
    summary = ScheduleSummary(final_epoch=model.epoch)
    last_end = stages[-1]["epochs"]
    # (stage, learning rate, end): the end epoch, or with a time limit the stage's deadline.
    planned = [(stage, model.config.LEARNING_RATE * stage["lr_scale"],
                stage["epochs"] if time_limit is None else start + time_limit * stage["epochs"] / last_end)
               for stage in stages]
    for run in _runs_of_the_same_layers(planned):
        # Stages done before a resumed run, or whose share of the clock earlier stages used up.
        now = model.epoch if time_limit is None else time.monotonic()
        run = [item for item in run if item[2] > now]
        if not run:
            continue
        first, learning_rate, _ = run[0]
        rates = StageRates(run, by_time=time_limit is not None, announce=announce)
        callbacks = [rates, *custom_callbacks]
        if time_limit is None:
            end_epoch = run[-1][2]
        else:
            end_epoch = model.epoch + _EPOCHS_WITHIN_A_BUDGET if max_epoch is None else max_epoch
            if end_epoch <= model.epoch:
                break
            callbacks.insert(0, Deadline(run[-1][2]))
        if announce is not None:
            announce(first, learning_rate, model.epoch + 1)
        log.info("stage: layers %s until epoch %s, learning rate %g", first["layers"],
                 "its time share ends" if time_limit else run[0][2], learning_rate)
        model.train(train_dataset, val_dataset, learning_rate=learning_rate, epochs=end_epoch,
                    layers=first["layers"], custom_callbacks=callbacks, **train_options)
        summary.stages_run.extend(stage for stage, _, _ in run[:rates.current + 1])
        summary.final_epoch = model.epoch
    summary.seconds = time.monotonic() - start
    summary.stopped_by_budget = time_limit is not None and summary.seconds >= time_limit
    return summary


def _runs_of_the_same_layers(planned: list[tuple]) -> list[list[tuple]]:
    """Consecutive planned stages that train the same layers, grouped: each group is one ``fit``."""
    runs: list[list[tuple]] = []
    for item in planned:
        if runs and runs[-1][-1][0]["layers"] == item[0]["layers"]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs
