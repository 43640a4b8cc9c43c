"""``fseg predict``: segment garments in photos; overlays, COCO-format predictions, cut-outs.

The command only parses options and wires library pieces together:
``fseg.runtime`` (config, weights, model, output folder), ``mrcnn.io.images`` (reading),
``MaskRCNN.detect`` (the model), ``mrcnn.io.overlay`` (overlays, cut-outs) and
``mrcnn.eval.results`` (JSON). Heavy imports happen inside the command so ``fseg --help`` stays fast.
"""
from __future__ import annotations

import glob
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable, Iterator, Sequence

import click

from fseg.cli_util import (EXIT_FAILED, EXIT_USAGE, CommandError, echo_err, exit_on_signals, os_error_message,
                           config_option, precision_option, weights_option)
from fseg.predict_output import InputImage, PredictionWriter, check_output_names, check_resume, input_key

JPEG_SUFFIXES = (".jpg", ".jpeg")


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the outputs (created if missing; files of an earlier run are overwritten).")
@weights_option(default_chain=True)
@config_option
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None, metavar="F",
              help="Keep detections scoring at least F (0..1). Default: the config's DETECTION_MIN_CONFIDENCE.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images per detect call (sets IMAGES_PER_GPU). Default: the config's IMAGES_PER_GPU.")
@click.option("--crops", is_flag=True,
              help="Also write each detected garment as a transparent PNG: crops/<stem>_<k>_<class>.png.")
@click.option("--no-overlay", is_flag=True, help="Do not write overlay images (JSON only, plus crops if asked).")
@click.option("--model", "-m", "model_dir", default=None, type=click.Path(path_type=Path), metavar="EXPORT_DIR",
              help="Run a model exported with `fseg export` (a SavedModel folder) instead of --weights/--config.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run into the same --out: images it finished are not done again. "
                   "Give the same inputs (however spelled); other inputs are refused.")
@precision_option
def predict(inputs, out_dir, weights, config_path, min_confidence, batch_size, crops, no_overlay, resume,
            model_dir, precision):
    """Find and segment garments in photos.

    INPUT is an image file, a folder (its .jpg/.jpeg/.png/.bmp/.webp files,
    sorted by name, not recursive) or a quoted glob pattern ('shots/*.jpg',
    '**' recurses). Writes into --out:

    \b
      <stem>.png / <stem>.jpg  the photo with masks, boxes, class names and scores
                               (JPEG for JPEG inputs, PNG otherwise)
      predictions.json         COCO results: one record per detection (image_id,
                               category_id, bbox [x,y,w,h], score, RLE mask) plus
                               file_name, width, height, category_name
      images.json              the images and categories those records refer to
                               (for pycocotools: COCO('images.json').loadRes(...))
      crops/                   with --crops: one RGBA cut-out per garment

    Results are written as each image finishes (memory does not grow with the
    number of images); the two JSON files are assembled at the end. An
    interrupted run (Ctrl-C, kill, power loss) is continued with --resume. An
    unreadable image is reported and skipped; the others are processed and the
    exit code is 1. The config and weights files used are printed first.
    With --model EXPORT_DIR the exported model runs instead (same outputs; its
    thresholds were fixed at export, --min-confidence can only raise them).

    \b
    Examples:
      fseg predict test_img/ --out Result/
      fseg predict shop.jpg street.jpg --out out/ --crops --min-confidence 0.5
      fseg predict 'photos/*.jpg' --out out/ --weights last --batch-size 2
      fseg predict big_folder/ --out out/ --resume     # after an interruption
      fseg predict test_img/ --out out/ --model exports/fashion/1
      fseg predict big_folder/ --out out/ --precision bf16   # CPUs with AMX / AVX512_BF16
    """
    from fseg import runtime

    images = plan_inputs(expand_inputs(inputs))
    if model_dir is None:
        plan = plan_checkpoint(weights, config_path, batch_size, min_confidence, precision)
    else:
        if precision != "float32":
            raise CommandError("--precision applies to --weights models; an export computes in float32", EXIT_USAGE)
        plan = plan_export(model_dir, weights, config_path, batch_size, min_confidence)
    config = plan.config
    if not no_overlay:
        refuse_overwriting_inputs(images, out_dir)
    runtime.check_out_dir(out_dir)
    check_output_names(out_dir, crops)
    for line in plan.shown:
        echo_err(line)
    model = plan.load()
    runtime.prepare_out_dir(out_dir)
    writer = PredictionWriter(out_dir, config.class_names(), overlays=not no_overlay, crops=crops, resume=resume)
    try:
        check_resume(writer.done, images, out_dir)
    except CommandError:
        writer.close()
        raise
    todo = [item for item in images if input_key(item) not in writer.done]
    if resume:
        echo_err(f"Resuming: {len(images) - len(todo)} of {len(images)} images were done before")
    try:
        with exit_on_signals(f"the images finished so far are kept in {out_dir}/; continue with --resume"):
            failed = run_detection(todo, model.detect, config.BATCH_SIZE, writer.add)
            writer.finish(info={**plan.info, "min_confidence": float(config.DETECTION_MIN_CONFIDENCE)})
    except OSError as exc:  # a full or read-only disk while writing
        raise CommandError(f"{os_error_message(exc)}; the images finished so far are kept in {out_dir}/, "
                           f"continue with --resume", EXIT_FAILED) from None
    finally:
        writer.close()
    echo_err(writer.summary())
    if failed:
        raise CommandError(f"{len(failed)} of {len(images)} images could not be read: "
                           + ", ".join(str(p) for p in failed[:5]) + (" ..." if len(failed) > 5 else ""))


