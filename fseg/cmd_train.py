"""``fseg train``: fine-tune Mask R-CNN on a COCO file, on CPU, one GPU, several, or several machines."""
from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

import click

from fseg.cli_util import (EXIT_FAILED, EXIT_USAGE, CommandError, echo_err, exit_on_signals, os_error_message,
                           user_errors)

HELP = """Train Mask R-CNN on a COCO annotations file (e.g. from `fseg convert`).

\b
Examples:
  # fine-tune matterport's COCO weights on DeepFashion2 (heads, then 4+, then all: the
  # config's TRAIN_SCHEDULE), checkpoints under logs/deepfashion2<timestamp>/
  fseg train --annotations train.json --images DeepFashion2/train/image \\
             --val-annotations val.json --val-images DeepFashion2/validation/image \\
             --weights mask_rcnn_coco.h5
  # resume the newest run of the config where it stopped
  fseg train --annotations train.json --images DeepFashion2/train/image --weights last
  # one stage only: the heads, up to epoch 5, 100 steps per epoch, on 2 GPUs
  fseg train ... --layers heads --epochs 5 --steps-per-epoch 100 --gpus 2

Weights whose class count differs from the config's NUM_CLASSES (such as the
81-class COCO file) are loaded without the class-specific head layers.
With TF_CONFIG set, training runs across machines (MultiWorkerMirroredStrategy;
see docs/usage_train.md).

After every epoch a checkpoint logs/<name><timestamp>/mask_rcnn_<name>_<NNNN>.h5
is written (atomically), a row is added to training_log.csv there, and the
losses go to TensorBoard (tensorboard --logdir logs). Ctrl-C stops the run
(exit code 130) keeping every finished epoch; --weights last resumes it.
A NaN or infinite loss stops the run (exit code 1) and keeps the last good
checkpoint.
"""


@click.command(help=HELP, short_help="Train Mask R-CNN on a COCO annotations file.")
@click.option("--annotations", "annotations", required=True, type=click.Path(dir_okay=False),
              help="COCO instances JSON of the training images.")
@click.option("--images", "images", required=True, type=click.Path(file_okay=False),
              help="Folder the training file names are relative to.")
@click.option("--val-annotations", type=click.Path(dir_okay=False), help="COCO JSON of the validation images.")
@click.option("--val-images", type=click.Path(file_okay=False), help="Folder of the validation images.")
@click.option("--weights", "weights", required=True,
              help="Starting weights: a matterport .h5 file, 'last' (resume the newest checkpoint of this "
                   "config under --logs) or 'none' (random initialisation).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Model config TOML [default: configs/deepfashion2.toml].")
@click.option("--layers", help="Train only this layer group (heads, 3+, 4+, 5+, all, or a regex) "
                               "instead of the config's TRAIN_SCHEDULE.")
@click.option("--epochs", type=click.IntRange(min=1),
              help="With --layers: the epoch to stop at [default: 1]. Alone: stop the schedule there.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Training steps per epoch (STEPS_PER_EPOCH).")
@click.option("--validation-steps", type=click.IntRange(min=1), help="Validation steps per epoch.")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate (LEARNING_RATE); schedule stages scale it by their lr_scale.")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs to train on (tf.distribute.MirroredStrategy when > 1).")
@click.option("--mixed-precision", is_flag=True,
              help="Compute in float16 with float32 weights and dynamic loss scaling (faster on "
                   "recent GPUs; works but is slow on CPUs).")
@click.option("--precision", type=click.Choice(["float32", "bf16"]), default="float32", show_default=True,
              help="bf16: compute in bfloat16 with float32 weights (no loss scaling needed), for CPUs with "
                   "AVX512_BF16 or AMX and GPUs of compute capability 8.0+, where steps are faster; refused "
                   "where it would be emulated. Output layers, boxes and losses stay float32.")
