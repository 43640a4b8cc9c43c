"""Benchmark of ``mrcnn.eval.coco_eval``: time to score results on a synthetic ground truth.

    python3 scripts/bench_evaluate.py --images 2000

Builds a ground truth of N images (640 x 480, 1-3 polygon garments each with
random DeepFashion2 attributes) and results derived from it (jittered copies,
some missed, some false positives, RLE masks), then times: pycocotools called
directly (the baseline), COCO metrics (bbox + segm + per-category table +
matterport's mAP@0.5), the same with ``--by`` all five attributes, and
matterport's mAP@0.5 alone. Prints one line per measurement.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrcnn import evaluation as ev  # noqa: E402

HEIGHT, WIDTH = 480, 640


def polygon(rng: np.random.Generator) -> list[float]:
    """A random 12-gon around a random centre, as a flat [x1, y1, ...] list inside the image."""
    cy, cx = rng.uniform(60, HEIGHT - 60), rng.uniform(60, WIDTH - 60)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radii = rng.uniform(20, 150, 12)
    xs = np.clip(cx + radii * np.cos(angles), 0, WIDTH)
    ys = np.clip(cy + radii * np.sin(angles), 0, HEIGHT)
    return np.stack([xs, ys], 1).ravel().round(1).tolist()


def build(num_images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """(ground-truth dict, result records)."""
    rng = np.random.default_rng(seed)
    images, anns, records = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": WIDTH, "height": HEIGHT,
                       "source": "user" if rng.random() < 0.6 else "shop"})
        for _ in range(rng.integers(1, 4)):
            poly = polygon(rng)
            rle = mask_utils.frPyObjects([poly], HEIGHT, WIDTH)[0]
            category = int(rng.integers(1, 14))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": category,
                         "segmentation": [poly], "bbox": mask_utils.toBbox(rle).tolist(),
                         "area": float(mask_utils.area(rle)), "iscrowd": 0,
                         **{a: int(rng.integers(1, 4)) for a in ev.ANNOTATION_ATTRIBUTES}})
            if rng.random() < 0.85:  # detected, jittered
                shift = rng.normal(0, 6, 2)
                moved = (np.array(poly).reshape(-1, 2) + shift).clip(0, [WIDTH, HEIGHT]).ravel().tolist()
                records.append(result(image_id, category if rng.random() < 0.9 else int(rng.integers(1, 14)),
                                      moved, rng.uniform(0.3, 1.0)))
        for _ in range(rng.integers(0, 3)):  # false positives
            records.append(result(image_id, int(rng.integers(1, 14)), polygon(rng), rng.uniform(0.0, 0.6)))
    cats = [{"id": k, "name": f"class_{k}"} for k in range(1, 14)]
    return {"images": images, "annotations": anns, "categories": cats}, records


def result(image_id: int, category: int, poly: list[float], score: float) -> dict:
    rle = mask_utils.frPyObjects([poly], HEIGHT, WIDTH)[0]
    return {"image_id": image_id, "category_id": category, "bbox": mask_utils.toBbox(rle).tolist(),
            "score": float(score), "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}


def pycocotools_direct(gt_dict: dict, records: list[dict]) -> list[float]:
    """The baseline: what a user would run by hand. Returns [bbox AP, segm AP]."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    aps = []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dict)
        gt.createIndex()
        for iou_type in ("bbox", "segm"):
            evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(records)), iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            aps.append(evaluator.stats[0])
    return aps


def timed(label: str, fn):
    start, cpu_start = time.perf_counter(), time.process_time()
    value = fn()
    print(f"{label:<46} wall {time.perf_counter() - start:7.2f} s   cpu {time.process_time() - cpu_start:7.2f} s",
          flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    gt_dict, records = build(args.images)
    print(f"{args.images} images, {len(gt_dict['annotations'])} garments, {len(records)} detections")
    baseline = timed("pycocotools directly (loadRes + bbox + segm)", lambda: pycocotools_direct(gt_dict, records))
    gt = ev.ground_truth_from_dict(gt_dict)
    plain = timed("evaluate (bbox + segm + per category + mAP50)", lambda: ev.evaluate(gt, records))
    assert abs(plain["bbox"]["AP"] - baseline[0]) < 1e-12, "bbox AP differs from pycocotools"
    timed("evaluate --by all five attributes", lambda: ev.evaluate(gt, records, by=list(ev.ATTRIBUTES)))
    timed("matterport_map50 alone", lambda: ev.matterport_map50(gt, records))
    print(f"segm AP {plain['segm']['AP']:.3f}, bbox AP {plain['bbox']['AP']:.3f}, "
          f"matterport mAP50 {plain['matterport']['mAP50']:.3f}")


if __name__ == "__main__":
    main()
