"""``fseg convert`` (DeepFashion2 split -> COCO JSON) and ``fseg stats`` (summary of a COCO file)."""
from __future__ import annotations

import os

import click

from fseg.cli_util import (EXIT_FAILED, CommandError, echo_err, exit_on_signals, is_tty, os_error_message,
                           user_errors)

_CONVERT_EXAMPLES = """
\b
Examples:
  fseg convert DeepFashion2/validation --out val.json
  fseg convert DeepFashion2/train --out train.json --workers 2 --report train_problems.jsonl
  fseg convert DeepFashion2/test --out test.json          # no annos/: images + categories only
  fseg convert --images imgs/ --annos annos/ --out small.json --limit 100 --area bbox
"""


@click.command(epilog=_CONVERT_EXAMPLES)
@click.argument("split_dir", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="COCO JSON file to write (written to a temporary file, then renamed into place).")
@click.option("--images", "images_dir", type=click.Path(file_okay=False),
              help="Image folder (default: SPLIT_DIR/image). Files 000001.jpg (or .png) ...")
@click.option("--annos", "annos_dir", type=click.Path(file_okay=False),
              help="Annotation folder (default: SPLIT_DIR/annos; if absent, only images are written).")
@click.option("--workers", type=int, default=0, show_default="0 = all cores",
              help="Most worker processes; 1 runs everything in this process. Small splits (under "
                   "2,000 images per worker) use fewer, since starting a process costs more than it saves.")
@click.option("--area", "area_mode", type=click.Choice(["mask", "bbox"]), default="mask", show_default=True,
              help="'mask': area = pixels in the union of the item's polygons (COCO convention); "
                   "'bbox': box width x height (what the official converter writes).")
@click.option("--keypoints/--no-keypoints", default=True, show_default=True,
              help="Write the 294x3 'keypoints' and 'num_keypoints' fields (most of the file's size).")
@click.option("--limit", type=click.IntRange(min=1), help="Convert only the first N images (by file number).")
@click.option("--strict", is_flag=True,
              help="Any problem in the data fails the run (exit 1) and no output is written.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write every problem as JSON Lines: {file, item, problem, action, detail}.")
@click.option("--force", is_flag=True,
              help="Replace the output (and report) if they exist; only regular files are ever replaced.")
@click.option("--verify-images", is_flag=True,
              help="Decode every image fully, so that truncated or corrupt files are reported as "
                   "unreadable_image (and left out) instead of failing training later. Slower: by default "
                   "only the header (width, height) is read.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: if stderr is a terminal).")
def convert(split_dir, out_path, images_dir, annos_dir, workers, area_mode, keypoints, limit, strict,
            report_path, force, verify_images, progress):
    """Convert a DeepFashion2 split to one COCO instances JSON file.

    SPLIT_DIR holds image/000001.jpg ... and annos/000001.json ... (one file per
    image, as DeepFashion2 ships them). The output has image ids = file numbers,
    annotation ids 1..N in (image, item number) order, boxes and polygons clipped
    to the image, mask areas, keypoints, and the DeepFashion2 attributes.

    Bad data (unreadable files, unknown categories, broken polygons, too few
    landmarks, coordinates outside the image) is repaired by clipping or skipped,
    counted, and summarised on stderr at the end. Exit codes: 0 converted,
    1 problems found under --strict or a write that failed (nothing written),
    2 bad usage, 130/143 interrupted by Ctrl-C/SIGTERM (nothing written).
    """
    # The converter never multiplies matrices; OpenBLAS (loaded with numpy, for mask areas) would
    # otherwise start a thread per core in this process and in every worker: about 0.1 s of CPU each.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from df2coco.convert import convert_split
    from df2coco.errors import ConvertError, OutputError
    from df2coco.report import format_summary

    with exit_on_signals("no output written; existing files unchanged"), user_errors(ConvertError), \
            user_errors(OutputError, exit_code=EXIT_FAILED):
        result = convert_split(split_dir, out_path, images_dir=images_dir, annos_dir=annos_dir,
                               workers=workers, area_mode=area_mode, keypoints=keypoints, limit=limit,
                               strict=strict, report_path=report_path, force=force,
                               progress=is_tty() if progress is None else progress,
                               verify_images=verify_images)
    for leftover in result.leftovers_removed:
        echo_err(f"Removed {leftover}: a temporary file of an earlier run that was killed")
    if not result.has_annotations:
        echo_err("No annotation folder: wrote images and categories only (test split).")
    echo_err(format_summary(result.problem_counts))
    if result.noise_clipped:
        echo_err(f"Not counted as problems: {result.noise_clipped} item(s) with coordinates at most 1 px "
                 "outside the image (annotation noise), clipped.")
    if result.report_path is not None:
        echo_err(f"Problem report: {result.report_path}")
    if not result.written:
        raise CommandError(f"{result.num_problems} problem(s) found; --strict: no output written",
                           exit_code=EXIT_FAILED)
    echo_err(f"Wrote {result.num_images} images and {result.num_annotations} annotations to {result.out_path}")


@click.command(epilog="\b\nExamples:\n  fseg stats val.json\n  fseg stats val.json --json > val_stats.json")
@click.argument("coco_file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON instead of text.")
def stats(coco_file, as_json):
    """Summarise a COCO instances file, such as the output of fseg convert.

    Prints images and annotations, instances per category (with a bar each),
    instances per image, area quantiles and COCO size ranges, and the counts of
    each attribute value (scale, occlusion, zoom_in, viewpoint, source).

    Reads the file once with Python's json module, dropping polygons and
    keypoints as it goes, so memory stays near the file's size.
    """
    import json

    from df2coco.errors import StatsError
    from df2coco.stats import compute_stats, format_stats

    with exit_on_signals("nothing written"), user_errors(StatsError):
        result = compute_stats(coco_file)
    _print_to_stdout(json.dumps(result, indent=2) if as_json else format_stats(result))


def _print_to_stdout(text: str) -> None:
    """Print the report; a full disk behind a redirection is a one-line error (exit 1).

    A reader that stops early (``fseg stats f | head``) ends the output quietly, with exit code 1.
    """
    import sys

    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise click.exceptions.Exit(EXIT_FAILED) from None
    except OSError as exc:
        _silence_stdout()
        raise CommandError(os_error_message(exc, "cannot write the statistics to standard output"),
                           exit_code=EXIT_FAILED) from None


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the flush at exit does not fail a second time."""
    import io
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (a test runner's stream)
        pass
