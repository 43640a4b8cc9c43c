"""Write a whole synthetic DeepFashion2 split to disk, in parallel.

Layout written (as the real dataset): ``out_dir/image/000001.jpg`` ... and, with
annotations, ``out_dir/annos/000001.json`` ..., numbered 1..N. Image ``n`` depends
only on (seed, n): any number of workers gives identical files.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from df2coco import problems as P
from df2coco.synthetic import quirks
from df2coco.synthetic.annotation import make_image_record

JPEG_QUALITY = 90
CHUNK = 32  # most images per task sent to a worker


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
    quirk_records: list[tuple[str, str | None, str]] = field(default_factory=list)
    items_per_category: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    out_dir: str
    seed: int
    quirk_rate: float
    min_side: int
    max_side: int
    with_annos: bool


def _item_categories(annotation: dict) -> list[int]:
    return [v["category_id"] for k, v in annotation.items() if k.startswith("item")]


def _write_image(path: Path, image: np.ndarray, corrupt: bool, rng: np.random.Generator) -> None:
    if corrupt:  # bytes that no image reader accepts (no JPEG/PNG signature)
        path.write_bytes(b"NOT-AN-IMAGE" + rng.bytes(int(rng.integers(16, 256))))
        return
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())


def _one_image(job: _Job, index: int) -> tuple[list[int], list[tuple[str, str | None, str]]]:
    """Generate and write image ``index``; returns (drawn category ids, quirk records)."""
    image, annotation = make_image_record(job.seed, index, min_side=job.min_side, max_side=job.max_side)
    categories = _item_categories(annotation)
    stem = f"{index:06d}"
    rng_q = np.random.default_rng([job.seed, index, 1])
    names: list[str] = []
    if job.quirk_rate > 0 and rng_q.random() < job.quirk_rate:
        names = quirks.choose_quirks(rng_q, len(categories), job.with_annos)
    height, width = image.shape[:2]
    plan = quirks.inject(annotation, width, height, names, rng_q) if job.with_annos else quirks.QuirkPlan(
        [(None, n) for n in names])
    out = Path(job.out_dir)
    if not plan.has(P.MISSING_IMAGE):
        _write_image(out / "image" / f"{stem}.jpg", image, plan.has(P.UNREADABLE_IMAGE), rng_q)
    if job.with_annos:
        text = json.dumps(annotation)
        if plan.has(P.UNREADABLE_FILE):
            text = text[: len(text) // 2]
        (out / "annos" / f"{stem}.json").write_text(text, encoding="utf-8")
    return categories, [(stem, key, name) for key, name in plan.records]


def _run_chunk(args: tuple[_Job, int, int]) -> tuple[int, list[int], list[tuple[str, str | None, str]]]:
    job, start, stop = args
    cats, records = [], []
    for index in range(start, stop):
        c, r = _one_image(job, index)
        cats += c
        records += r
    return stop - start, cats, records


def _chunks(job: _Job, num_images: int, workers: int):
    """(job, first index, stop index) tasks; small splits get small chunks so every worker has work."""
    size = max(1, min(CHUNK, -(-num_images // (4 * workers))))
    for start in range(1, num_images + 1, size):
        yield job, start, min(start + size, num_images + 1)


def _pool_context():
    """fork when safe (fast, works from any script); spawn once TensorFlow's threads are running."""
    if "tensorflow" in sys.modules or "fork" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    return mp.get_context("fork")


def _init_worker() -> None:
    cv2.setNumThreads(1)  # parallel over processes already


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="synth", disable=not enabled, dynamic_ncols=True)


def generate_split(out_dir, num_images: int, seed: int = 0, *, quirk_rate: float = 0.0, min_side: int = 160,
                   max_side: int = 640, workers: int | None = None, progress: bool = False,
                   with_annos: bool = True) -> SynthSummary:
    """Write a synthetic DeepFashion2 split of ``num_images`` images into ``out_dir``.

    out_dir: created if needed; existing files with the same names are overwritten,
        others are left alone (use an empty folder).
    quirk_rate: probability, per image, of injecting one or two quirks (see quirks.py).
    min_side, max_side: image height and width are drawn independently in [min_side, max_side] px.
    workers: processes (None = all cores); 1 generates in this process.
    with_annos: False writes images only (like the test split); quirks are then only unreadable images.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    if not 0.0 <= quirk_rate <= 1.0:
        raise ValueError(f"quirk_rate must be in [0, 1], got {quirk_rate}")
    if not 16 <= min_side <= max_side:
        raise ValueError(f"need 16 <= min_side <= max_side, got {min_side}, {max_side}")
    out = Path(out_dir)
    (out / "image").mkdir(parents=True, exist_ok=True)
    if with_annos:
        (out / "annos").mkdir(parents=True, exist_ok=True)
    job = _Job(str(out), int(seed), float(quirk_rate), int(min_side), int(max_side), bool(with_annos))
    workers = max(1, min(workers or os.cpu_count() or 1, num_images))
    cats: Counter = Counter()
    records: list[tuple[str, str | None, str]] = []
    with _progress_bar(num_images, progress) as bar:
        if workers == 1:
            results = map(_run_chunk, _chunks(job, num_images, workers))
            for n, c, r in results:
                cats.update(c)
                records += r
                bar.update(n)
        else:
            with _pool_context().Pool(workers, initializer=_init_worker) as pool:
                for n, c, r in pool.imap_unordered(_run_chunk, _chunks(job, num_images, workers)):
                    cats.update(c)
                    records += r
                    bar.update(n)
    records.sort(key=lambda rec: (rec[0], rec[1] or "", rec[2]))
    return SynthSummary(
        num_images=num_images,
        num_items=sum(cats.values()),
        quirks=dict(sorted(Counter(name for _, _, name in records).items())),
        quirk_records=records,
        items_per_category=dict(sorted(cats.items())),
    )
