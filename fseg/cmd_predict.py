"""``fseg predict``: segment garments in photos; overlays, COCO-format predictions, cut-outs.

The command only parses options and wires library pieces together:
``fseg.runtime`` (config, weights, model, output folder), ``mrcnn.io.images`` (reading),
``MaskRCNN.detect`` (the model), ``mrcnn.io.overlay`` (overlays, cut-outs) and
``mrcnn.eval.results`` (JSON). Heavy imports happen inside the command so ``fseg --help`` stays fast.
"""
from __future__ import annotations

import glob
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import click

from fseg.cli_util import EXIT_USAGE, CommandError, echo_err

JPEG_SUFFIXES = (".jpg", ".jpeg")
PREDICTIONS_FILE = "predictions.json"
IMAGES_FILE = "images.json"
CROPS_DIR = "crops"


@dataclass
class InputImage:
    """One input photo and the names of its outputs."""

    path: Path
    image_id: int
    out_stem: str  # unique among the run's inputs (``x``, ``x_2`` when two inputs are called x.*)
    overlay_name: str  # ``<out_stem>.jpg`` for JPEG inputs, ``<out_stem>.png`` otherwise


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the outputs (created if missing; files of an earlier run are overwritten).")
@click.option("--weights", "-w", default=None, metavar="FILE|last",
              help="Weights .h5 file, or `last` for the newest checkpoint under logs/. "
                   "Default: $FSEG_WEIGHTS, else the newest checkpoint of the config's NAME under logs/, "
                   "else weights/<NAME>.h5.")
@click.option("--config", "-c", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Model config TOML. Default: the config recorded with the weights' training run, else "
                   "./configs/deepfashion2.toml, else the one shipped with fseg.")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None, metavar="F",
              help="Keep detections scoring at least F (0..1). Default: the config's DETECTION_MIN_CONFIDENCE.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images per detect call (sets IMAGES_PER_GPU). Default: the config's IMAGES_PER_GPU.")
@click.option("--crops", is_flag=True,
              help="Also write each detected garment as a transparent PNG: crops/<stem>_<k>_<class>.png.")
@click.option("--no-overlay", is_flag=True, help="Do not write overlay images (JSON only, plus crops if asked).")
def predict(inputs, out_dir, weights, config_path, min_confidence, batch_size, crops, no_overlay):
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

    An unreadable image is reported and skipped; the others are processed and
    the exit code is 1. The config and weights files used are printed first.

    \b
    Examples:
      fseg predict test_img/ --out Result/
      fseg predict shop.jpg street.jpg --out out/ --crops --min-confidence 0.5
      fseg predict 'photos/*.jpg' --out out/ --weights last --batch-size 2
    """
    from fseg import runtime

    images = plan_inputs(expand_inputs(inputs))
    named, _ = runtime.load_config(config_path)
    if not named.NAME and not weights:
        raise CommandError(f"{config_path}: the config sets no NAME (needed to find its weights); "
                           f"give --weights FILE", EXIT_USAGE)
    choice = runtime.resolve_weights_or_exit(weights, named.NAME or "mrcnn")
    config, config_source = runtime.load_config(config_path, weights=choice,
                                                overrides=inference_overrides(batch_size, min_confidence))
    check_batchable(config)
    if not no_overlay:
        refuse_overwriting_inputs(images, out_dir)
    runtime.check_out_dir(out_dir)
    echo_err(f"Config:  {config_source}")
    echo_err(f"Weights: {choice.path} ({choice.reason})")
    model, _ = runtime.load_model(config, choice.path)
    runtime.prepare_out_dir(out_dir)
    writer = OutputWriter(out_dir, config.class_names(), overlays=not no_overlay, crops=crops)
    failed = run_detection(images, model.detect, config.BATCH_SIZE, writer.add)
    writer.finish(info={"config": config_source, "weights": str(choice.path),
                        "min_confidence": float(config.DETECTION_MIN_CONFIDENCE)})
    echo_err(writer.summary())
    if failed:
        raise CommandError(f"{len(failed)} of {len(images)} images could not be read: "
                           + ", ".join(str(p) for p in failed[:5]) + (" ..." if len(failed) > 5 else ""))


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

    Only the "square" and "crop" resize modes give every image the same molded
    size, which ``detect`` needs for more than one image per call.
    """
    if config.BATCH_SIZE > 1 and config.IMAGE_RESIZE_MODE not in ("square", "crop"):
        raise CommandError(f"--batch-size {config.BATCH_SIZE} needs IMAGE_RESIZE_MODE \"square\" (the config has "
                           f"{config.IMAGE_RESIZE_MODE!r}); use --batch-size 1", EXIT_USAGE)


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
        for batch in read_batches(images, batch_size, failed, bar):
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


