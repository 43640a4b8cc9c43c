"""Problems found in a split: one record each, counted, and optionally logged.

A *problem* is something wrong in the source data (see :mod:`df2coco.problems`
for the names). Each one is either repaired (coordinates clipped to the image)
or the broken part is skipped (a polygon, an item, an image), and the *action*
says which. Problems are never silent: the converter counts every record, can
write them as JSON Lines (``--report FILE``), and prints a summary table.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable

# What was done about a problem.
SKIPPED_IMAGE = "skipped_image"  # the image and all its items are left out of the output
SKIPPED_ITEM = "skipped_item"  # the item gets no annotation; the image is kept
DROPPED_POLYGON = "dropped_polygon"  # the polygon is left out of the item's segmentation
CLIPPED = "clipped"  # coordinates clipped to the image rectangle
CLEARED_LANDMARKS = "cleared_landmarks"  # all the item's keypoints written as unlabeled (0, 0, 0)
BBOX_FROM_POLYGONS = "bbox_from_polygons"  # bbox replaced by the extent of the item's polygons
SET_NULL = "set_null"  # the attribute is written as null
IGNORED = "ignored"  # an unexpected key or file is ignored


@dataclass(frozen=True)
class Problem:
    """One problem in the source data.

    Attributes:
      file: path of the file concerned (annotation JSON or image), as a string.
      item: the item key (``"item2"``) or None for a file-level problem.
      problem: one of ``df2coco.problems.PROBLEMS``.
      action: what was done, one of the constants in this module.
      detail: a short human-readable explanation.
    """

    file: str
    item: str | None
    problem: str
    action: str
    detail: str

    def to_json(self) -> str:
        """One JSON Lines record: ``{"file", "item", "problem", "action", "detail"}``."""
        return json.dumps(asdict(self), ensure_ascii=False)


def count_problems(problems: Iterable[Problem]) -> Counter:
    """Counter keyed by ``(problem, action)``."""
    return Counter((p.problem, p.action) for p in problems)


def format_summary(counts: Counter) -> str:
    """A plain-text table of problem counts, one row per (problem, action).

    Args:
      counts: Counter keyed by ``(problem, action)`` as from :func:`count_problems`.
    Returns:
      The table as a multi-line string, or ``"No problems found."``.
    """
    if not counts:
        return "No problems found."
    rows = sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    width_p = max(len("problem"), *(len(p) for (p, _), _ in rows))
    width_a = max(len("action"), *(len(a) for (_, a), _ in rows))
    lines = [f"{'problem':<{width_p}}  {'action':<{width_a}}  {'count':>7}"]
    lines.append(f"{'-' * width_p}  {'-' * width_a}  {'-' * 7}")
    for (problem, action), n in rows:
        lines.append(f"{problem:<{width_p}}  {action:<{width_a}}  {n:>7}")
    lines.append(f"{'total':<{width_p}}  {'':<{width_a}}  {sum(counts.values()):>7}")
    return "\n".join(lines)
