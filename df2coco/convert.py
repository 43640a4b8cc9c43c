"""Convert a DeepFashion2 split (``image/`` + ``annos/``) to one COCO instances JSON.

Entry point: :func:`convert_split`. The split is listed and sorted by file
number (:mod:`df2coco.listing`); images are converted in chunks, in this process
for small splits and by worker processes for large ones (:mod:`df2coco.worker`);
the parent consumes the chunks *in order*, numbers the annotations 1..N in
(image id, item number) order, and streams them to disk
(:class:`df2coco.writer.CocoWriter`). At most a few chunks per worker are in
flight, so memory stays bounded whatever the split size (the file listing
itself takes a few hundred bytes per image).

Output locations are checked before any work: the output and report must not
lie inside the split, must be regular files if they exist (never a device such as
``/dev/null``, a FIFO, a socket, a symbolic link), and their folders must accept a
new file. Temporary files that killed runs left next to them are removed then
(:mod:`df2coco.leftovers`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from df2coco.annotation import AREA_MODES, AnnotationOptions
from df2coco.categories import CATEGORIES, LANDMARK_NAMES
from df2coco.errors import ConvertError, OutputError
from df2coco.geometry import UNION_AREA_IMPORTS
from df2coco.imagesize import IMAGE_EXTENSIONS
from df2coco.leftovers import remove_dead_temporary_files
from df2coco.listing import Listing, list_numbered
from df2coco.report import Problem
from df2coco.pool import ordered_results
from df2coco.worker import ImageResult, ImageTask, convert_chunk
from df2coco.writer import AtomicTextFile, CocoWriter, annotations_part, with_id

CHUNK_SIZE = 64  # images per unit of work sent to a worker
IN_FLIGHT_PER_WORKER = 3  # chunks submitted ahead per worker (bounds memory)
# Starting worker processes costs about as much as converting this many images in this
# process (forkserver start, imports, pipes; see docs/BENCHMARKS.md): each worker needs
# at least this much work, so small splits never pay for processes.
MIN_IMAGES_PER_WORKER = 2000


@dataclass
class ConvertResult:
    """Outcome of :func:`convert_split`.

    Attributes:
      out_path: the output file.
      written: True if the output was written (False only under ``strict`` with problems).
      num_images: images in the output (or that would have been, when not written).
      num_annotations: annotations in the output (same caveat).
      problem_counts: Counter keyed by ``(problem, action)``.
      report_path: the JSON Lines problem report, if one was asked for.
      has_annotations: False for a split without ``annos/`` (images and categories only).
      noise_clipped: items whose coordinates lay at most 1 px outside the image, clipped
        without counting as a problem (annotation noise).
      leftovers_removed: temporary files of earlier, killed runs to the same outputs, deleted.
    """

    out_path: Path
    written: bool
    num_images: int
    num_annotations: int
    problem_counts: Counter
    report_path: Path | None
    has_annotations: bool
    noise_clipped: int = 0
    leftovers_removed: list[Path] = field(default_factory=list)

    @property
    def num_problems(self) -> int:
        return sum(self.problem_counts.values())


def coco_categories() -> list[dict]:
    """The 13 COCO category records: official names, ``df2_name`` = the dataset's name."""
    return [{"id": c.id, "name": c.coco_name, "supercategory": "clothes", "df2_name": c.name,
             "keypoints": LANDMARK_NAMES, "skeleton": []} for c in CATEGORIES]


def resolve_split(split_dir: str | Path | None, images_dir: str | Path | None = None,
                  annos_dir: str | Path | None = None) -> tuple[Path, Path | None]:
    """The image and annotation folders of a split.

    ``images_dir``/``annos_dir`` override ``split_dir/image`` and ``split_dir/annos``.
    An explicitly given folder must exist; a missing ``split_dir/annos`` means a
    split without annotations (returned as None).

    Raises:
      ConvertError: a required folder does not exist.
    """
    if split_dir is None and images_dir is None:
        raise ConvertError("give a split folder or --images")
    if split_dir is not None and not Path(split_dir).is_dir():
        raise ConvertError(f"split folder not found: {split_dir}")
    images = Path(images_dir) if images_dir is not None else Path(split_dir) / "image"
    if not images.is_dir():
        raise ConvertError(f"image folder not found: {images}")
    if annos_dir is not None:
        annos = Path(annos_dir)
        if not annos.is_dir():
            raise ConvertError(f"annotation folder not found: {annos}")
        return images, annos
    default = Path(split_dir) / "annos" if split_dir is not None else None
    return images, default if default is not None and default.is_dir() else None


@dataclass
class SplitFiles:
    """The file numbers of a split and where each one's files are.

    Attributes:
      numbers: the file numbers to convert, sorted.
      images, annos: the listings of the image and annotation folders (annos None: no ``annos/``).
    """

    numbers: list[int]
    images: Listing
    annos: Listing | None

    def __len__(self) -> int:
        return len(self.numbers)

    def chunks(self, size: int) -> Iterator[list[ImageTask]]:
        """The tasks in number order, ``size`` at a time (made as needed, not all at once)."""
        has_annos = self.annos is not None
        for start in range(0, len(self.numbers), size):
            yield [ImageTask(n, self.images.path(n), self.annos.path(n) if has_annos else None, has_annos)
                   for n in self.numbers[start:start + size]]


