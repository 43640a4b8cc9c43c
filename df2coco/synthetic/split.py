"""Write a whole synthetic DeepFashion2 split to disk, in parallel.

Layout written (as the real dataset): ``out_dir/image/000001.jpg`` ... and, with
annotations, ``out_dir/annos/000001.json`` ..., numbered 1..N. Image ``n`` depends
only on (seed, n): any number of workers gives identical files.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from df2coco.synthetic.files import QuirkRecord, SplitJob, write_chunk
from df2coco.synthetic.workers import ChunkResult, chunk_bounds, run_in_workers

CHUNK = 32  # most images per chunk (the unit of work and of progress updates)
# What generate_split writes: folder name -> the names of its files (quirks add NNNNNN.png images).
SPLIT_FILES = {"image": re.compile(r"\d+\.(jpg|png)"), "annos": re.compile(r"\d+\.json")}


@dataclass
class SynthSummary:
    """What ``generate_split`` wrote.

    num_images: N, the file numbers 1..N (image files = N minus the ``missing_image`` quirks).
    num_items: items drawn in the images, i.e. item entries written to annotation
        files, counting the items of quirky files too (also of truncated ones).
    quirks: injected quirk name -> count (only names that occurred).
    quirk_records: one (file stem "000007", item key "item2" or None for file-level, quirk name)
        per injected quirk, sorted by file stem.
    items_per_category: category id -> number of items (quirks ignored: the drawn category).
    """
    num_images: int
    num_items: int
    quirks: dict[str, int] = field(default_factory=dict)
    quirk_records: list[QuirkRecord] = field(default_factory=list)
    items_per_category: dict[int, int] = field(default_factory=dict)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="synth", disable=not enabled, dynamic_ncols=True)


def _check_arguments(num_images: int, quirk_rate: float, min_side: int, max_side: int) -> None:
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    if not 0.0 <= quirk_rate <= 1.0:
        raise ValueError(f"quirk_rate must be in [0, 1], got {quirk_rate}")
    if not 16 <= min_side <= max_side:
        raise ValueError(f"need 16 <= min_side <= max_side, got {min_side}, {max_side}")


def generate_split(out_dir, num_images: int, seed: int = 0, *, quirk_rate: float = 0.0, min_side: int = 160,
                   max_side: int = 640, workers: int | None = None, progress: bool = False,
                   with_annos: bool = True) -> SynthSummary:
    """Write a synthetic DeepFashion2 split of ``num_images`` images into ``out_dir``.

    out_dir: created if needed; existing files with the same names are overwritten,
        others are left alone (use an empty folder).
    quirk_rate: probability, per image, of injecting one or two quirks (see quirks.py).
    min_side, max_side: image height and width in [min_side, max_side] px.
    workers: processes (None = all cores); 1 generates in this process.
    progress: show a tqdm progress bar on stderr.
    with_annos: False writes images only (like the test split); quirks are then only unreadable images.
    """
    _check_arguments(num_images, quirk_rate, min_side, max_side)
    out = Path(out_dir)
    (out / "image").mkdir(parents=True, exist_ok=True)
    if with_annos:
        (out / "annos").mkdir(parents=True, exist_ok=True)
    job = SplitJob(str(out.resolve()), int(seed), float(quirk_rate), int(min_side), int(max_side), bool(with_annos))
    workers = max(1, min(workers or os.cpu_count() or 1, num_images))
    chunk = max(1, min(CHUNK, -(-num_images // (4 * workers))))  # small splits: every worker gets work
    cats: Counter = Counter()
    records: list[QuirkRecord] = []
    with _progress_bar(num_images, progress) as bar:

        def collect(result: ChunkResult) -> None:
            n, chunk_cats, chunk_records = result
            cats.update(chunk_cats)
            records.extend(chunk_records)
            bar.update(n)

        if workers == 1:
            for start, stop in chunk_bounds(num_images, chunk):
                collect(write_chunk(job, start, stop))
        else:
            run_in_workers(job, num_images, chunk, workers, collect)
    records.sort(key=lambda rec: (rec[0], rec[1] or "", rec[2]))
    return SynthSummary(
        num_images=num_images,
        num_items=sum(cats.values()),
        quirks=dict(sorted(Counter(name for _, _, name in records).items())),
        quirk_records=records,
        items_per_category=dict(sorted(cats.items())),
    )


def foreign_entry(folder: Path) -> Path | None:
    """The first entry of ``folder`` that a split as :func:`generate_split` writes could not hold, or None.

    A split holds nothing but the folders ``image/`` (files ``NNNNNN.jpg`` or ``.png``) and ``annos/``
    (files ``NNNNNN.json``), regular files and folders only (no symbolic link). An empty folder has no
    foreign entry. This is what ``fseg synth --force`` may replace: an earlier split, never a folder
    holding anything else (a home or project folder, a split with notes added).
    Raises:
      OSError: a folder cannot be listed.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            names = SPLIT_FILES.get(entry.name)
            if names is None or not entry.is_dir(follow_symlinks=False):
                return Path(entry.path)
            with os.scandir(entry.path) as files:
                for file in files:
                    if not (names.fullmatch(file.name) and file.is_file(follow_symlinks=False)):
                        return Path(file.path)
    return None
