"""Training: layer groups, the loss-computing ``train_step``, and per-epoch callbacks.

Keras 3 does not allow ``add_loss`` on symbolic tensors, so the training graph
(``mrcnn.training_graph``) only returns tensors and ``TrainingModel.train_step``
computes matterport's five losses plus L2 weight decay from them.

Distribution. Under a ``tf.distribute`` strategy each replica gets
``BATCH_SIZE / replicas`` images; its loss is divided by the replica count and
the gradients are summed over the replicas, so the update is the one of the
mean loss. matterport clipped the *global* gradient norm (Keras 2 ``clipnorm``);
Keras 3's optimizer would clip each replica's partial gradient before summing
them, so ``train_step`` sums first, clips the full gradient itself, and hands
the optimizer a share that its own sum turns back into the clipped gradient.

Mixed precision. Under the ``mixed_float16`` policy Keras wraps the optimizer in
a ``LossScaleOptimizer``: the loss is multiplied by its dynamic scale, the clip
threshold too (the gradients are still scaled when clipped), and the optimizer
unscales them, skipping the step and halving the scale when they are not finite.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import re
import signal
import threading
import time
from pathlib import Path

import keras
import tensorflow as tf

from mrcnn import losses, weights

log = logging.getLogger(__name__)

# matterport's named layer groups for train(layers=...); anything else is used as a regex.
LAYER_GROUPS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}
# Columns of training_log.csv: the epoch number (= the checkpoint's NNNN), the layer group,
# the running means of the losses over the epoch, the validation losses, the learning rate.
CSV_COLUMNS = ("epoch", "layers", "loss", *losses.LOSS_NAMES, "val_loss",
               *(f"val_{name}" for name in losses.LOSS_NAMES), "learning_rate", "seconds")


def layer_regex(layers: str) -> str:
    """The regex of a named group, or ``layers`` itself when it is already a regex."""
    regex = LAYER_GROUPS.get(layers, layers)
    re.compile(regex)  # a bad regex fails here, with re's message
    return regex


def set_trainable(model: keras.Model, regex: str) -> list[str]:
    """Makes the layers with weights whose name fully matches ``regex`` trainable, freezes the rest.

    Nested models (``rpn_model``) are searched recursively. Returns the names of
    the trainable layers.
    """
    trainable = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = set_trainable(layer, regex)
            layer.trainable = bool(inner)
            if inner:  # setting trainable on a model resets its layers: apply the regex again
                set_trainable(layer, regex)
            trainable += inner
            continue
        if not layer.weights:
            continue
        layer.trainable = re.fullmatch(regex, layer.name) is not None
        if layer.trainable:
            trainable.append(layer.name)
    return trainable


class TrainingModel(keras.Model):
    """Wraps the functional training graph with a loss-computing ``train_step``/``test_step``.

    The losses are tracked with ``keras.metrics.Mean`` under matterport's names
    (``rpn_class_loss``, ..., ``mrcnn_mask_loss``) plus ``loss`` (their weighted sum
    with weight decay): the progress bar and the logs show their running means.
    """

    def __init__(self, graph: keras.Model, config, **kwargs):
        # The graph's dtype policy (fixed when it was built), so that compile() wraps the
        # optimizer in a LossScaleOptimizer for a mixed_float16 graph, whatever the global policy is now.
        kwargs.setdefault("dtype", graph.dtype_policy)
        super().__init__(**kwargs)
        self.graph = graph
        self.loss_weights = dict(config.LOSS_WEIGHTS)
        self.weight_decay = float(config.WEIGHT_DECAY)
        self.clip_norm = float(config.GRADIENT_CLIP_NORM or 0.0)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", *losses.LOSS_NAMES)}
        self.built = True  # the wrapped graph is built; call() only delegates to it

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras hook run by fit() before training under a distribution strategy.

        Keras averages the first distributed batch over the replicas to trace shapes, which
        fails on the bool ground-truth masks (no AddN for bool). Nothing needs tracing here:
        the graph is built and there are no compiled losses or metrics, so only the
        optimizer's variables are created, in the strategy's scope.
        """
        strategy = getattr(self, "_distribute_strategy", None)  # set when created in a strategy's scope
        if strategy is None:
            return
        with strategy.scope():
            self._symbolic_build(data_batch={})

    def call(self, inputs, training=False):
        return self.graph(inputs, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_losses(self, inputs, outputs) -> dict:
        """matterport's five losses (float32 scalars) from the graph's inputs and outputs."""
        return {
            "rpn_class_loss": losses.rpn_class_loss(inputs["input_rpn_match"], outputs["rpn_class_logits"]),
            "rpn_bbox_loss": losses.rpn_bbox_loss(inputs["input_rpn_bbox"], inputs["input_rpn_match"],
                                                  outputs["rpn_bbox"]),
            "mrcnn_class_loss": losses.mrcnn_class_loss(outputs["target_class_ids"], outputs["mrcnn_class_logits"],
                                                        outputs["active_class_ids"]),
            "mrcnn_bbox_loss": losses.mrcnn_bbox_loss(outputs["target_bbox"], outputs["target_class_ids"],
                                                      outputs["mrcnn_bbox"]),
            "mrcnn_mask_loss": losses.mrcnn_mask_loss(outputs["target_mask"], outputs["target_class_ids"],
                                                      outputs["mrcnn_mask"]),
        }

    def total_loss(self, parts: dict):
        """Σ LOSS_WEIGHTS[name] · loss + L2 weight decay of the trainable weights: float32 scalar."""
        total = tf.add_n([tf.cast(parts[name], tf.float32) * self.loss_weights.get(name, 1.0)
                          for name in losses.LOSS_NAMES])
        return total + losses.weight_decay_loss(self.graph.trainable_weights, self.weight_decay)

    def _track(self, total, parts) -> dict:
        """Updates the running means; returns {name: running mean} for the logs."""
        self.trackers["loss"].update_state(total)
        for name, value in parts.items():
            self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras averages the logs of several workers with reduce(MEAN, axis=0), which needs
            # an axis: give each value one (a scalar comes back out).
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.graph(inputs, training=True)
            parts = self.compute_losses(inputs, outputs)
            total = self.total_loss(parts)
            # Each replica's share of the mean loss; the optimizer's loss scale (mixed precision) on top.
            scaled_loss = self.optimizer.scale_loss(total / replicas)
        variables = self.graph.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        if pairs:
            gradients = self._sum_and_clip([g for g, _ in pairs], replicas)
            self.optimizer.apply_gradients(zip(gradients, [v for _, v in pairs]))
        return self._track(total, parts)

    def _sum_and_clip(self, gradients: list, replicas: int) -> list:
        """The gradients of this replica -> what to hand the optimizer (which sums over replicas).

        Args:
          gradients: per-variable gradients of this replica's loss share, times the loss scale.
          replicas: replicas in sync (1 without distribution).
        Returns:
          gradients whose sum over replicas is the full-batch gradient clipped to a global
          norm of GRADIENT_CLIP_NORM (before loss scaling); still multiplied by the loss scale.
        """
        if replicas > 1:
            gradients = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        if self.clip_norm > 0:
            loss_scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
            gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm * loss_scale)
        if replicas > 1:
            gradients = [g / replicas for g in gradients]
        return gradients

    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        outputs = self.graph(inputs, training=False)
        parts = self.compute_losses(inputs, outputs)
        return self._track(self.total_loss(parts), parts)


