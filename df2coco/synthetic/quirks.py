"""Deliberate defects ("quirks") injected into synthetic annotation and image files.

Each quirk is named as in :mod:`df2coco.problems`, so a converter test can check
that every injected quirk is found and counted. The rules that make the counts
unambiguous (see docs/usage_synth.md for the exact form of each quirk):

* file-level, exclusive (nothing else is injected into that image):
  ``unreadable_file`` (the JSON text is cut in half), ``missing_image`` (annos
  file without its image), ``unreadable_image`` (the .jpg holds random bytes);
* file-level, combinable: ``float_coords`` (every coordinate written as a float;
  values never grow, so no coordinate leaves the image because of it),
  ``gap_item_keys`` (items renumbered item1, item3, ... with a hole) and
  ``duplicate_number`` (the image also written as ``NNNNNN.png``: two image
  files with one number);
* item-level, at most one per item, recorded with the final item key:
  ``bad_field`` (``category_id`` removed), ``unknown_category`` (id 0 or 14),
  ``no_polygon`` (segmentation []), ``short_polygon`` (an extra polygon of 2
  points appended), ``odd_polygon`` (an extra polygon of odd length appended),
  ``few_landmarks`` (trailing triples dropped), ``out_of_image`` (bbox and one
  outline vertex pushed 5-40 px beyond one image edge).
  An item keeps its valid outline polygon except under ``no_polygon``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from df2coco import problems as P

EXCLUSIVE = (P.UNREADABLE_FILE, P.MISSING_IMAGE, P.UNREADABLE_IMAGE)
FILE_LEVEL = (P.FLOAT_COORDS, P.GAP_ITEM_KEYS, P.DUPLICATE_NUMBER)
ITEM_LEVEL = (P.BAD_FIELD, P.UNKNOWN_CATEGORY, P.NO_POLYGON, P.SHORT_POLYGON, P.ODD_POLYGON, P.FEW_LANDMARKS,
              P.OUT_OF_IMAGE)
ALL_QUIRKS = EXCLUSIVE + FILE_LEVEL + ITEM_LEVEL
SECOND_QUIRK_RATE = 0.35  # chance that a quirky image gets a second, different quirk


@dataclass
class QuirkPlan:
    """What to do to one image's files.

    records: [(item key or None, quirk name)], the final item keys.
    """
    records: list[tuple[str | None, str]] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return any(q == name for _, q in self.records)


def _item_keys(annotation: dict) -> list[str]:
    return sorted((k for k in annotation if k.startswith("item")), key=lambda k: int(k[4:]))


def choose_quirks(rng: np.random.Generator, num_items: int, with_annos: bool) -> list[str]:
    """Names of the quirks for one quirky image (one, sometimes two)."""
    if not with_annos:
        return [P.UNREADABLE_IMAGE]
    first = ALL_QUIRKS[int(rng.integers(len(ALL_QUIRKS)))]
    if first in EXCLUSIVE:
        return [first]
    chosen = [first]
    if rng.random() < SECOND_QUIRK_RATE:
        rest = [q for q in FILE_LEVEL + ITEM_LEVEL if q != first]
        chosen.append(rest[int(rng.integers(len(rest)))])
    # Item-level quirks go to distinct items; drop the extras of a one-item image.
    item_level = [q for q in chosen if q in ITEM_LEVEL]
    if len(item_level) > num_items:
        chosen.remove(item_level[-1])
    return chosen


def _renumber_with_gap(annotation: dict, rng: np.random.Generator) -> dict:
    """item1..itemN renamed so that one number is skipped (item1, item3, ...), key order kept."""
    keys = _item_keys(annotation)
    hole = int(rng.integers(1, len(keys) + 1))  # the number left out
    new_names = {k: f"item{n if n < hole else n + 1}" for n, k in enumerate(keys, start=1)}
    return {new_names.get(k, k): v for k, v in annotation.items()}


def _push_out_of_image(item: dict, width: int, height: int, rng: np.random.Generator) -> None:
    """Move the bbox edge and the outline vertex nearest one image side 5-40 px beyond that side."""
    outline = item["segmentation"][0]
    xs, ys = outline[0:-2:2], outline[1:-2:2]
    d = int(rng.integers(5, 41))
    side = int(rng.integers(4))
    if side == 0:  # left
        j, coord, value, box_i = int(np.argmin(xs)), 0, -d, 0
    elif side == 1:  # top
        j, coord, value, box_i = int(np.argmin(ys)), 1, -d, 1
    elif side == 2:  # right
        j, coord, value, box_i = int(np.argmax(xs)), 0, width - 1 + d, 2
    else:  # bottom
        j, coord, value, box_i = int(np.argmax(ys)), 1, height - 1 + d, 3
    outline[2 * j + coord] = value
    if j == 0:  # keep the polygon closed
        outline[-2 + coord] = value
    item["bounding_box"][box_i] = value


def _apply_item_quirk(name: str, item: dict, width: int, height: int, rng: np.random.Generator) -> None:
    seg = item["segmentation"]
    if name == P.BAD_FIELD:
        del item["category_id"]
    elif name == P.UNKNOWN_CATEGORY:
        item["category_id"] = int(rng.choice([0, 14]))
    elif name == P.NO_POLYGON:
        item["segmentation"] = []
    elif name == P.SHORT_POLYGON:
        seg.append(seg[0][:4])  # two points of the outline
    elif name == P.ODD_POLYGON:
        seg.append(seg[0][:-1])  # the outline without its last y
    elif name == P.FEW_LANDMARKS:
        n = len(item["landmarks"]) // 3
        keep = int(rng.integers(1, n))  # 1..n-1 triples
        item["landmarks"] = item["landmarks"][: 3 * keep]
    elif name == P.OUT_OF_IMAGE:
        _push_out_of_image(item, width, height, rng)
    else:
        raise ValueError(f"not an item-level quirk: {name}")


def _floatify(value, rng: np.random.Generator):
    """Every int in a nested list becomes a float no larger than it (and >= 0 if it was >= 0)."""
    if isinstance(value, list):
        return [_floatify(v, rng) for v in value]
    if value >= 1:
        return float(value) - float(rng.choice([0.0, 0.25, 0.5]))
    return float(value)


def _float_coords(item: dict, rng: np.random.Generator) -> None:
    for key in ("segmentation", "bounding_box"):
        if key in item:
            item[key] = _floatify(item[key], rng)
    lm = item["landmarks"]
    item["landmarks"] = [_floatify(v, rng) if i % 3 != 2 else v for i, v in enumerate(lm)]


def inject(annotation: dict, width: int, height: int, names: list[str], rng: np.random.Generator) -> QuirkPlan:
    """Apply the quirks ``names`` to ``annotation`` in place (file-level effects are left to the writer).

    Returns the plan with one record per injected quirk: (item key or None, name).
    """
    plan = QuirkPlan()
    for name in names:
        if name in EXCLUSIVE:
            plan.records.append((None, name))
    if P.GAP_ITEM_KEYS in names:
        renamed = _renumber_with_gap(annotation, rng)
        annotation.clear()
        annotation.update(renamed)
        plan.records.append((None, P.GAP_ITEM_KEYS))
    item_quirks = [q for q in names if q in ITEM_LEVEL]
    keys = _item_keys(annotation)
    targets = [keys[i] for i in rng.permutation(len(keys))[: len(item_quirks)]]
    for key, name in zip(targets, item_quirks):
        _apply_item_quirk(name, annotation[key], width, height, rng)
        plan.records.append((key, name))
    if P.FLOAT_COORDS in names:
        for key in keys:
            _float_coords(annotation[key], rng)
        plan.records.append((None, P.FLOAT_COORDS))
    if P.DUPLICATE_NUMBER in names:
        plan.records.append((None, P.DUPLICATE_NUMBER))
    return plan