# ------------------------------------------------------------------ the model
@dataclass
class ModelPlan:
    """The model a run will use, known before it is loaded: ``config`` (BATCH_SIZE, DETECTION_MIN_CONFIDENCE,
    class_names()), the lines printed before loading, the facts recorded in images.json, and ``load()`` -> an
    object with ``MaskRCNN.detect``'s interface."""

    config: object
    shown: list[str]
    info: dict
    load: Callable[[], object]


def plan_checkpoint(weights, config_path, batch_size, min_confidence, precision="float32"):
    """The ModelPlan of a weights file (``MaskRCNN`` computing in ``precision``)."""
    from fseg import runtime

    config, config_source, choice = runtime.load_inference_config(
        config_path, weights, inference_overrides(batch_size, min_confidence))
    check_batchable(config)
    runtime.check_precision_or_exit(precision)
    shown = [f"Config:  {config_source}", f"Weights: {choice.path} ({choice.reason})"]
    if precision != "float32":
        shown.append(f"Precision: {precision}")
    return ModelPlan(config, shown, {"config": config_source, "weights": str(choice.path), "precision": precision},
                     lambda: runtime.load_model(config, choice.path, precision=precision)[0])


def plan_export(model_dir: Path, weights, config_path, batch_size, min_confidence):
    """The ModelPlan of an ``fseg export`` folder (``ExportedModel``), checked without loading it (exit 2 for a
    folder that is no export, or for options an export fixes)."""
    from mrcnn.export.saved_model import ExportError, read_class_names, read_export_info

    given = [name for name, value in (("--weights", weights), ("--config", config_path),
                                      ("--batch-size", batch_size)) if value is not None]
    if given:
        raise CommandError(f"--model runs an exported model; {', '.join(given)} cannot be used with it", EXIT_USAGE)
    try:
        class_names, info = read_class_names(model_dir), read_export_info(model_dir)
    except ExportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    exported_min = float(info.get("detection_min_confidence", 0.0))
    if min_confidence is not None and min_confidence < exported_min:
        raise CommandError(f"--min-confidence {min_confidence} is below the export's {exported_min} (fixed when "
                           f"it was exported); give at least {exported_min} or export again", EXIT_USAGE)
    threshold = exported_min if min_confidence is None else float(min_confidence)
    config = SimpleNamespace(BATCH_SIZE=1, DETECTION_MIN_CONFIDENCE=threshold, class_names=lambda: class_names)

    def load():
        from fseg.cli_util import import_tensorflow_quietly

        import_tensorflow_quietly()
        from mrcnn.export.adapter import ExportedModel

        try:
            model = ExportedModel(model_dir)
        except ExportError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        if threshold > exported_min:
            model.detect = keep_scores_from(model.detect, threshold)
        return model

    return ModelPlan(config, [f"Model:   {model_dir} (exported from {info.get('weights', 'unknown weights')})"],
                     {"model": str(model_dir), "weights": info.get("weights")}, load)


def keep_scores_from(detect: Callable, threshold: float) -> Callable:
    """``detect`` whose results keep only the detections scoring at least ``threshold``."""
    def filtered(images, verbose: int = 0):
        results = detect(images, verbose=verbose)
        for result in results:
            keep = result["scores"] >= threshold
            for key in ("rois", "class_ids", "scores"):
                result[key] = result[key][keep]
            result["masks"] = result["masks"][:, :, keep]
        return results
    return filtered


