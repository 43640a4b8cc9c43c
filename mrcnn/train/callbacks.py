"""Per-epoch callbacks of a training stage: checkpoints, NaN guard, learning rate, CSV and TensorBoard logs.

Only the chief of a multi-worker run writes files (every worker holds the same weights).
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import signal
import threading
import time
from pathlib import Path

import keras

from mrcnn.io.weights import save_weights
from mrcnn.train.checkpoints import write_run_config

log = logging.getLogger(__name__)


def is_chief(strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy.

    Only the chief writes checkpoints and logs (every worker holds the same weights).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    if has_chief:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def _finite(value) -> bool:
    return value is None or math.isfinite(float(value))


@contextlib.contextmanager
def signals_deferred():
    """Holds back Ctrl-C (SIGINT) and SIGTERM until the block is done, then delivers them.

    Used around writing and recording a checkpoint, so an interrupt never falls between
    the file appearing and ``last_epoch`` saying so. Only the main thread can do this;
    elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda number, frame: received.append(number)) for number in watched}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signal.raise_signal(received[0])


class LegacyCheckpoint(keras.callbacks.Callback):
    """Saves matterport-layout weights after every epoch (atomically), unless the epoch's loss is not finite.

    An epoch cut short by a time budget (``mrcnn.train.schedule.Deadline``) is saved; one stopped by
    a NaN (``guard``) is not. ``last_epoch`` is the epoch number of the newest file written (None before
    the first).
    """

    def __init__(self, keras_model: keras.Model, path_for_epoch, write: bool = True, guard=None):
        super().__init__()
        self.keras_model = keras_model
        self.path_for_epoch = path_for_epoch
        self.write = write
        self.guard = guard
        self.saved: list[Path] = []
        self.last_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        if not _finite((logs or {}).get("loss")) or (self.guard is not None and self.guard.bad_batch is not None):
            return  # a non-finite epoch is not a checkpoint
        path = Path(self.path_for_epoch(epoch + 1))
        with signals_deferred():
            if self.write:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_weights(self.keras_model, path)
                self.saved.append(path)
            self.last_epoch = epoch + 1


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss; the last checkpoint stays the last good one.

    ``bad_batch`` is then (epoch number, step number counted from 1, {loss name: value}).
    """

    def __init__(self):
        super().__init__()
        self.bad_batch: tuple[int, int, dict] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if self.bad_batch is None and not _finite(logs.get("loss")):
            self.bad_batch = (self._epoch + 1, batch + 1, {k: float(v) for k, v in logs.items()})
            log.error("non-finite loss at epoch %d, step %d: %s", self._epoch + 1, batch + 1, logs)
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate to the epoch logs; must come before the CSV and TensorBoard loggers."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def csv_columns(loss_names) -> tuple[str, ...]:
    """Columns of training_log.csv: the epoch number (= the checkpoint's NNNN), the layer group, the
    running means of the losses over the epoch, the validation losses, the learning rate, the seconds."""
    return ("epoch", "layers", "loss", *loss_names, "val_loss", *(f"val_{name}" for name in loss_names),
            "learning_rate", "seconds")


class EpochCsvLog(keras.callbacks.Callback):
    """Appends one row per epoch to a CSV file with the columns of :func:`csv_columns`.

    Stages with and without validation share one header; a missing value is left
    empty. The epoch column counts from 1, like the checkpoint files.
    """

    def __init__(self, path, layers: str, loss_names):
        super().__init__()
        self.path = Path(path)
        self.layers = layers
        self.columns = csv_columns(loss_names)
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "layers": self.layers, "seconds": round(time.monotonic() - self._started, 1)}
        row.update({k: float(v) for k, v in logs.items() if k in self.columns})
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="", extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


def stage_callbacks(mrcnn_model, layers: str, loss_names, custom_callbacks) -> list:
    """The NaN guard, checkpoints, learning rate, CSV and TensorBoard logs of one training stage."""
    chief = is_chief(mrcnn_model.strategy)
    if chief:
        log_dir = mrcnn_model.claim_log_dir()
        write_run_config(log_dir, mrcnn_model.config)
    log_dir = Path(mrcnn_model.log_dir)
    guard = StopOnNonFiniteLoss()
    callbacks = [
        guard,
        LegacyCheckpoint(mrcnn_model.keras_model, mrcnn_model.checkpoint_for_epoch, write=chief, guard=guard),
        LearningRateLogger(),
    ]
    if chief:
        callbacks += [EpochCsvLog(log_dir / "training_log.csv", layers, loss_names),
                      keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")]
    return callbacks + list(custom_callbacks or [])
