"""Per-epoch callbacks of a training stage: NaN guard, learning rate, and the epoch record (checkpoint, CSV,
TensorBoard; see mrcnn.train.run_log).

Only the chief of a multi-worker run writes files (every worker holds the same weights).
"""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from pathlib import Path

import keras

from mrcnn.io.weights import save_weights
from mrcnn.train.checkpoints import run_name, write_run_config
from mrcnn.train.run_log import RECORD_NOTE, STATUS_NAN, STATUS_OK, STATUS_PARTIAL, RunLog

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


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch: the checkpoint (matterport's layout, the epoch's row inside), then its CSV row, then
    its TensorBoard step, in that order and with Ctrl-C / SIGTERM held back (see mrcnn.train.run_log).

    An epoch stopped by a NaN (``guard``) gets a row with status "nan" and no checkpoint; an epoch cut
    short by a time budget (``mrcnn.train.schedule.Deadline``) is saved with status "partial".
    ``last_epoch`` is the epoch number of the newest checkpoint written (None before the first).
    Only the chief writes (``write``); the other workers just count.
    """

    def __init__(self, keras_model: keras.Model, path_for_epoch, run_log, layers: str, guard, write: bool = True):
        super().__init__()
        self.keras_model = keras_model
        self.path_for_epoch = path_for_epoch
        self.run_log = run_log
        self.layers = layers
        self.guard = guard
        self.write = write
        self.saved: list[Path] = []
        self.last_epoch: int | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        failed = not _finite(logs.get("loss")) or self.guard.bad_batch is not None
        status = STATUS_NAN if failed else (STATUS_PARTIAL if self.model.stop_training else STATUS_OK)
        row = {"epoch": epoch + 1, "status": status, "layers": self.layers,
               "seconds": round(time.monotonic() - self._started, 1),
               **{k: float(v) for k, v in logs.items()}}
        with signals_deferred():
            if failed:
                if self.write:
                    self.run_log.append_row(row)
                return
            path = Path(self.path_for_epoch(epoch + 1))
            if self.write:
                try:
                    save_weights(self.keras_model, path, notes={RECORD_NOTE: row})
                except (OSError, RuntimeError) as exc:  # h5py reports a full disk as either
                    raise CheckpointWriteError(path, exc) from None
                self.saved.append(path)
                self.run_log.append_row(row)
                self.run_log.write_tensorboard(row)
            self.last_epoch = epoch + 1

    def on_train_end(self, logs=None):
        self.run_log.close()


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full or read-only disk, ...); one line naming the file."""

    def __init__(self, path: Path, cause: BaseException):
        reason = getattr(cause, "strerror", None) or str(cause).splitlines()[0]
        super().__init__(f"cannot write the checkpoint {path}: {reason}")
        self.path = path


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


class SkippedImagesReport(keras.callbacks.Callback):
    """Names the images the input pipeline could not read (``mrcnn.data.image_loader.SkippedImages``) at the end
    of each epoch, and puts their running count in the epoch's logs (``skipped_images``); training goes on."""

    def __init__(self, skipped):
        super().__init__()
        self.skipped = skipped

    def on_epoch_end(self, epoch, logs=None):
        fresh = self.skipped.new()
        if fresh:
            shown = "; ".join(fresh[:5]) + (f"; and {len(fresh) - 5} more" if len(fresh) > 5 else "")
            log.warning("epoch %d: %d unreadable image(s) skipped: %s", epoch + 1, len(fresh), shown)
        if logs is not None:
            logs["skipped_images"] = float(len(self.skipped))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate to the epoch logs; must come before the CSV and TensorBoard loggers."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class PartialEpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, except that an epoch stopped early (time limit, signal, NaN loss) ends on the
    steps it ran (``37/100``), as ``training_log.csv`` marks it partial, not on ``100/100``."""

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.target and 0 < self.seen < self.target:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)
        else:
            super().on_epoch_end(epoch, logs)


def stage_callbacks(mrcnn_model, layers: str, loss_names, custom_callbacks, skipped):
    """The NaN guard, the learning rate, and the epoch recorder (checkpoint, CSV, TensorBoard) of one stage.

    Returns (callbacks for ``fit``, the guard, the recorder). The chief claims the run folder, records the
    config in it and repairs its logs after an interrupted run (``RunLog.reconcile``) before training starts.
    """
    chief = is_chief(mrcnn_model.strategy)
    run_log = RunLog(mrcnn_model.log_dir, run_name(mrcnn_model.config), loss_names)
    if chief:
        log_dir = mrcnn_model.claim_log_dir()
        write_run_config(log_dir, mrcnn_model.config)
        run_log = RunLog(log_dir, run_name(mrcnn_model.config), loss_names)
        run_log.reconcile()
    guard = StopOnNonFiniteLoss()
    recorder = EpochRecorder(mrcnn_model.keras_model, mrcnn_model.checkpoint_for_epoch, run_log, layers, guard,
                             write=chief)
    # fit() uses the progress bar given (printing only when its verbose says so) instead of adding its own.
    return ([guard, LearningRateLogger(), SkippedImagesReport(skipped), recorder, PartialEpochProgbar(),
             *(custom_callbacks or [])],
            guard, recorder)
