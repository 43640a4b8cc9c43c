"""The 13 DeepFashion2 garment categories and their slices of the 294-landmark table.

DeepFashion2 annotates each category with its own landmark set; COCO-style files
list all 294 landmarks for every category and fill only the category's slice.
The dataset's own names (``short sleeve top``) differ from the names the
official converter writes (``short_sleeved_shirt``); both are kept here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    id: int  # 1..13, DeepFashion2's category_id
    name: str  # the dataset's category_name, e.g. "short sleeve top"
    coco_name: str  # the official converter's name, e.g. "short_sleeved_shirt"
    num_landmarks: int
    landmark_start: int  # 0-based index of the first landmark in the 294-table

    @property
    def landmark_slice(self) -> slice:
        """Slice of the 294 landmarks (0-based) that belongs to this category."""
        return slice(self.landmark_start, self.landmark_start + self.num_landmarks)


_TABLE = [
    # id, dataset name, official COCO name, landmarks
    (1, "short sleeve top", "short_sleeved_shirt", 25),
    (2, "long sleeve top", "long_sleeved_shirt", 33),
    (3, "short sleeve outwear", "short_sleeved_outwear", 31),
    (4, "long sleeve outwear", "long_sleeved_outwear", 39),
    (5, "vest", "vest", 15),
    (6, "sling", "sling", 15),
    (7, "shorts", "shorts", 10),
    (8, "trousers", "trousers", 14),
    (9, "skirt", "skirt", 8),
    (10, "short sleeve dress", "short_sleeved_dress", 29),
    (11, "long sleeve dress", "long_sleeved_dress", 37),
    (12, "vest dress", "vest_dress", 19),
    (13, "sling dress", "sling_dress", 19),
]


def _build() -> tuple[Category, ...]:
    cats, start = [], 0
    for cid, name, coco_name, n in _TABLE:
        cats.append(Category(cid, name, coco_name, n, start))
        start += n
    return tuple(cats)


CATEGORIES: tuple[Category, ...] = _build()
CATEGORY_BY_ID: dict[int, Category] = {c.id: c for c in CATEGORIES}
NUM_CATEGORIES = len(CATEGORIES)  # 13
NUM_LANDMARKS = sum(c.num_landmarks for c in CATEGORIES)  # 294
LANDMARK_NAMES = [str(i) for i in range(1, NUM_LANDMARKS + 1)]  # "1".."294"

assert NUM_LANDMARKS == 294