def list_split(images_dir: Path, annos_dir: Path | None,
               limit: int | None = None) -> tuple[SplitFiles, list[Problem]]:
    """Every file number found in either folder, sorted.

    Returns:
      ``(files, problems)``; problems lists files whose name is not a number
      (ignored) and, for the numbers kept, files that share a number with
      another (``duplicate_number``; see :mod:`df2coco.listing` for which file
      is used). With ``limit``, only the first ``limit`` numbers are kept.
    Raises:
      ConvertError: a folder cannot be listed.
    """
    images = list_numbered(images_dir, IMAGE_EXTENSIONS)
    annos = list_numbered(annos_dir, (".json",)) if annos_dir is not None else None
    listings = [images] if annos is None else [images, annos]
    numbers = sorted(set(images.names).union(*(listing.names for listing in listings[1:])))
    if limit is not None:
        del numbers[limit:]
    problems = [p for listing in listings for p in listing.problems]
    last_kept = numbers[-1] if numbers else -1
    for listing in listings:
        for number in sorted(listing.duplicates):
            if number <= last_kept:
                problems.extend(listing.duplicates[number])
    return SplitFiles(numbers, images, annos), problems


def convert_split(split_dir: str | Path | None, out_path: str | Path, *,
                  images_dir: str | Path | None = None, annos_dir: str | Path | None = None,
                  workers: int | None = None, area_mode: str = "mask", keypoints: bool = True,
                  limit: int | None = None, strict: bool = False, report_path: str | Path | None = None,
                  force: bool = False, progress: bool = False, verify_images: bool = False) -> ConvertResult:
    """Convert a DeepFashion2 split to one COCO instances JSON file.

    Args:
      split_dir: folder holding ``image/`` and ``annos/`` (may be None if ``images_dir`` is given).
      out_path: the COCO JSON to write.
      images_dir, annos_dir: override ``split_dir/image`` and ``split_dir/annos``.
      workers: most worker processes; None or 0 = all cores; 1 = no subprocesses. Fewer are
        used when there is not enough work (see ``MIN_IMAGES_PER_WORKER``).
      area_mode: ``"mask"`` (union of the polygons, pixels) or ``"bbox"`` (w x h).
      keypoints: write ``keypoints`` and ``num_keypoints``.
      limit: convert only the first ``limit`` file numbers.
      strict: if any problem is found, write no output (the report is still written).
      report_path: write every problem as JSON Lines here.
      force: replace existing output/report files (regular files only). Without it, an output
        that another process creates during the run is not replaced either (OutputError).
      progress: show a tqdm progress bar on stderr.
      verify_images: decode every image fully (truncated files become ``unreadable_image``).
    Returns:
      A :class:`ConvertResult`.
    Raises:
      ConvertError: bad usage (missing folder, existing output without ``force``, output
        inside the split or in a folder that cannot be written, bad option value).
        Raised before any work; nothing is written in that case.
      OutputError: writing failed during the run (disk full, ...). Nothing is left behind.
    """
    out_path = Path(out_path)
    report_path = Path(report_path) if report_path is not None else None
    _check_options(out_path, report_path, area_mode, limit, workers, force)
    images, annos = resolve_split(split_dir, images_dir, annos_dir)
    _check_outside_split(out_path, report_path, [Path(d) for d in (split_dir, images, annos) if d is not None])
    leftovers = [removed for path in (out_path, annotations_part(out_path), report_path) if path is not None
                 for removed in remove_dead_temporary_files(path)]
    options = AnnotationOptions(area_mode=area_mode, keypoints=keypoints and annos is not None,
                                verify_images=verify_images)
    info = {"description": "DeepFashion2 annotations in COCO format, written by df2coco",
            "area": area_mode, "keypoints": options.keypoints, "has_annotations": annos is not None}
    counts = Counter()
    n_images = n_anns = noise_clipped = 0
    with _open_outputs(out_path, report_path, info, replace=force) as (coco, report):
        files, problems = list_split(images, annos, limit)
        _log(problems, counts, report)
        # closing(): if writing fails or a signal arrives, the workers are stopped at once
        with contextlib.closing(_results(files, options, _worker_count(workers, len(files)), progress)) as results:
            for result in results:
                _log(result.problems, counts, report)
                noise_clipped += result.noise_clipped
                if result.image_json is None:
                    continue
                coco.add_image(result.image_json)
                n_images += 1
                for ann_json in result.annotation_jsons:
                    n_anns += 1
                    coco.add_annotation(with_id(ann_json, n_anns))
        written = not (strict and counts)
        if written:
            coco.commit()
        if report is not None:
            try:
                report.commit()
            except OutputError:
                if written and not force:  # the output did not exist before: a failed run leaves nothing
                    out_path.unlink(missing_ok=True)
                raise
    return ConvertResult(out_path, written, n_images, n_anns, counts, report_path, annos is not None, noise_clipped,
                         leftovers)


