"""``fseg synth``: write a synthetic DeepFashion2 split (images + per-image annotation files)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import click

from fseg.cli_util import (EXIT_FAILED, EXIT_USAGE, CommandError, echo_err, exit_on_signals, is_tty,
                           os_error_message, user_errors)


def _check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse an OUT_DIR that is not a folder, holds the current folder, or (non-empty) may not be replaced.

    ``--force`` replaces only a folder that holds a split and nothing else (``foreign_entry``):
    an earlier ``fseg synth`` output, never a home or project folder.
    """
    from df2coco.synthetic.split import foreign_entry

    if out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"{out_dir} exists and is not a folder", exit_code=EXIT_USAGE)
    if out_dir == out_dir.parent or out_dir in _current_folder_and_parents():
        raise CommandError(f"{out_dir} holds the current folder; give a new or split folder as OUT_DIR",
                           exit_code=EXIT_USAGE)
    if not out_dir.parent.is_dir():
        raise CommandError(f"parent folder {out_dir.parent} does not exist", exit_code=EXIT_USAGE)
    try:
        if not out_dir.is_dir() or not any(out_dir.iterdir()):
            return
        foreign = foreign_entry(out_dir) if force else None
    except OSError as exc:
        raise CommandError(os_error_message(exc, "cannot read"), exit_code=EXIT_USAGE) from None
    if not force:
        raise CommandError(f"{out_dir} is not empty (use --force to replace it)", exit_code=EXIT_USAGE)
    if foreign is not None:
        raise CommandError(f"{out_dir} is not a split ({foreign.relative_to(out_dir)} is not an image/ or annos/ "
                           "file): --force replaces only an earlier split", exit_code=EXIT_USAGE)


def _current_folder_and_parents() -> list[Path]:
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current folder was deleted: nothing to protect
        return []
    return [cwd, *cwd.parents]


def _remove_leftovers(out_dir: Path) -> None:
    """Delete the temporary folders that killed runs to OUT_DIR left (their process is gone)."""
    from df2coco.leftovers import remove_dead_temporary_folders

    for folder in remove_dead_temporary_folders(out_dir):
        echo_err(f"Removed {folder}: a temporary folder of an earlier run that was killed")


def _replace_dir(tmp_dir: Path, out_dir: Path) -> None:
    """Move the finished tmp_dir to out_dir, replacing an existing out_dir only at the very end.

    If the second rename fails, the old out_dir is moved back, so it is never lost.
    """
    import shutil
    import tempfile

    from df2coco.leftovers import temporary_folder_prefix

    if not out_dir.exists():
        tmp_dir.rename(out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=temporary_folder_prefix(out_dir, "old"), dir=out_dir.parent))
    old.rmdir()
    out_dir.rename(old)
    try:
        tmp_dir.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _make_tmp_dir(out_dir: Path) -> Path:
    """The hidden folder the split is written into, next to OUT_DIR; checks that the parent is writable."""
    import tempfile

    from df2coco.leftovers import temporary_folder_prefix

    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=temporary_folder_prefix(out_dir), dir=out_dir.parent))
    except OSError as exc:
        raise CommandError(f"cannot write to {out_dir.parent}: {exc.strerror or exc}", exit_code=EXIT_USAGE) from None
    tmp_dir.chmod(0o755)  # mkdtemp makes it private; the split is ordinary data
    return tmp_dir


@contextlib.contextmanager
def _os_errors_fail_the_job():
    """A disk error while writing the split (full, read-only, ...): one line, exit code 1."""
    try:
        yield
    except OSError as exc:
        raise CommandError(os_error_message(exc), exit_code=EXIT_FAILED) from None


def _print_summary(summary, out_dir: Path, seconds: float) -> None:
    from df2coco.categories import CATEGORIES

    click.echo(f"Wrote {summary.num_images} images with {summary.num_items} items to {out_dir} "
               f"in {seconds:.1f} s")
    click.echo("  id  category               items")
    for cat in CATEGORIES:
        click.echo(f"  {cat.id:2d}  {cat.name:<21s} {summary.items_per_category.get(cat.id, 0):6d}")
    if summary.quirks:
        click.echo(f"Injected quirks ({len(summary.quirk_records)}):")
        for name, count in summary.quirks.items():
            click.echo(f"  {name:<21s} {count:6d}")


@click.command("synth")
@click.argument("out_dir", type=click.Path(path_type=str))
@click.option("--images", "-n", "num_images", type=click.IntRange(min=1), required=True,
              help="Number of images to write (files 000001 .. N).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed and N give identical files.")
@click.option("--quirk-rate", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Probability per image of injecting a defect (truncated JSON, missing image, unknown "
                   "category, broken polygon, too few landmarks, coordinates outside the image, ...), "
                   "to test converters.")
@click.option("--min-side", type=click.IntRange(min=16), default=160, show_default=True,
              help="Smallest image height/width in pixels.")
@click.option("--max-side", type=click.IntRange(min=16), default=640, show_default=True,
              help="Largest image height/width in pixels.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: all cores]. The output does not depend on it.")
@click.option("--no-annos", is_flag=True, help="Write images only, like DeepFashion2's test split.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it is a non-empty split (image/ and annos/ "
              "with numbered files only, such as an earlier output of synth); any other folder is refused.")
def synth(out_dir: str, num_images: int, seed: int, quirk_rate: float, min_side: int, max_side: int,
          workers: int | None, no_annos: bool, force: bool) -> None:
    """Write a synthetic DeepFashion2-format split into OUT_DIR.

    Creates OUT_DIR/image/000001.jpg ... and OUT_DIR/annos/000001.json ...:
    1-4 garment-shaped items of the 13 DeepFashion2 categories per image on
    varied backgrounds, with annotation files in the exact DeepFashion2 format
    (shuffled keys, outline + sleeve/leg polygons, landmarks, attributes).
    Use it to try `fseg convert` and training without the real dataset.

    The split is written to a temporary folder next to OUT_DIR and renamed into
    place when complete, so a failed run leaves no half-written OUT_DIR. Temporary
    folders that killed runs left there are removed first.

    \b
    Examples:
      fseg synth /tmp/synth_train --images 2000 --seed 1
      fseg synth /tmp/synth_bad --images 300 --quirk-rate 0.5
      fseg convert /tmp/synth_train --out /tmp/synth_train.json
    """
    import shutil
    import time

    from df2coco.synthetic import generate_split

    if min_side > max_side:
        raise CommandError(f"--min-side {min_side} is larger than --max-side {max_side}", exit_code=EXIT_USAGE)
    if not out_dir:  # Path("") is the current folder (an unset variable in a script)
        raise CommandError("OUT_DIR is empty; give a folder path", exit_code=EXIT_USAGE)
    out_dir = Path(out_dir).resolve()
    _check_out_dir(out_dir, force)
    _remove_leftovers(out_dir)
    start = time.perf_counter()
    with exit_on_signals(f"{out_dir} not written; an existing {out_dir.name} is unchanged"):
        tmp_dir = _make_tmp_dir(out_dir)
        try:
            with user_errors(RuntimeError, exit_code=EXIT_FAILED), _os_errors_fail_the_job():
                summary = generate_split(tmp_dir, num_images, seed, quirk_rate=quirk_rate, min_side=min_side,
                                         max_side=max_side, workers=workers, progress=is_tty(),
                                         with_annos=not no_annos)
                _replace_dir(tmp_dir, out_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    _print_summary(summary, out_dir, time.perf_counter() - start)
