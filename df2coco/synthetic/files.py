"""Write the files of one synthetic image (and of a chunk of images): JPEG, annotation JSON, quirks.

Image ``n`` of a split depends only on (seed, n), so chunks can be written by any
process in any order. The quirk draws use their own random stream
``default_rng([seed, n, 1])``, separate from the picture's ``[seed, n, 0]``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from df2coco import problems as P
from df2coco.synthetic import quirks
from df2coco.synthetic.annotation import make_image_record

JPEG_QUALITY = 90

# (file stem like "000007", item key like "item2" or None for the whole file, quirk name)
QuirkRecord = tuple[str, Optional[str], str]


@dataclass(frozen=True)
class SplitJob:
    """Everything a worker needs to write images of a split (JSON-serialisable fields)."""
    out_dir: str
    seed: int
    quirk_rate: float
    min_side: int
    max_side: int
    with_annos: bool


def _item_categories(annotation: dict) -> list[int]:
    """Category ids of the items, before quirks change or remove them."""
    return [v["category_id"] for k, v in annotation.items() if k.startswith("item")]


def _write_image(path: Path, image: np.ndarray, corrupt: bool, rng: np.random.Generator) -> None:
    """JPEG of an RGB uint8 [H, W, 3] image, or, if ``corrupt``, random bytes under the .jpg name."""
    if corrupt:  # bytes that no image reader accepts (no JPEG/PNG signature)
        path.write_bytes(b"NOT-AN-IMAGE" + rng.bytes(int(rng.integers(16, 256))))
        return
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())


def write_image(job: SplitJob, index: int) -> tuple[list[int], list[QuirkRecord]]:
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
    if plan.has(P.DUPLICATE_NUMBER):  # a second image file with the same number
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
        (out / "image" / f"{stem}.png").write_bytes(buf.tobytes())
    if job.with_annos:
        text = json.dumps(annotation)
        if plan.has(P.UNREADABLE_FILE):
            text = text[: len(text) // 2]
        (out / "annos" / f"{stem}.json").write_text(text, encoding="utf-8")
    return categories, [(stem, key, name) for key, name in plan.records]


def write_chunk(job: SplitJob, start: int, stop: int) -> tuple[int, list[int], list[QuirkRecord]]:
    """Write images start..stop-1; returns (image count, drawn category ids, quirk records)."""
    cats: list[int] = []
    records: list[QuirkRecord] = []
    for index in range(start, stop):
        c, r = write_image(job, index)
        cats += c
        records += r
    return stop - start, cats, records


