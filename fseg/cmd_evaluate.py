"""``fseg evaluate``: COCO box, mask and landmark AP of a model (or of a results file) on a COCO ground-truth file.

The command parses options, runs the model when asked (``MaskRCNN.detect``,
``mrcnn.eval.results``) and prints what ``mrcnn.eval.coco_eval`` computes.
Scoring an existing results file (``--results``) never imports TensorFlow.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

from fseg.cli_util import (EXIT_FAILED, EXIT_USAGE, CommandError, echo_err, exit_on_signals, os_error_message,
                           config_option, precision_option, user_errors, weights_option)

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.json"
ATTRIBUTE_CHOICES = ("scale", "occlusion", "zoom_in", "viewpoint", "source")

_EXAMPLES = """
\b
Examples:
  fseg evaluate --annotations val.json --images DeepFashion2/validation/image --weights weights/deepfashion2.h5
  fseg evaluate --annotations val.json --images val/image --weights last --limit 500 --by scale --by occlusion
  fseg evaluate --annotations val.json --results other_tool_results.json --out eval/
"""


@dataclass
class DetectionRun:
    """What running the model produced: result records and the images it could not use."""

    records: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # file not on disk
    unreadable: list[str] = field(default_factory=list)  # "path: reason"
    landmarks: bool = False  # the model has the landmark head: score landmarks even without detections
    keypoint_slices: dict | None = None  # {category id: landmark indices} from the config's LANDMARK_COUNTS

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unreadable)


@click.command("evaluate", epilog=_EXAMPLES)
@click.option("--annotations", "-a", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth: a COCO instances JSON (e.g. `fseg convert` of DeepFashion2/validation).")
@click.option("--images", "-i", "images_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder the annotation file's `file_name`s are in (needed unless --results).")
@weights_option(default_chain=True)
@config_option
@click.option("--results", "-r", "results_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Score this COCO results file (a JSON list of detections) instead of running a model.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate only the first N images of the annotation file (in its order).")
@click.option("--by", "by", multiple=True, type=click.Choice(ATTRIBUTE_CHOICES),
              help="Also give AP for each value of this DeepFashion2 attribute (repeat for several).")
@click.option("--out", "-o", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for results.json and metrics.json. Default: <weights folder>/<weights name>_eval_"
                   "<annotations name>/; with --results, the results file's folder.")
@click.option("--map-min-score", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True, metavar="F",
              help="Score threshold for matterport's mAP@0.5 only (matterport-based reports often detect "
                   "at 0.7); COCO AP always uses every detection.")
@precision_option
def evaluate(annotations, images_dir, weights, config_path, results_path, limit, by, out_dir, map_min_score,
             precision):
    """Score detections against ground truth: COCO AP for boxes, masks and landmarks.

    Runs the model over the annotation file's images (detection threshold 0,
    one image at a time, as matterport's COCO evaluation does), writes the
    detections to results.json (COCO results, RLE masks) and scores them
    with pycocotools. With --results it scores that file instead (any tool's
    output; no model, no TensorFlow).

    \b
    Prints and writes to metrics.json:
      - the 12 COCO numbers (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l)
        for boxes and masks; with landmarks (the landmark head, or results with
        keypoints) COCO's 10 keypoint numbers with DeepFashion2's OKS sigmas,
        only the detection's category's landmarks scored;
      - AP, AP50, AP75 per category, with ground-truth counts;
      - with --by: the same per attribute value (rows = values); garments of
        other values are ignored, not counted as misses or false positives;
      - matterport's mAP@0.5 (mean of per-image mask AP, its compute_ap),
        for comparison with matterport-based reports.

    Images missing on disk (or unreadable) stay in the evaluation with no
    detections, are listed, and make the exit code 1. Exit codes: 0 scored,
    1 some images missing/unreadable or the model failed to load, 2 bad usage.
    """
    from mrcnn.eval.results import EvaluationError, load_ground_truth

    check_mode(images_dir, weights, config_path, results_path, precision)
    with user_errors(EvaluationError):
        gt = load_ground_truth(annotations)
    images = list(gt.dataset["images"])[:limit] if limit else list(gt.dataset["images"])
    try:
        with exit_on_signals("results.json is written when detection ends, metrics.json when scoring ends: "
                             "neither was"):
            if results_path is not None:
                run, source = read_results(results_path), str(results_path)
                out_dir = out_dir or results_path.parent
                kept = "metrics.json is written when scoring ends: it was not"
            else:
                run, out_dir, info = detect_all(gt, images, images_dir, weights, config_path, out_dir, annotations,
                                                precision)
                source = str(out_dir / RESULTS_FILE)
                kept = (f"the detections are in {source}; score them with `fseg evaluate --annotations {annotations} "
                        f"--results {source}`")
        with exit_on_signals(kept):
            metrics = score(gt, run, images, by, map_min_score, source, annotations)
            metrics["info"] = {"annotations": str(annotations), "results": source, "limit": limit,
                               "missing_images": run.missing, "unreadable_images": run.unreadable,
                               **({} if results_path is not None else info)}
            write_metrics(out_dir, metrics)
    except OSError as exc:  # a full or read-only disk
        raise CommandError(os_error_message(exc), EXIT_FAILED) from None
    click.echo(format_report(metrics))
    echo_err(f"Wrote {out_dir / METRICS_FILE}" + ("" if results_path is not None else f" and {RESULTS_FILE}"))
    if run.problems:
        raise CommandError(f"{run.problems} of {len(images)} images were missing or unreadable and were scored "
                           f"with no detections (listed in {METRICS_FILE})")


# ------------------------------------------------------------------ options
def check_mode(images_dir, weights, config_path, results_path, precision="float32") -> None:
    """Raise CommandError (exit 2) for option combinations that make no sense."""
    if results_path is not None:
        given = [name for name, value in (("--weights", weights), ("--config", config_path),
                                          ("--precision", precision != "float32")) if value]
        if given:
            raise CommandError(f"--results scores an existing file; {' and '.join(given)} cannot be used with it",
                               EXIT_USAGE)
        return
    if images_dir is None:
        raise CommandError("--images DIR is needed to run the model (or give --results FILE)", EXIT_USAGE)
    if not images_dir.is_dir():
        raise CommandError(f"image folder not found: {images_dir}", EXIT_USAGE)


def read_results(results_path: Path) -> DetectionRun:
    from mrcnn.eval.results import EvaluationError, load_results_file

    with user_errors(EvaluationError):
        return DetectionRun(records=load_results_file(results_path))


def default_out_dir(weights_path: Path, annotations: Path) -> Path:
    """``<weights folder>/<weights stem>_eval_<annotations stem>``."""
    return weights_path.parent / f"{weights_path.stem}_eval_{annotations.stem}"


# ------------------------------------------------------------------ model
def detect_all(gt, images: Sequence[dict], images_dir: Path, weights, config_path, out_dir, annotations: Path,
               precision: str = "float32"):
    """Load config and weights, run detection over ``images`` in ``precision``, write results.json (removing an
    earlier run's metrics.json from ``out_dir``: it scored the results.json this one replaces).

    Returns (DetectionRun, out_dir, info for metrics.json).
    """
    from mrcnn.io.files import write_json

    from fseg import runtime

    config, config_source, choice = runtime.load_inference_config(
        config_path, weights, {"DETECTION_MIN_CONFIDENCE": 0.0, "IMAGES_PER_GPU": 1, "GPU_COUNT": 1},
        source="evaluate")
    category_ids = category_ids_by_class(config, gt.dataset["categories"], config_source)
    out_dir = out_dir or default_out_dir(choice.path, annotations)
    runtime.check_out_dir(out_dir)
    runtime.check_precision_or_exit(precision)
    missing = [str(images_dir / img.get("file_name", "")) for img in images if not image_path(img, images_dir)]
    echo_err(f"Config:  {config_source}")
    echo_err(f"Weights: {choice.path} ({choice.reason})")
    if missing:
        echo_err(f"Warning: {len(missing)} of {len(images)} images are missing from {images_dir} "
                 f"(e.g. {missing[0]}); they are scored with no detections")
    model, _ = runtime.load_model(config, choice.path, precision=precision)
    runtime.prepare_out_dir(out_dir)
    run = run_detection(images, images_dir, model.detect, config.class_names(), category_ids)
    if "landmarks" in config.ROI_HEADS:
        from mrcnn.eval.keypoint_eval import category_slices

        run.landmarks, run.keypoint_slices = True, category_slices(config.LANDMARK_COUNTS, category_ids)
    (out_dir / METRICS_FILE).unlink(missing_ok=True)  # an earlier run's: it scores the results.json replaced now
    write_json(out_dir / RESULTS_FILE, run.records)
    info = {"config": config_source, "weights": str(choice.path), "images_dir": str(images_dir),
            "detection_min_confidence": 0.0, "precision": precision}
    return run, out_dir, info


def category_ids_by_class(config, categories: Sequence[dict], config_path) -> list[int]:
    """File category id of every class id (index 0, background, maps to 0), matched by name.

    Names match as in ``mrcnn.data.coco`` (case, ``_`` vs space, the config's CLASS_ALIASES,
    ``df2_name``). A mismatch raises CommandError (exit 2) listing both.
    """
    from mrcnn.data.coco import match_categories

    class_names = config.class_names()
    ordered = sorted(categories, key=lambda c: c["id"])
    match = match_categories(ordered, list(class_names)[1:], config.CLASS_ALIASES)
    if match is None:
        raise CommandError(f"the annotation file's categories differ from the config's CLASS_NAMES ({config_path}): "
                           f"file has [{', '.join(str(c['name']) for c in ordered)}]; "
                           f"config has [{', '.join(class_names[1:])}]", EXIT_USAGE)
    return [0] + list(match)


def image_path(image: dict, images_dir: Path) -> Path | None:
    """The image's file under ``images_dir``, or None if it is not there."""
    name = image.get("file_name")
    path = images_dir / name if name else None
    return path if path is not None and path.is_file() else None


def run_detection(images: Sequence[dict], images_dir: Path, detect, class_names, category_ids) -> DetectionRun:
    """Detect in each image (one per call) and collect COCO result records.

    Images not on disk, unreadable, or whose pixel size differs from the
    annotation file's width x height (their masks could not be compared) get
    no detections and are listed in the returned run.
    """
    from tqdm import tqdm

    from mrcnn.eval.results import detections_to_records
    from mrcnn.io.images import ImageReadError, read_image_rgb

    run = DetectionRun()
    for image in tqdm(images, unit="img", desc="evaluate", file=sys.stderr, disable=None):
        path = image_path(image, images_dir)
        if path is None:
            run.missing.append(str(images_dir / str(image.get("file_name", ""))))
            continue
        try:
            pixels = read_image_rgb(path, apply_exif=False)  # annotations use the stored pixels
        except ImageReadError as exc:
            run.unreadable.append(str(exc))
            continue
        if pixels.shape[:2] != (image["height"], image["width"]):
            run.unreadable.append(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but the annotation file "
                                  f"says {image['width']}x{image['height']}")
            continue
        detections = detect([pixels], verbose=0)[0]
        run.records.extend(detections_to_records(detections, image["id"], class_names, file_name=path.name,
                                                 category_ids=category_ids))
    for line in run.unreadable:
        echo_err(f"Skipped: {line}")
    return run


# ------------------------------------------------------------------ scoring and output
def score(gt, run: DetectionRun, images: Sequence[dict], by, map_min_score: float, source: str,
          annotations: Path) -> dict:
    """evaluate(); for landmarks the ground truth is read again with its keypoints (dropped the first time)."""
    from mrcnn.eval.coco_eval import evaluate
    from mrcnn.eval.keypoint_eval import keypoint_count
    from mrcnn.eval.results import EvaluationError, load_ground_truth

    with user_errors(EvaluationError, exit_code=EXIT_USAGE):
        if run.landmarks or keypoint_count(run.records, source):
            gt = load_ground_truth(annotations, keypoints=True)
        return evaluate(gt, run.records, [img["id"] for img in images], by=list(dict.fromkeys(by)),
                        map_min_score=map_min_score, source=source, keypoints=run.landmarks or None,
                        keypoint_slices=run.keypoint_slices)


def write_metrics(out_dir: Path, metrics: dict) -> None:
    """metrics.json (indented, keys in a fixed order), written atomically."""
    import json

    from fseg.runtime import prepare_out_dir
    from mrcnn.io.files import atomic_write

    prepare_out_dir(out_dir)
    order = ["info", "images", "instances", "detections", "bbox", "segm", "keypoints", "per_category", "by",
             "matterport"]
    payload = json.dumps({k: metrics[k] for k in order}, indent=1).encode("utf-8")
    atomic_write(out_dir / METRICS_FILE, lambda f: f.write(payload))


def format_report(metrics: dict) -> str:
    """The tables printed on stdout."""
    parts = [format_header(metrics), format_summary(metrics), format_categories(metrics)]
    parts += [format_attribute(name, table) for name, table in metrics["by"].items()]
    parts.append(format_matterport(metrics["matterport"]))
    return "\n\n".join(parts)


def format_header(metrics: dict) -> str:
    info = metrics["info"]
    bad = len(info["missing_images"]) + len(info["unreadable_images"])
    note = f" ({bad} missing or unreadable, scored with no detections)" if bad else ""
    return (f"{metrics['images']} images{note}, {metrics['instances']} ground-truth instances, "
            f"{metrics['detections']} detections")


def format_summary(metrics: dict) -> str:
    from mrcnn.eval.coco_eval import STATS
    from mrcnn.eval.keypoint_eval import KEYPOINT_STATS

    lines = ["COCO metrics (pycocotools COCOeval)",
             f"{'metric':<7}{'IoU':>10}{'area':>8}{'maxDets':>9}{'box':>8}{'mask':>8}"]
    for name, iou, area, max_dets in STATS:
        lines.append(f"{name:<7}{iou:>10}{area:>8}{max_dets:>9}{_num(metrics['bbox'], name):>8}"
                     f"{_num(metrics['segm'], name):>8}")
    if metrics.get("keypoints") is not None:
        lines += ["", "Landmarks (COCO keypoint AP, DeepFashion2's OKS sigmas, category slice only)",
                  f"{'metric':<7}{'OKS':>10}{'area':>8}{'maxDets':>9}{'value':>8}"]
        lines += [f"{name:<7}{oks:>10}{area:>8}{max_dets:>9}{_num(metrics['keypoints'], name):>8}"
                  for name, oks, area, max_dets in KEYPOINT_STATS]
    return "\n".join(lines)


def format_categories(metrics: dict) -> str:
    rows = [(c["name"], c["instances"], c.get("bbox"), c.get("segm"), c.get("keypoints"))
            for c in metrics["per_category"]]
    return _ap_table("AP per category (IoU 0.50:0.95, area all)", "category", rows)


def format_attribute(name: str, table: dict) -> str:
    level = ("garments of other values ignored" if table["level"] == "annotation"
             else "only the images with that value")
    rows = [(_value_label(row["value"], row["label"]), row["instances"], row.get("bbox"), row.get("segm"),
             row.get("keypoints")) for row in table["values"]]
    rows.append(("total", table["instances"], None, None, None))
    return _ap_table(f"AP by {name} ({level})", name, rows)


def format_matterport(result: dict | None) -> str:
    if result is None:
        return "matterport mAP@0.5: not computed (the results have no masks)"
    value = "-" if result["mAP50"] is None else f"{result['mAP50']:.3f}"
    fixed = "-" if result["mAP50_without_quirk"] is None else f"{result['mAP50_without_quirk']:.3f}"
    threshold = f", detections scoring >= {result['min_score']:g}" if result["min_score"] > 0 else ""
    return (f"matterport mAP@0.5 (mask IoU, its compute_ap averaged over {result['images']} images with ground "
            f"truth{threshold}): {value}  [{fixed} without the duplicate-match quirk, matterport #1692; "
            f"{result['images_without_gt']} images without ground truth left out]")


def _value_label(value: Any, label: str) -> str:
    """``"1 small"`` for coded values, the label alone for named ones (``"user (consumer photo)"``, ``"unknown"``)."""
    return f"{value} {label}" if isinstance(value, (int, float)) and str(value) != label else label


def _ap_table(title: str, first: str, rows: Sequence[tuple[str, int, Any, Any, Any]]) -> str:
    """Rows (label, instances, box, mask, landmark APs); landmark columns only when some row has them."""
    width = max([len(first)] + [len(str(r[0])) for r in rows])
    landmarks = any(r[4] is not None for r in rows)
    lines = [title, f"{first:<{width}}{'inst':>7}  {'box AP':>7}{'AP50':>7}{'AP75':>7}  {'mask AP':>7}"
                    f"{'AP50':>7}{'AP75':>7}" + (f"  {'lmk AP':>7}{'AP50':>7}{'AP75':>7}" if landmarks else "")]
    for label, count, *stats in rows:
        line = f"{label:<{width}}{count:>7}"
        if any(s is not None for s in stats):
            for table in stats[:3 if landmarks else 2]:
                line += "  " + "".join(f"{_num(table, k):>7}" for k in ("AP", "AP50", "AP75"))
        lines.append(line)
    return "\n".join(lines)


def _num(stats: dict | None, key: str) -> str:
    value = None if stats is None else stats.get(key)
    return "-" if value is None else f"{value:.3f}"
