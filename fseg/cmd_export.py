"""``fseg export``: a trained model as a TensorFlow SavedModel that serves without fseg (TF Serving, any TF runtime).

The command checks every input first (output folder, weights, config, class count, resize mode), then
builds the model through ``fseg.runtime`` and hands it to ``mrcnn.export.saved_model.write_export``,
which writes the folder under a temporary name and renames it into place. ``--inspect`` describes an
export without loading it. Heavy imports happen inside the command so ``fseg --help`` stays fast.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from fseg.cli_util import (EXIT_FAILED, EXIT_USAGE, CommandError, config_option, echo_err, exit_on_signals,
                           os_error_message, weights_option)


@click.command("export")
@weights_option(default_chain=False)
@config_option
@click.option("--out", "-o", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Folder to create for the SavedModel (must not exist, unless --force).")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None, metavar="F",
              help="Detections scoring below F are dropped in the graph. Default: the config's "
                   "DETECTION_MIN_CONFIDENCE.")
@click.option("--max-detections", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N detections per image (the padded size of serving_default's outputs), at most the "
                   "config's POST_NMS_ROIS_INFERENCE. Default: the config's DETECTION_MAX_INSTANCES.")
@click.option("--force", is_flag=True, help="Replace an existing --out folder (only once the new export is complete).")
@click.option("--inspect", "inspect_dir", default=None, type=click.Path(path_type=Path), metavar="DIR",
              help="Describe the export in DIR (origin, classes, signatures with their inputs and outputs); "
                   "writes nothing.")
def export(weights, config_path, out_dir, min_confidence, max_detections, force, inspect_dir):
    """Export a model as a SavedModel that needs only TensorFlow to run.

    The graph does all of `fseg predict`'s detection: decoding JPEG/PNG bytes,
    resizing and padding by the config's IMAGE_RESIZE_MODE, mean subtraction,
    anchors, the network, and mapping boxes and masks back to the image. Two
    signatures:

    \b
      serving_default  images: [B] string (encoded JPEG/PNG, any sizes) ->
                       num_detections [B], detection_boxes [B,N,4] (y1,x1,y2,x2
                       normalised to the image), detection_classes [B,N],
                       detection_scores [B,N], detection_masks [B,N,28,28]
                       (box-relative probabilities), image_shape [B,2]
      detect_image     image: [1,H,W,3] uint8 RGB -> the same, unpadded, plus
                       detection_masks_image [1,N,H,W] (0/1 masks in the image)

    Class names are in DIR/assets/class_names.txt (line k = class id k). Serve
    it with TF Serving or load it with tf.saved_model.load (docs/usage_export.md);
    run it with `fseg predict --model DIR`.

    \b
    Examples:
      fseg export --weights last --out exports/fashion/1
      fseg export --weights mask_rcnn_fashion.h5 --config configs/deepfashion2.toml --out exports/fashion/1
      fseg export --inspect exports/fashion/1
    """
    from mrcnn.export.saved_model import ExportError

    if inspect_dir is not None:
        if out_dir is not None or weights is not None:
            raise CommandError("--inspect DIR describes an export; it takes no --out or --weights", EXIT_USAGE)
        from fseg.cli_util import import_tensorflow_quietly
        from mrcnn.export.saved_model import describe_export

        import_tensorflow_quietly()  # only its protobuf classes are used: no start-up notices on stderr
        try:
            click.echo(describe_export(inspect_dir))
        except ExportError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        return
    if out_dir is None or weights is None:
        raise CommandError("give --weights FILE|last and --out DIR (or --inspect DIR)", EXIT_USAGE)
    export_model(weights, config_path, out_dir, min_confidence, max_detections, force)


def export_model(weights, config_path, out_dir: Path, min_confidence, max_detections, force: bool) -> None:
    """Check all inputs, then build the model and write the export; one-line errors."""
    from fseg import runtime
    from mrcnn.export.saved_model import ExportError, check_export_target, check_exportable, export_info

    try:
        check_export_target(out_dir, force)
    except ExportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    runtime.check_out_dir(out_dir.absolute().parent, "--out's folder")
    overrides = {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1}
    if min_confidence is not None:
        overrides["DETECTION_MIN_CONFIDENCE"] = float(min_confidence)
    if max_detections is not None:
        overrides["DETECTION_MAX_INSTANCES"] = int(max_detections)
    config, config_source, choice = runtime.load_inference_config(config_path, weights, overrides, use_defaults=False)
    if max_detections is not None and max_detections > config.POST_NMS_ROIS_INFERENCE:
        raise CommandError(f"--max-detections {max_detections} is more than the {config.POST_NMS_ROIS_INFERENCE} "
                           f"proposals detections come from (POST_NMS_ROIS_INFERENCE of {config_source}); "
                           f"serving_default's outputs would be padded to it for nothing", EXIT_USAGE)
    try:
        check_exportable(config)
    except ExportError as exc:
        raise CommandError(f"{config_source}: {exc}", EXIT_USAGE) from None
    check_class_count(choice.path, config, config_source)
    refuse_replacing_inputs(out_dir, [choice.path, runtime.choose_config_file(config_path, choice)[0]])
    echo_err(f"Config:  {config_source}")
    echo_err(f"Weights: {choice.path} ({choice.reason})")
    started = time.monotonic()
    model, _ = runtime.load_model(config, choice.path)
    info = export_info(config, str(choice.path), {"config_file": config_source})
    from mrcnn.export.saved_model import write_export

    try:
        with exit_on_signals(f"nothing was written to {out_dir}"):
            write_export(model, out_dir, info, force=force)
    except ExportError as exc:  # the folder appeared while the model was built
        raise CommandError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"{os_error_message(exc)}; nothing was written to {out_dir}", EXIT_FAILED) from None
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    echo_err(f"Exported {out_dir} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s; "
             f"describe it with `fseg export --inspect {out_dir}`, run it with `fseg predict --model {out_dir}`")


def refuse_replacing_inputs(out_dir: Path, inputs: list[Path]) -> None:
    """Exit 2 when an input (the weights, the config) lies inside the folder --force would replace."""
    target = out_dir.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(target):
            raise CommandError(f"--out {out_dir} holds the input {path}, which replacing it would delete; "
                               f"choose another --out", EXIT_USAGE)


def check_class_count(weights_path: Path, config, config_source: str) -> None:
    """Exit 2 when the weights file was trained for another NUM_CLASSES than the config's (read from the file's
    class head, before any model is built)."""
    from fseg.cli_util import user_errors
    from mrcnn.io.h5_legacy import WeightsError
    from mrcnn.io.weights_inspect import inspect_weights

    with user_errors(WeightsError, exit_code=EXIT_FAILED):
        found = inspect_weights(weights_path).num_classes
    if found is not None and found != config.NUM_CLASSES:
        raise CommandError(f"{weights_path} has {found} classes (background included) but the config "
                           f"{config_source} has NUM_CLASSES = {config.NUM_CLASSES}; give the config the "
                           f"weights were trained with (--config)", EXIT_USAGE)
