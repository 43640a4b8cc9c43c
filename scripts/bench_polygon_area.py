"""Mask area per item: df2coco's C module against pycocotools (frPyObjects + merge + area).

Generates a synthetic split (default 1,000 images), converts it with ``--area bbox`` to get the
clipped polygons and image sizes of every item, then times both ways of counting each item's
mask pixels over all items, alternating the two ``--repeat`` times (median reported), and
checks that they agree on every item. Reports the load average before and after.

    python3 scripts/bench_polygon_area.py [--images 1000] [--repeat 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import df2coco._polygon_area as polygon_area  # noqa: E402
from df2coco.convert import convert_split  # noqa: E402
from df2coco.geometry import union_area_pycocotools  # noqa: E402
from df2coco.synthetic import generate_split  # noqa: E402


def _items(images: int) -> list[tuple[list, int, int]]:
    """(polygons, width, height) of every annotation of a generated split."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_split(Path(tmp) / "split", images, seed=0, workers=2)
        convert_split(Path(tmp) / "split", Path(tmp) / "coco.json", area_mode="bbox")
        coco = json.loads((Path(tmp) / "coco.json").read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    return [(ann["segmentation"], *sizes[ann["image_id"]]) for ann in coco["annotations"]]


def _seconds(function, items) -> float:
    start = time.perf_counter()
    for polygons, width, height in items:
        function(polygons, width, height)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()
    items = _items(args.images)
    disagree = sum(polygon_area.union_area(*item) != union_area_pycocotools(*item) for item in items)
    times = {"c": [], "pycocotools": []}
    for _ in range(args.repeat):
        times["c"].append(_seconds(polygon_area.union_area, items))
        times["pycocotools"].append(_seconds(union_area_pycocotools, items))
    per_item = {name: statistics.median(values) / len(items) * 1e6 for name, values in times.items()}
    polygons = sum(len(item[0]) for item in items)
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "items": len(items), "polygons_per_item": round(polygons / len(items), 2),
        "vertices_per_polygon": round(sum(len(p) // 2 for item in items for p in item[0]) / polygons, 1),
        "us_per_item": {name: round(value, 2) for name, value in per_item.items()},
        "speedup": round(per_item["pycocotools"] / per_item["c"], 1),
        "items_that_disagree": disagree,
        "load_before": load_before, "load_after": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