def _multi_worker(strategy) -> bool:
    """True under a MultiWorkerMirroredStrategy with more than one worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict() or {}
    return sum(len(tasks) for role, tasks in cluster.items() if role in ("chief", "worker")) > 1


def make_optimizer(config, learning_rate: float) -> keras.optimizers.Optimizer:
    """SGD with momentum. The global-norm clipping (GRADIENT_CLIP_NORM) is done by
    ``TrainingModel.train_step`` on the gradient summed over replicas (see module docstring)."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM)


# ---------------------------------------------------------------- callbacks
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

    ``last_epoch`` is the epoch number of the newest file written (None before the first).
    """

    def __init__(self, keras_model: keras.Model, path_for_epoch, write: bool = True):
        super().__init__()
        self.keras_model = keras_model
        self.path_for_epoch = path_for_epoch
        self.write = write
        self.saved: list[Path] = []
        self.last_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        if not _finite((logs or {}).get("loss")) or getattr(self.model, "stop_training", False):
            return  # a non-finite or interrupted epoch is not a checkpoint
        path = Path(self.path_for_epoch(epoch + 1))
        with signals_deferred():
            if self.write:
                path.parent.mkdir(parents=True, exist_ok=True)
                weights.save_weights(self.keras_model, path)
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


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends after ``seconds`` of training.

    Pass the same object to several stages to give them one shared budget; the clock
    starts when the first stage begins training. It runs after the checkpoint
    callback (custom callbacks come last), so the epoch it stops at is saved.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.started: float | None = None

    @property
    def expired(self) -> bool:
        return self.started is not None and time.monotonic() - self.started >= self.seconds

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.expired:
            log.info("time limit of %.0f s reached after epoch %d", self.seconds, epoch + 1)
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate to the epoch logs; must come before the CSV and TensorBoard loggers."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochCsvLog(keras.callbacks.Callback):
    """Appends one row per epoch to a CSV file with the fixed columns ``CSV_COLUMNS``.

    Stages with and without validation share one header; a missing value is left
    empty. The epoch column counts from 1, like the checkpoint files.
    """

    def __init__(self, path, layers: str):
        super().__init__()
        self.path = Path(path)
        self.layers = layers
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "layers": self.layers, "seconds": round(time.monotonic() - self._started, 1)}
        row.update({k: float(v) for k, v in logs.items() if k in CSV_COLUMNS})
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, restval="", extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


def _callbacks(mrcnn_model, layers: str, custom_callbacks) -> list:
    """The NaN guard, checkpoints, learning rate, CSV and TensorBoard logs of one training stage."""
    log_dir = Path(mrcnn_model.log_dir)
    chief = is_chief(mrcnn_model.strategy)
    if chief:
        log_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        StopOnNonFiniteLoss(),
        LegacyCheckpoint(mrcnn_model.keras_model, mrcnn_model.checkpoint_for_epoch, write=chief),
        LearningRateLogger(),
    ]
    if chief:
        callbacks += [EpochCsvLog(log_dir / "training_log.csv", layers),
                      keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")]
    return callbacks + list(custom_callbacks or [])


# ---------------------------------------------------------------- one stage
def validation_steps(val_dataset, config) -> int:
    """min(VALIDATION_STEPS, full batches in the validation set), so Keras never runs out of data."""
    return min(int(config.VALIDATION_STEPS), len(val_dataset.image_ids) // int(config.BATCH_SIZE))


def run_training(mrcnn_model, train_dataset, val_dataset, learning_rate, epochs, layers,
                 augmentation=None, custom_callbacks=None, verbose="auto", **pipeline_options):
    """One training stage of ``mrcnn_model`` (a training-mode ``MaskRCNN``); see ``MaskRCNN.train``.

    ``mrcnn_model.epoch`` ends at the last epoch whose checkpoint was written, also when
    the stage is interrupted (KeyboardInterrupt passes through) or stopped by a NaN.
    Raises:
      FloatingPointError: a loss became NaN or infinite (one-line message).
    """
    from mrcnn.data import build_training_dataset, build_validation_dataset

    config = mrcnn_model.config
    if epochs <= mrcnn_model.epoch:
        log.info("already at epoch %d >= %d: nothing to train", mrcnn_model.epoch, epochs)
        return None
    augment = True if augmentation is None else augmentation
    train_data = build_training_dataset(train_dataset, config, augment=augment, **pipeline_options)
    val_steps = validation_steps(val_dataset, config) if val_dataset is not None else 0
    val_data = build_validation_dataset(val_dataset, config).take(val_steps) if val_steps else None
    if val_dataset is not None and not val_steps:
        log.warning("validation set has fewer images than the batch size %d: no validation", config.BATCH_SIZE)

    trainable = set_trainable(mrcnn_model.keras_model, layer_regex(layers))
    log.info("Starting at epoch %d, LR=%g, training %d layers (%s)", mrcnn_model.epoch, learning_rate,
             len(trainable), layers)
    with mrcnn_model.strategy.scope():
        trainer = TrainingModel(mrcnn_model.keras_model, config)
        trainer.compile(optimizer=make_optimizer(config, learning_rate), jit_compile=False)
    callbacks = _callbacks(mrcnn_model, layers, custom_callbacks)
    guard, checkpoint = callbacks[0], callbacks[1]
    try:
        history = trainer.fit(
            train_data,
            initial_epoch=mrcnn_model.epoch,
            epochs=epochs,
            steps_per_epoch=config.STEPS_PER_EPOCH,
            validation_data=val_data,
            validation_steps=val_steps or None,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=verbose,
        )
    finally:
        if checkpoint.last_epoch is not None:
            mrcnn_model.epoch = max(mrcnn_model.epoch, checkpoint.last_epoch)
    if guard.bad_batch is not None:
        epoch, step, logs = guard.bad_batch
        shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items())
        raise FloatingPointError(
            f"training stopped: non-finite loss at epoch {epoch}, step {step} ({shown}); "
            f"the last good checkpoint is epoch {mrcnn_model.epoch} in {mrcnn_model.log_dir}")
    return history
