"""Training: layer groups, the loss-computing ``train_step``, and per-epoch callbacks.

Keras 3 does not allow ``add_loss`` on symbolic tensors, so the training graph
(``mrcnn.training_graph``) only returns tensors and ``TrainingModel.train_step``
computes matterport's five losses plus L2 weight decay from them.
"""
from __future__ import annotations

import logging
import math
import re
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
    with weight decay) and show in the progress bar and logs.
    """

    def __init__(self, graph: keras.Model, config, **kwargs):
        super().__init__(**kwargs)
        self.graph = graph
        self.loss_weights = dict(config.LOSS_WEIGHTS)
        self.weight_decay = float(config.WEIGHT_DECAY)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", *losses.LOSS_NAMES)}

    def call(self, inputs, training=False):
        return self.graph(inputs, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_losses(self, inputs, outputs) -> dict:
        """matterport's five losses (scalars) from the graph's inputs and outputs."""
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

    def _total_loss(self, parts: dict):
        total = tf.add_n([parts[name] * self.loss_weights.get(name, 1.0) for name in losses.LOSS_NAMES])
        return total + losses.weight_decay_loss(self.graph.trainable_weights, self.weight_decay)

    def _track(self, total, parts) -> dict:
        self.trackers["loss"].update_state(total)
        for name, value in parts.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            outputs = self.graph(inputs, training=True)
            parts = self.compute_losses(inputs, outputs)
            total = self._total_loss(parts)
            # Gradients are summed over replicas: scale so their sum is the mean.
            replica_loss = total / tf.distribute.get_strategy().num_replicas_in_sync
            replica_loss = self.optimizer.scale_loss(replica_loss)
        variables = self.graph.trainable_variables
        gradients = tape.gradient(replica_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._track(total, parts)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        outputs = self.graph(inputs, training=False)
        parts = self.compute_losses(inputs, outputs)
        return self._track(self._total_loss(parts), parts)


def make_optimizer(config, learning_rate: float) -> keras.optimizers.Optimizer:
    """SGD with momentum and matterport's (Keras-2) global-norm gradient clipping."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM,
                                global_clipnorm=config.GRADIENT_CLIP_NORM)


class LegacyCheckpoint(keras.callbacks.Callback):
    """Saves matterport-layout weights after every epoch (atomically), unless the epoch's loss is not finite."""

    def __init__(self, keras_model: keras.Model, path_for_epoch):
        super().__init__()
        self.keras_model = keras_model
        self.path_for_epoch = path_for_epoch
        self.saved: list[Path] = []

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            return
        path = Path(self.path_for_epoch(epoch + 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        weights.save_weights(self.keras_model, path)
        self.saved.append(path)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, saying so; the last checkpoint stays the last good one."""

    def __init__(self):
        super().__init__()
        self.bad_batch: tuple[int, int, dict] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_batch = (self._epoch + 1, batch, {k: float(v) for k, v in logs.items()})
            log.error("non-finite loss at epoch %d, step %d: %s", self._epoch + 1, batch, logs)
            self.model.stop_training = True


def _callbacks(mrcnn_model, custom_callbacks) -> list:
    """Checkpoints, CSV and TensorBoard logs, and the NaN guard of one training stage."""
    log_dir = Path(mrcnn_model.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return [
        StopOnNonFiniteLoss(),
        LegacyCheckpoint(mrcnn_model.keras_model, mrcnn_model.checkpoint_for_epoch),
        keras.callbacks.CSVLogger(str(log_dir / "training_log.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch"),
        LearningRateLogger(),
        *(custom_callbacks or []),
    ]


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate to the epoch logs (so CSV and TensorBoard record it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def run_training(mrcnn_model, train_dataset, val_dataset, learning_rate, epochs, layers,
                 augmentation=None, custom_callbacks=None, verbose="auto", **pipeline_options):
    """One training stage of ``mrcnn_model`` (a training-mode ``MaskRCNN``); see ``MaskRCNN.train``."""
    from mrcnn.data import build_training_dataset, build_validation_dataset

    config = mrcnn_model.config
    if epochs <= mrcnn_model.epoch:
        log.info("already at epoch %d >= %d: nothing to train", mrcnn_model.epoch, epochs)
        return None
    augment = True if augmentation is None else augmentation
    train_data = build_training_dataset(train_dataset, config, augment=augment, **pipeline_options)
    val_data = build_validation_dataset(val_dataset, config) if val_dataset is not None else None

    trainable = set_trainable(mrcnn_model.keras_model, layer_regex(layers))
    log.info("Starting at epoch %d, LR=%g, training %d layers (%s)", mrcnn_model.epoch, learning_rate,
             len(trainable), layers)
    with mrcnn_model.strategy.scope():
        trainer = TrainingModel(mrcnn_model.keras_model, config)
        trainer.compile(optimizer=make_optimizer(config, learning_rate), jit_compile=False)
    callbacks = _callbacks(mrcnn_model, custom_callbacks)
    history = trainer.fit(
        train_data,
        initial_epoch=mrcnn_model.epoch,
        epochs=epochs,
        steps_per_epoch=config.STEPS_PER_EPOCH,
        validation_data=val_data,
        validation_steps=config.VALIDATION_STEPS if val_data is not None else None,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose,
    )
    guard = callbacks[0]
    if guard.bad_batch is not None:
        epoch, step, logs = guard.bad_batch
        raise FloatingPointError(
            f"training stopped: non-finite loss at epoch {epoch}, step {step} ({logs}); "
            f"the last good checkpoint is kept in {mrcnn_model.log_dir}")
    mrcnn_model.epoch = max(mrcnn_model.epoch, epochs)
    return history
