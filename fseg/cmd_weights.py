"""``fseg weights``: look inside matterport / Keras 2 ``.h5`` weight files."""
from __future__ import annotations

import click

from fseg.cli_util import EXIT_FAILED, user_errors


@click.group("weights")
def weights() -> None:
    """Work with Mask R-CNN weight files (matterport's legacy Keras 2 .h5 layout).

    \b
    Example:
      fseg weights inspect weights/mask_rcnn_coco.h5
    """


@weights.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (machine-readable) instead of text.")
@click.option("--layers", "with_layers", is_flag=True,
              help="Also list every layer with weights and the shape of each weight array.")
def inspect(file: str, as_json: bool, with_layers: bool) -> None:
    """Describe a weights FILE without loading a model.

    Prints the file's layout, the Keras version it records (fseg's own files
    record 2.1.6, the version of the layout they are written in, so that
    Keras 2 loaders read them unconverted), whether it is a
    training- or inference-mode save, the backbone (resnet50 or resnet101, from
    the number of res4 blocks), the number of classes including background (from
    the mrcnn_class_logits layer), the parameter count and the number of layers.
    Use it to pick NUM_CLASSES / BACKBONE for a file, or to check a download:
    a truncated or non-HDF5 file is reported as an error (exit code 1).

    \b
    Examples:
      fseg weights inspect mask_rcnn_coco.h5
      fseg weights inspect logs/deepfashion220240101T1200/mask_rcnn_deepfashion2_0010.h5 --layers
      fseg weights inspect mask_rcnn_coco.h5 --json | jq .num_classes
    """
    import json

    from mrcnn.io.h5_legacy import WeightsError
    from mrcnn.io.weights_inspect import inspect_weights

    with user_errors(WeightsError, exit_code=EXIT_FAILED):
        info = inspect_weights(file)
    if as_json:
        click.echo(json.dumps(info.to_dict(with_layers=with_layers), indent=2))
        return
    click.echo(info.text())
    if with_layers:
        click.echo("")
        for name, arrays in info.layers:
            shapes = ", ".join(f"{w} {tuple(s)}" for w, s in arrays)
            click.echo(f"{name}: {shapes}")