# ------------------------------------------------------------------ inputs
def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Turn INPUT arguments (files, folders, glob patterns) into image paths, in order, without duplicates.

    Raises CommandError (exit 2) for a missing path, a pattern matching nothing,
    or no images at all.
    """
    from mrcnn.io.images import IMAGE_SUFFIXES

    found: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                echo_err(f"Warning: no images in {raw} (looked for {', '.join(IMAGE_SUFFIXES)})")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(raw):
            hits = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if not hits:
                raise CommandError(f"no files match {raw!r}", EXIT_USAGE)
            matches = [p for p in hits if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            raise CommandError(f"input not found: {raw}", EXIT_USAGE)
        found.extend(matches)
    first_seen: dict[Path, Path] = {}
    for path in found:
        first_seen.setdefault(path.resolve(), path)
    unique = list(first_seen.values())
    if not unique:
        raise CommandError("no images found in the inputs", EXIT_USAGE)
    return unique


def plan_inputs(paths: Sequence[Path]) -> list[InputImage]:
    """Give each input an image id and unique output names.

    Image ids are the numbers in the file names when every stem is a number and
    they are all different (DeepFashion2's ``000123.jpg`` -> 123, matching
    ``fseg convert``'s ids); otherwise 1, 2, ... in input order.
    """
    stems = [p.stem for p in paths]
    numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    used: set[str] = set()
    planned = []
    for index, path in enumerate(paths):
        stem = unique_stem(path.stem, used)
        suffix = ".jpg" if path.suffix.lower() in JPEG_SUFFIXES else ".png"
        image_id = int(path.stem) if numeric else index + 1
        planned.append(InputImage(path, image_id, stem, stem + suffix))
    return planned


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... if taken (compared case-insensitively); records it in ``used``."""
    candidate, n = stem, 1
    while candidate.casefold() in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate.casefold())
    return candidate


def refuse_overwriting_inputs(images: Sequence[InputImage], out_dir: Path) -> None:
    """Raise CommandError (exit 2) when an overlay would replace one of the input photos."""
    inputs = {img.path.resolve() for img in images}
    for img in images:
        target = (out_dir / img.overlay_name).resolve()
        if target in inputs:
            raise CommandError(f"--out {out_dir} would overwrite the input {target}; choose another folder",
                               EXIT_USAGE)


def inference_overrides(batch_size: int | None, min_confidence: float | None) -> dict:
    """Config changes for detection: one GPU, the given batch size and score threshold."""
    overrides: dict = {"GPU_COUNT": 1}
    if batch_size is not None:
        overrides["IMAGES_PER_GPU"] = batch_size
    if min_confidence is not None:
        overrides["DETECTION_MIN_CONFIDENCE"] = float(min_confidence)
    return overrides


def check_batchable(config) -> None:
    """Raise CommandError (exit 2) when batches of unequal image sizes are asked for.

    Only the "square" resize mode gives every image the same molded size, which
    ``detect`` needs for more than one image per call.
    """
    if config.BATCH_SIZE > 1 and config.IMAGE_RESIZE_MODE != "square":
        raise CommandError(f"--batch-size {config.BATCH_SIZE} needs IMAGE_RESIZE_MODE \"square\": in "
                           f"\"{config.IMAGE_RESIZE_MODE}\" mode each photo keeps its own size; use --batch-size 1",
                           EXIT_USAGE)


def run_detection(
    images: Sequence[InputImage],
    detect: Callable[[list], list],
    batch_size: int,
    consume: Callable[[InputImage, object, dict], None],
) -> list[Path]:
    """Read, detect in batches of ``batch_size``, and hand each result to ``consume(item, image, detections)``.

    A short last batch is padded with copies of its last image (``detect`` needs
    exactly ``batch_size`` images); their results are dropped. Unreadable images
    are reported on stderr and skipped. Returns the paths that failed to read.
    """
    from tqdm import tqdm

    failed: list[Path] = []
    with tqdm(total=len(images), unit="img", desc="predict", file=sys.stderr, disable=None) as bar:
        for batch in read_ahead(read_batches(images, batch_size, failed, bar)):
            pixels = [image for _, image in batch]
            pixels += [pixels[-1]] * (batch_size - len(pixels))
            results = detect(pixels, verbose=0)
            for (item, image), detections in zip(batch, results):
                consume(item, image, detections)
                bar.update(1)
    return failed


def read_batches(images: Iterable[InputImage], batch_size: int, failed: list[Path], bar) -> Iterator[list]:
    """Yield lists of up to ``batch_size`` (item, [H, W, 3] uint8 RGB) pairs; unreadable files go to ``failed``."""
    from mrcnn.io.images import ImageReadError, read_image_rgb

    batch: list = []
    for item in images:
        try:
            batch.append((item, read_image_rgb(item.path)))
        except ImageReadError as exc:
            bar.write(f"Skipped: {exc}", file=sys.stderr)
            failed.append(item.path)
            bar.update(1)
            continue
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_ahead(batches: Iterator[list]) -> Iterator[list]:
    """The same batches, decoded one batch ahead in a background thread while the model runs on the current one."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    done = object()

    def produce():
        try:
            for batch in batches:
                ready.put(batch)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which raises it)
            ready.put(exc)
        ready.put(done)

    thread = threading.Thread(target=produce, name="predict-read-ahead", daemon=True)
    thread.start()
    while (item := ready.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