# ------------------------------------------------------------------ outputs
def crop_file_name(stem: str, rank: int, class_name: str) -> str:
    """``<stem>_<rank>_<class>.png`` with the class name reduced to [a-z0-9_]: ``test_1_short_sleeve_top.png``."""
    slug = re.sub(r"[^0-9a-z]+", "_", class_name.lower()).strip("_") or "object"
    return f"{stem}_{rank}_{slug}.png"


class OutputWriter:
    """Writes overlays and crops as results arrive, and the two JSON files at the end (all atomically)."""

    def __init__(self, out_dir: Path, class_names: Sequence[str], *, overlays: bool, crops: bool):
        self.out_dir = out_dir
        self.class_names = list(class_names)
        self.overlays = overlays
        self.crops = crops
        self.records: list[dict] = []
        self.images: list[dict] = []
        self.crop_count = 0

    def add(self, item: InputImage, image, detections: dict) -> None:
        """Save the outputs of one image. ``image`` [H, W, 3] uint8 RGB; ``detections`` as MaskRCNN.detect gives."""
        from mrcnn.eval.results import detections_to_records, images_record
        from mrcnn.io.images import write_image
        from mrcnn.io.overlay import draw_instances

        records = detections_to_records(detections, item.image_id, self.class_names, file_name=item.path.name)
        if self.overlays:
            overlay = draw_instances(image, detections["rois"], detections["masks"], detections["class_ids"],
                                     self.class_names, detections["scores"])
            write_image(self.out_dir / item.overlay_name, overlay)
        if self.crops:
            self._write_crops(item, image, detections, records)
        height, width = image.shape[:2]
        self.images.append(images_record(item.image_id, item.path.name, height, width, path=str(item.path),
                                         overlay=item.overlay_name if self.overlays else None))
        self.records.extend(records)

    def _write_crops(self, item: InputImage, image, detections: dict, records: list[dict]) -> None:
        """One RGBA PNG per detection with a non-empty mask; its name goes into the record's "crop"."""
        from mrcnn.io.images import write_image
        from mrcnn.io.overlay import cutout_rgba

        crops_dir = self.out_dir / CROPS_DIR
        crops_dir.mkdir(exist_ok=True)
        for k, record in enumerate(records):
            mask = detections["masks"][:, :, k]
            box = detections["rois"][k]
            if not mask[box[0]:box[2], box[1]:box[3]].any():
                record["crop"] = None
                continue
            name = crop_file_name(item.out_stem, k + 1, record["category_name"])
            write_image(crops_dir / name, cutout_rgba(image, mask, box))
            record["crop"] = f"{CROPS_DIR}/{name}"
            self.crop_count += 1

    def finish(self, info: dict) -> None:
        """Write predictions.json (the list of result records) and images.json (images, categories)."""
        import datetime as dt

        from mrcnn.eval.results import categories_records
        from mrcnn.io.files import write_json

        info = {"description": "fseg predict", "date_created": dt.datetime.now().isoformat(timespec="seconds"),
                **info}
        write_json(self.out_dir / PREDICTIONS_FILE, self.records)
        write_json(self.out_dir / IMAGES_FILE, {"info": info, "images": self.images,
                                                 "categories": categories_records(self.class_names),
                                                 "annotations": []})

    def summary(self) -> str:
        """One line: what was written where, e.g. ``6 images, 9 detections -> Result/ (...)``."""
        written = [PREDICTIONS_FILE, IMAGES_FILE]
        if self.overlays:
            written.append(counted(len(self.images), "overlay"))
        if self.crops:
            written.append(f"{counted(self.crop_count, 'crop')} in {CROPS_DIR}/")
        return (f"{counted(len(self.images), 'image')}, {counted(len(self.records), 'detection')} -> "
                f"{self.out_dir}/ ({', '.join(written)})")


def counted(n: int, noun: str) -> str:
    """``"1 image"``, ``"3 images"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
