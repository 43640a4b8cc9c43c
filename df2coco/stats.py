"""Summary statistics of a COCO instances file (as written by ``fseg convert``).

The file is read with :func:`json.load`, but an ``object_hook`` drops the large
per-annotation lists (``segmentation``, ``keypoints``) as soon as each
annotation is decoded: peak memory is about the file's text plus the small
records, not the full decoded object tree (see docs/BENCHMARKS.md).
Works on any COCO instances file; the DeepFashion2 attributes are counted
when present.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from df2coco.errors import StatsError

_DROPPED = ("segmentation", "keypoints")
ANNOTATION_ATTRIBUTES = ("scale", "occlusion", "zoom_in", "viewpoint")
IMAGE_ATTRIBUTES = ("source",)
AREA_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
COCO_SMALL, COCO_MEDIUM = 32 ** 2, 96 ** 2  # COCOeval's area range limits, pixels


def _drop_big_lists(obj: dict) -> dict:
    for key in _DROPPED:
        if key in obj:
            obj[key] = None
    return obj


def load_light(path: str | Path) -> dict:
    """The COCO file without segmentation/keypoint contents (set to None).

    Raises:
      StatsError: missing file, invalid JSON, or not a COCO instances object.
    """
    try:
        with open(path, "rb") as f:
            data = json.load(f, object_hook=_drop_big_lists)
    except OSError as exc:
        raise StatsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise StatsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise StatsError(f"{path} is not a COCO instances file (no 'images' list)")
    if not isinstance(data.get("categories", []), list) or not isinstance(data.get("annotations", []), list):
        raise StatsError(f"{path} is not a COCO instances file ('categories'/'annotations' not lists)")
    for key, id_fields in (("images", ("id",)), ("annotations", ("image_id", "category_id")),
                           ("categories", ("id",))):
        for k, record in enumerate(data.get(key, [])):
            if not isinstance(record, dict):
                raise StatsError(f"{path} is not a COCO instances file ({key}[{k}] is {record!r:.40}, "
                                 f"not an object)")
            bad = next((f for f in id_fields if not isinstance(record.get(f), (int, str, type(None)))
                        or isinstance(record.get(f), bool)), None)
            if bad is not None:
                raise StatsError(f"{path} is not a COCO instances file ({key}[{k}] has {bad} "
                                 f"{record.get(bad)!r:.40}, not an id)")
    return data


def compute_stats(path: str | Path) -> dict:
    """Statistics of a COCO instances file.

    Returns:
      A JSON-serialisable dict: ``images``, ``annotations``, ``area_field``
      (what ``area`` means, from ``info.area`` if present), ``per_category``
      (list of {id, name, instances}), ``instances_per_image`` ({count: images},
      plus min/mean/max), ``area_quantiles`` ({q: pixels}), ``area_ranges``
      (COCO small/medium/large counts), ``attributes`` ({name: {value: count}}), ``problems`` (lines about
      annotations no listed category or image owns, and ids listed twice: counted nowhere else).
    """
    data = load_light(path)
    images, anns = data["images"], data.get("annotations", [])
    categories = data.get("categories", [])
    per_cat = Counter(a.get("category_id") for a in anns)
    per_image = Counter(a.get("image_id") for a in anns)
    counts = [per_image.get(img.get("id"), 0) for img in images]
    category_ids = Counter(c.get("id") for c in categories)
    image_ids = Counter(img.get("id") for img in images)
    problems = [f"{n} annotation(s) with {what} id that is not listed in '{key}'"
                for n, what, key in ((sum(v for k, v in per_cat.items() if k not in category_ids), "a category",
                                      "categories"),
                                     (sum(v for k, v in per_image.items() if k not in image_ids), "an image",
                                      "images"))
                if n]
    problems += [f"{key} id {value!r} is listed {n} times" for key, ids in (("category", category_ids),
                                                                           ("image", image_ids))
                 for value, n in ids.items() if n > 1][:10]
    categories = _first_of_each_id(categories)  # one row per category id
    areas = sorted(a["area"] for a in anns if isinstance(a.get("area"), (int, float)))
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return {
        "images": len(images),
        "annotations": len(anns),
        "area_field": info.get("area", "unknown"),
        "per_category": [{"id": c.get("id"), "name": c.get("name"), "instances": per_cat.get(c.get("id"), 0)}
                         for c in categories],
        "instances_per_image": _per_image_summary(counts),
        "area_quantiles": {str(q): _quantile(areas, q) for q in AREA_QUANTILES} if areas else {},
        "area_ranges": _area_ranges(areas),
        "attributes": {**{name: _value_counts(anns, name) for name in ANNOTATION_ATTRIBUTES},
                       **{name: _value_counts(images, name) for name in IMAGE_ATTRIBUTES}},
        "problems": problems,
    }


def _first_of_each_id(records: list[dict]) -> list[dict]:
    """The records in order, without those whose id an earlier record has."""
    seen, first = set(), []
    for record in records:
        if record.get("id") not in seen:
            seen.add(record.get("id"))
            first.append(record)
    return first


def _per_image_summary(counts: list[int]) -> dict:
    histogram = Counter(min(n, 5) for n in counts)  # 5 = "5 or more"
    return {
        "histogram": {("5+" if k == 5 else str(k)): histogram[k] for k in sorted(histogram)},
        "min": min(counts, default=0),
        "mean": round(sum(counts) / len(counts), 3) if counts else 0.0,
        "max": max(counts, default=0),
    }


def _quantile(sorted_values: list, q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of a sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo), 2)


def _area_ranges(areas: list) -> dict:
    small = sum(1 for a in areas if a < COCO_SMALL)
    medium = sum(1 for a in areas if COCO_SMALL <= a < COCO_MEDIUM)
    return {"small": small, "medium": medium, "large": len(areas) - small - medium}


def _value_counts(records: list[dict], name: str) -> dict:
    """{value: count} of one field over the records that have it, sorted by value."""
    counts = Counter(str(r[name]) for r in records if name in r)
    return dict(sorted(counts.items()))


def format_stats(stats: dict, bar_width: int = 40) -> str:
    """The statistics as a human-readable text report with a bar per category."""
    lines = [f"images:      {stats['images']}", f"annotations: {stats['annotations']}", "", "instances per category:"]
    per_cat = stats["per_category"]
    top = max((c["instances"] for c in per_cat), default=0) or 1
    name_w = max((len(str(c["name"])) for c in per_cat), default=4)
    for c in per_cat:
        bar = "#" * round(bar_width * c["instances"] / top)
        lines.append(f"  {c['id']:>3} {str(c['name']):<{name_w}} {c['instances']:>8}  {bar}")
    ipi = stats["instances_per_image"]
    lines += ["", f"instances per image: min {ipi['min']}, mean {ipi['mean']}, max {ipi['max']}"]
    lines += [f"  {k:>3} instances: {v} images" for k, v in ipi["histogram"].items()]
    lines += ["", f"area quantiles (pixels; area = {stats['area_field']}):"]
    lines += [f"  {float(q) * 100:>5.1f}%: {v}" for q, v in stats["area_quantiles"].items()]
    r = stats["area_ranges"]
    lines.append(f"  COCO ranges: small {r['small']}, medium {r['medium']}, large {r['large']}")
    lines += ["", "attributes:"]
    for name, counts in stats["attributes"].items():
        shown = ", ".join(f"{value}: {n}" for value, n in counts.items()) or "(absent)"
        lines.append(f"  {name:<10} {shown}")
    if stats.get("problems"):
        lines += ["", "problems:"] + [f"  {line}" for line in stats["problems"]]
    return "\n".join(lines)