@click.option("--logs", "logs_dir", default="logs", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the run folders (checkpoints, CSV and TensorBoard logs).")
@click.option("--seed", type=int, help="Seed of the data order and augmentation.")
@click.option("--no-augment", is_flag=True, help="Switch off flips, scale jitter and colour changes.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="Fit the schedule into MINUTES: each stage gets its share of the clock (epochs_i / "
                   "epochs_last), and training stops when the time is used (that epoch's checkpoint is written).")
def train(annotations, images, val_annotations, val_images, weights, config_path, layers, epochs,
          steps_per_epoch, validation_steps, learning_rate, gpus, mixed_precision, precision, logs_dir, seed,
          no_augment, time_limit):
    if mixed_precision and precision != "float32":
        raise CommandError("--mixed-precision (float16) and --precision bf16 exclude each other", EXIT_USAGE)
    if (val_annotations is None) != (val_images is None):
        raise CommandError("--val-annotations and --val-images go together", EXIT_USAGE)
    for path in (annotations, val_annotations):
        if path is not None and not Path(path).is_file():
            raise CommandError(f"annotations file not found: {path}", EXIT_USAGE)
    for folder in (images, val_images):
        if folder is not None and not Path(folder).is_dir():
            raise CommandError(f"images folder not found: {folder}", EXIT_USAGE)
    if learning_rate is not None and not math.isfinite(learning_rate):
        raise CommandError(f"--lr must be a finite number, got {learning_rate}", EXIT_USAGE)
    from fseg.runtime import check_out_dir

    check_out_dir(Path(logs_dir), "--logs")
    # Ctrl-C and SIGTERM stop the run alike (exit 130 / 143); _run_stages says what was kept.
    with exit_on_signals("interrupted before training started; nothing was written"):
        _run(annotations, images, val_annotations, val_images, weights, config_path, layers, epochs,
             steps_per_epoch, validation_steps, learning_rate, gpus,
             "fp16" if mixed_precision else precision, logs_dir, seed, no_augment, time_limit)


def _run(annotations, images, val_annotations, val_images, weights, config_path, layers, epochs,
         steps_per_epoch, validation_steps, learning_rate, gpus, precision, logs_dir, seed, no_augment,
         time_limit):
    from fseg import runtime

    config, _ = runtime.load_config(config_path)
    choice = runtime.resolve_weights_or_exit(weights, runtime.run_name(config), logs_dir=logs_dir, allow_none=True,
                                             use_defaults=False)
    # Resuming a run (--weights last or a run's checkpoint) keeps the config it trained with.
    config, config_source = runtime.load_config(config_path, weights=choice)

    from fseg.cli_util import import_tensorflow_quietly

    import_tensorflow_quietly()
    from mrcnn.data.dataset import DatasetError
    from mrcnn.train.schedule import plan_stages
    from mrcnn.train.threads import set_threads_per_op

    # Before anything starts TensorFlow's runtime (the strategy below lists devices).
    if not set_threads_per_op(config.TRAIN_THREADS_PER_OP):
        echo_err(f"warning: TRAIN_THREADS_PER_OP {config.TRAIN_THREADS_PER_OP} not applied: TensorFlow already "
                 "runs in this process with its own thread pools")

    try:
        stages = plan_stages(config, layers, epochs)
    except Exception as exc:  # re.error from a bad --layers regex
        raise CommandError(f"--layers {layers!r} is neither a layer group nor a regex ({exc})", EXIT_USAGE) from None
    strategy = _strategy(gpus)
    overrides = {"GPU_COUNT": strategy.num_replicas_in_sync}
    if steps_per_epoch:
        overrides["STEPS_PER_EPOCH"] = steps_per_epoch
    if validation_steps:
        overrides["VALIDATION_STEPS"] = validation_steps
    if learning_rate:
        overrides["LEARNING_RATE"] = learning_rate
    config, _ = runtime.load_config(config_path, weights=choice, overrides=overrides)
    _check_training_precision(runtime, precision)
    shown_precision = {"float32": "", "fp16": ", mixed float16", "bf16": ", mixed bfloat16"}[precision]
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    shown_threads = f", {threads} CPU thread(s) per op" if threads else ""
    echo_err(f"config: {config_source}: NAME {config.NAME}, {config.NUM_CLASSES} classes, {config.BACKBONE}, "
             f"batch {config.BATCH_SIZE} on {strategy.num_replicas_in_sync} replica(s){shown_precision}{shown_threads}")

    with user_errors(DatasetError):
        train_set = _load_dataset(annotations, images, config, "training")
        val_set = _load_dataset(val_annotations, val_images, config, "validation") if val_annotations else None

    model = _build_model(runtime, config, choice, logs_dir, strategy, precision)
    _check_stage_layers(model, stages)
    if time_limit is None and all(stage["epochs"] <= model.epoch for stage in stages):
        echo_err(f"nothing to train: already at epoch {model.epoch}, the last stage ends at epoch "
                 f"{stages[-1]['epochs']} (raise --epochs)")
        return
    resumed = model.log_dir_claimed  # continuing the checkpoint's own run, in its folder
    model.claim_log_dir()  # before it is shown: two runs started in the same second get different folders
    echo_err(f"run folder: {model.log_dir} ({'continuing the run' if resumed else 'a new run'}, "
             f"starting after epoch {model.epoch})")
    from mrcnn.data.augmentation import Augmentation

    # The built-in flips, scale jitter and colour changes, asked for explicitly (the library's default is none).
    augmentation = None if no_augment else Augmentation()
    resume = "--weights last" + (f" --config {config_path}" if config_path else "") + (
        f" --logs {logs_dir}" if str(logs_dir) != "logs" else "")
    _run_stages(model, train_set, val_set, stages, time_limit, augmentation=augmentation, seed=seed,
                max_epoch=epochs, resume=resume)


def _check_training_precision(runtime, precision: str) -> None:
    """bf16 where this machine would emulate it: exit 2. fp16 (--mixed-precision) is allowed anywhere (tests
    run it on CPUs), with a warning where it is emulated."""
    if precision == "bf16":
        runtime.check_precision_or_exit(precision)
    elif precision == "fp16":
        from mrcnn.modeling.precision import PrecisionError, check_precision

        try:
            check_precision(precision)
        except PrecisionError:
            echo_err("warning: --mixed-precision computes in float16, which this machine emulates (no GPU of "
                     "compute capability 7.0+): training will be slower than without it")


def _build_model(runtime, config, choice, logs_dir, strategy, precision):
    """The training model, its layers computing in ``precision`` (Keras' dtype policy while building; float32
    weights), with the starting weights (class-specific heads left out on a class-count mismatch)."""
    from mrcnn.io.h5_legacy import WeightsError
    from mrcnn.io.weights_inspect import inspect_weights
    from mrcnn.modeling.precision import building_with

    if choice.path is None:
        echo_err("weights: random initialisation")
    else:
        with user_errors(WeightsError, exit_code=EXIT_FAILED):
            file_classes = inspect_weights(choice.path).num_classes
    with building_with(precision):
        model, _ = runtime.load_model(config, None, "training", model_dir=logs_dir, strategy=strategy)
    if choice.path is None:
        return model
    exclude = []
    if file_classes is not None and file_classes != config.NUM_CLASSES:
        exclude = model.class_specific_layers()
        echo_err(f"weights: {choice.path} has {file_classes} classes, the config {config.NUM_CLASSES}: "
                 f"loading all but the class-specific heads ({', '.join(exclude)})")
    with user_errors(WeightsError, exit_code=EXIT_FAILED):
        report = model.load_weights(str(choice.path), by_name=True, exclude=exclude)
    echo_err(f"weights: {choice.path} ({len(report.loaded)} layers loaded)")
    return model


def _check_stage_layers(model, stages) -> None:
    """Exit 2 when a stage's layers (--layers, or a TRAIN_SCHEDULE entry) select no layer of the model."""
    from mrcnn.train.layer_groups import layer_regex, matching_layers, no_layer_message

    for layers in dict.fromkeys(stage["layers"] for stage in stages):
        if not matching_layers(model.keras_model, layer_regex(layers, model.roi_heads)):
            raise CommandError(no_layer_message(layers), EXIT_USAGE)


def _run_stages(model, train_set, val_set, stages, time_limit, max_epoch=None, resume="--weights last",
                **train_options):
    from mrcnn.data.dataset import DatasetError
    from mrcnn.train.schedule import run_schedule

    def announce(stage, learning_rate, epoch):
        until = "its share of the time limit" if time_limit else f"epoch {stage['epochs']}"
        echo_err(f"stage: layers {stage['layers']}, from epoch {epoch} until {until}, "
                 f"optimizer {model.config.OPTIMIZER}, learning rate {learning_rate:g}")

    try:
        summary = run_schedule(model, train_set, val_set, stages, time_limit=time_limit and time_limit * 60,
                               max_epoch=max_epoch, announce=announce, verbose=1 if sys.stdout.isatty() else 2,
                               **train_options)
    except KeyboardInterrupt as exc:
        kept = f"checkpoints up to epoch {model.epoch} kept" if model.epoch else "no epoch was completed"
        signum = getattr(exc, "signum", signal.SIGINT)
        raise CommandError(f"interrupted during epoch {model.epoch + 1}; {kept} in {model.log_dir}; "
                           f"resume with {resume}", 128 + signum) from None
    except FloatingPointError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    except DatasetError as exc:  # no training image could be read
        raise CommandError(f"{exc}; nothing to train on", EXIT_FAILED) from None
    except OSError as exc:  # a checkpoint or log that could not be written (full or read-only disk)
        from mrcnn.train.callbacks import CheckpointWriteError

        kept = f"checkpoints up to epoch {model.epoch} kept" if model.epoch else "no epoch was completed"
        message = str(exc) if isinstance(exc, CheckpointWriteError) else os_error_message(exc)
        raise CommandError(f"{message}; {kept} in {model.log_dir}", EXIT_FAILED) from None
    if summary.stopped_by_budget:
        echo_err(f"time limit reached after {summary.seconds / 60:.1f} minutes")
    echo_err(f"done: epoch {model.epoch}; checkpoints and training_log.csv in {model.log_dir}")


def _strategy(gpus: int):
    """MultiWorkerMirroredStrategy with TF_CONFIG, MirroredStrategy for several GPUs, else the default."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus > 1:
        found = tf.config.list_logical_devices("GPU")
        if len(found) < gpus:
            raise CommandError(f"--gpus {gpus} asked, but TensorFlow sees {len(found)} GPU(s)", EXIT_USAGE)
        return tf.distribute.MirroredStrategy([d.name for d in found[:gpus]])
    return tf.distribute.get_strategy()


def _load_dataset(annotations, images, config, what):
    from fseg.runtime import annotation_fields
    from mrcnn.data.coco import CocoDataset
    from mrcnn.data.dataset import DatasetError
    from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields

    dataset = CocoDataset()
    fields = annotation_fields(config)
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES, class_aliases=config.CLASS_ALIASES,
                      annotation_fields=fields)
    dataset.prepare()
    echo_err(f"{what}: {dataset.num_images} images ({dataset.num_missing_images} missing on disk, "
             f"{dataset.num_empty_images} without instances)")
    for line in dataset.problems[:5]:
        echo_err(f"  {line}")
    if len(dataset.problems) > 5:
        echo_err(f"  ... and {len(dataset.problems) - 5} more")
    if what == "training" and dataset.num_empty_images == dataset.num_images:
        raise CommandError(f"{annotations}: no image has an annotated instance: nothing to train on", EXIT_USAGE)
    for field in fields:  # e.g. a file converted with --no-keypoints for a config with the landmark head
        if what == "training" and not any(ann.get(field) is not None for info in dataset.image_info
                                          for ann in info["annotations"]):
            raise CommandError(f"{annotations}: no annotation has '{field}', which the config's ROI_HEADS "
                               f"({', '.join(config.ROI_HEADS)}) train on", EXIT_USAGE)
    try:
        dataset.check_instance_fields(instance_fields(build_roi_heads(config)))
    except DatasetError as exc:
        raise CommandError(f"{annotations}: {exc}", EXIT_USAGE) from None
    if dataset.num_images < config.BATCH_SIZE:
        raise CommandError(f"{what} set has {dataset.num_images} usable images, fewer than the batch size "
                           f"{config.BATCH_SIZE}", EXIT_USAGE)
    return dataset