# OS errors that mean the user gave a path we may not write to (bad usage, exit 2), not a failed job.
_BAD_PATH_ERRNOS = frozenset((errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOENT))


@contextlib.contextmanager
def _open_outputs(out_path: Path, report_path: Path | None, info: dict, replace: bool):
    """The output writer and the report file (or None), opened before any work.

    Creating their temporary files is the writability check: a folder that is
    read-only or not ours fails here, as bad usage, before the split is read.
    ``replace``: commits replace existing files (False: they fail if the file exists by then).
    """
    with _bad_path_is_usage_error():
        coco = CocoWriter(out_path, info, coco_categories(), replace=replace)
    with coco:
        with _bad_path_is_usage_error():
            report = AtomicTextFile(report_path, replace=replace) if report_path is not None else None
        with report if report is not None else contextlib.nullcontext():
            yield coco, report


@contextlib.contextmanager
def _bad_path_is_usage_error():
    """An output path we may not write to (read-only, permission denied, ...) is a ConvertError."""
    try:
        yield
    except OutputError as exc:
        if getattr(exc.__cause__, "errno", None) in _BAD_PATH_ERRNOS:
            raise ConvertError(str(exc)) from exc
        raise


def _check_outside_split(out_path: Path, report_path: Path | None, split_folders: list[Path]) -> None:
    """Refuse outputs inside the split: the split is input only, and never written to."""
    folders = [folder.resolve() for folder in split_folders]
    for path in (out_path, report_path):
        if path is None:
            continue
        where = path.resolve().parent
        for folder in folders:
            if where == folder or folder in where.parents:
                raise ConvertError(f"{path} is inside the split folder {folder}: write it elsewhere")


def _check_options(out_path: Path, report_path: Path | None, area_mode: str, limit, workers, force: bool) -> None:
    if area_mode not in AREA_MODES:
        raise ConvertError(f"area mode must be one of {', '.join(AREA_MODES)}, not {area_mode!r}")
    if limit is not None and limit < 1:
        raise ConvertError(f"limit must be at least 1, not {limit}")
    if workers is not None and workers < 0:
        raise ConvertError(f"workers must be 0 (all cores) or more, not {workers}")
    for path in (out_path, report_path):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise ConvertError(f"output folder not found: {path.parent}")
        if path.is_dir():
            raise ConvertError(f"output is a folder: {path}")
        kind = _non_regular_kind(path)
        if kind is not None:
            raise ConvertError(f"{path} is {kind}, not a regular file; give a file path")
        if path.exists() and not force:
            raise ConvertError(f"output exists: {path} (use --force to replace it)")
    if report_path is not None and report_path.resolve() == out_path.resolve():
        raise ConvertError("the report and the output must be different files")


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def _non_regular_kind(path: Path) -> str | None:
    """What ``path`` is if it exists and is not a regular file or a folder (``"a FIFO"``), else None.

    A symbolic link counts even if it points to a regular file: renaming over it would replace the
    link, not its target (``/dev/stdout`` is one).
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return next((kind for is_kind, kind in _KINDS if is_kind(mode)), None)


def _log(problems: list[Problem], counts: Counter, report: AtomicTextFile | None) -> None:
    for problem in problems:
        counts[(problem.problem, problem.action)] += 1
        if report is not None:
            report.write(problem.to_json() + "\n")


def _worker_count(workers: int | None, num_tasks: int) -> int:
    """Worker processes to use: as asked (0/None = all cores), but each needs ``MIN_IMAGES_PER_WORKER``."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = available if not workers else workers
    return max(1, min(wanted, num_tasks // MIN_IMAGES_PER_WORKER))


def _results(files: SplitFiles, options: AnnotationOptions, workers: int,
             progress: bool) -> Iterator[ImageResult]:
    """Per-image results in number order, computed in-process or by worker processes."""
    chunks = files.chunks(CHUNK_SIZE)
    if not progress:
        for chunk_results in _chunk_results(chunks, options, workers):
            yield from chunk_results
        return
    from tqdm import tqdm

    with tqdm(total=len(files), unit="img", file=sys.stderr, desc="convert") as bar:
        for chunk_results in _chunk_results(chunks, options, workers):
            yield from chunk_results
            bar.update(len(chunk_results))


def _chunk_results(chunks: Iterator[list[ImageTask]], options: AnnotationOptions,
                   workers: int) -> Iterator[list[ImageResult]]:
    """Chunk results in order, from this process or from ``workers`` worker processes."""
    if workers == 1:
        for chunk in chunks:
            yield convert_chunk(chunk, options)
        return
    yield from ordered_results(convert_chunk, chunks, (options,), workers, in_flight=IN_FLIGHT_PER_WORKER,
                               preload=("df2coco.worker", *UNION_AREA_IMPORTS))
