"""One training stage: ``MaskRCNN.train`` -> data pipelines, trainable layers, ``fit`` with callbacks."""
from __future__ import annotations

import gc
import logging

import tensorflow as tf

from mrcnn.data.dataset import DatasetError
from mrcnn.data.image_loader import SkippedImages
from mrcnn.data.pipeline import build_training_dataset, build_validation_dataset
from mrcnn.modeling.roi_heads import instance_fields
from mrcnn.train.callbacks import stage_callbacks
from mrcnn.train.layer_groups import layer_regex, no_layer_message, set_trainable
from mrcnn.train.step import spans_several_workers

log = logging.getLogger(__name__)


def validation_steps(val_dataset, config) -> int:
    """min(VALIDATION_STEPS, full batches in the validation set), so Keras never runs out of data."""
    return min(int(config.VALIDATION_STEPS), len(val_dataset.image_ids) // int(config.BATCH_SIZE))


def training_input(strategy, config, build):
    """The training batches for ``strategy``: on several replicas each input pipeline reads its own images.

    ``build(shard, batch_size)`` makes one pipeline (``build_training_dataset``). With one replica
    that is the whole input (``build(None, None)``: all images, batches of config.BATCH_SIZE).
    With several (MirroredStrategy, MultiWorkerMirroredStrategy) ``strategy.distribute_datasets_from_function``
    builds one pipeline per worker, ``shard = (workers, this worker)``, batched per replica
    (IMAGES_PER_GPU), so a worker reads and decodes 1/workers of the images, split before decoding
    (tf.data's automatic sharding of a ready dataset splits after the decoding, on every worker).
    """
    if strategy.num_replicas_in_sync == 1 and not spans_several_workers(strategy):
        return build(None, None)

    def pipeline_for(context):
        return build((context.num_input_pipelines, context.input_pipeline_id),
                     context.get_per_replica_batch_size(int(config.BATCH_SIZE)))

    return strategy.distribute_datasets_from_function(pipeline_for)


def run_training(mrcnn_model, train_dataset, val_dataset, learning_rate, epochs, layers,
                 augmentation=None, custom_callbacks=None, no_augmentation_sources=None, verbose="auto",
                 **pipeline_options):
    """One training stage of ``mrcnn_model`` (a training-mode ``MaskRCNN``); see ``MaskRCNN.train``.

    ``mrcnn_model.epoch`` ends at the last epoch whose checkpoint was written, also when
    the stage is interrupted (KeyboardInterrupt passes through) or stopped by a NaN.
    Raises:
      FloatingPointError: a loss became NaN or infinite (one-line message).
      DatasetError: no image of an input pipeline could be read (one line).
      ValueError: ``layers`` names no layer with weights.
    """
    config = mrcnn_model.config
    if epochs <= mrcnn_model.epoch:
        log.info("already at epoch %d >= %d: nothing to train", mrcnn_model.epoch, epochs)
        return None
    fields = instance_fields(mrcnn_model.roi_heads)
    skipped = SkippedImages()  # unreadable images: skipped, counted and named at the end of each epoch
    train_data = training_input(
        mrcnn_model.strategy, config,
        lambda shard, batch_size: build_training_dataset(
            train_dataset, config, augment=augmentation, instance_fields=fields,
            no_augmentation_sources=no_augmentation_sources, skipped=skipped, shard=shard, batch_size=batch_size,
            **pipeline_options))
    val_steps = validation_steps(val_dataset, config) if val_dataset is not None else 0
    val_data = build_validation_dataset(val_dataset, config, instance_fields=fields,
                                                 skipped=skipped).take(val_steps) if val_steps else None
    if val_dataset is not None and not val_steps:
        log.warning("validation set has fewer images than the batch size %d: no validation", config.BATCH_SIZE)

    trainable = set_trainable(mrcnn_model.keras_model, layer_regex(layers, mrcnn_model.roi_heads))
    if not trainable:
        raise ValueError(no_layer_message(layers))
    log.info("Starting at epoch %d, LR=%g, training %d layers (%s)", mrcnn_model.epoch, learning_rate,
             len(trainable), layers)
    trainer = mrcnn_model.compile(learning_rate)
    callbacks, guard, recorder = stage_callbacks(mrcnn_model, layers, [t.name for t in trainer.loss_terms],
                                                 custom_callbacks, skipped)
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
    except tf.errors.OpError:
        if not skipped.nothing_readable:  # else the input pipeline's own error (image_loader): raised below
            raise
    finally:
        if recorder.last_epoch is not None:
            mrcnn_model.epoch = max(mrcnn_model.epoch, recorder.last_epoch)
    if skipped.nothing_readable:
        # Raised outside the handler, so that no traceback keeps fit's frames, and with them the input
        # pipeline's iterator, alive: freed now, its threads stop; left to interpreter exit, they can hang it.
        del train_data, val_data, trainer
        gc.collect()
        raise DatasetError(skipped.nothing_readable)
    if guard.bad_batch is not None:
        epoch, step, logs = guard.bad_batch
        shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items())
        raise FloatingPointError(
            f"training stopped: non-finite loss at epoch {epoch}, step {step} ({shown}); "
            f"the last good checkpoint is epoch {mrcnn_model.epoch} in {mrcnn_model.log_dir}")
    return history
