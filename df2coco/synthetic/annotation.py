"""DeepFashion2 annotation dicts for a painted scene, and the user/shop pair plan.

The output follows the real per-image files (docs: shared reference
deepfashion2.md, part 1): top level ``source``, ``pair_id``, ``item1``..``itemN``;
each item has ``segmentation`` (closed integer polygons, the first the whole
outline, then sleeves or legs), ``bounding_box`` [x1, y1, x2, y2] (the outline's
extent, off by up to 1 px like real data), ``landmarks`` (x, y, v) triples,
``category_id``/``category_name``, ``style``, ``scale``, ``occlusion``,
``zoom_in`` and ``viewpoint``. Keys are in shuffled order at both levels.

Attributes are derived as follows (documented in docs/usage_synth.md):
  scale     from bbox area / image area: < 0.1 -> 1, < 0.35 -> 2, else 3;
  occlusion from the fraction hidden by later garments: < 0.05 -> 1, < 0.2 -> 2, else 3;
  zoom_in   from max(bbox width / W, bbox height / H): < 0.75 -> 1, < 0.9 -> 2, else 3;
  landmark v: 2 visible, 1 covered by a later garment, 0 (written 0, 0, 0) for ~5% at random.
"""
from __future__ import annotations

import numpy as np

from df2coco.categories import CATEGORY_BY_ID
from df2coco.synthetic import render
from df2coco.synthetic.scene import Featured, PlacedGarment, make_scene

PAIR_WINDOW = 6  # images per window of the pair plan; each window holds two pairs of 2-4 images
UNLABELED_LANDMARK_RATE = 0.05
MIN_ASPECT = 0.6  # smallest height / width (and width / height) of an image


def pair_info(seed: int, index: int) -> tuple[int, str]:
    """(pair_id, source) of image ``index`` (1-based) in a split made with ``seed``.

    Consecutive images share a pair id as in the real train split: each window of
    six images holds two pairs of 2-4 images, user photos first, then shop photos.
    Depends only on (seed, index), so any worker can compute it.
    """
    window, pos = divmod(index - 1, PAIR_WINDOW)
    rng = np.random.default_rng([seed, window, 2])
    first = int(rng.integers(2, PAIR_WINDOW - 1))  # size of the first pair: 2..4
    sizes = (first, PAIR_WINDOW - first)
    group = 0 if pos < first else 1
    offset = pos if group == 0 else pos - first
    users = int(rng.integers(1, sizes[0])), int(rng.integers(1, sizes[1]))  # 1..size-1 user photos
    source = "user" if offset < users[group] else "shop"
    return window * 2 + group + 1, source


def featured_garment(seed: int, pair_id: int) -> Featured:
    """The garment every image of a pair shows (same category and colour, style 1)."""
    rng = np.random.default_rng([seed, pair_id, 3])
    return Featured(int(rng.integers(1, 14)), render.random_colour(rng), 1)


def _shuffled(d: dict, rng: np.random.Generator) -> dict:
    keys = list(d)
    return {keys[i]: d[keys[i]] for i in rng.permutation(len(keys))}


def _closed_polygon(points: np.ndarray) -> list[int] | None:
    """Flat closed polygon [x1, y1, ..., xn, yn, x1, y1] of int points, or None if < 3 distinct points."""
    keep = np.ones(len(points), bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    pts = points[keep]
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    if len(np.unique(pts, axis=0)) < 3:
        return None
    return [int(v) for v in np.concatenate([pts, pts[:1]]).ravel()]


def _bucket(value: float, edges: tuple[float, float]) -> int:
    return 1 if value < edges[0] else 2 if value < edges[1] else 3


def item_dict(g: PlacedGarment, width: int, height: int, rng: np.random.Generator) -> dict:
    """The DeepFashion2 item for one garment (keys shuffled)."""
    segmentation = [_closed_polygon(g.outline)]
    segmentation += [p for p in (_closed_polygon(g.outline[idx]) for idx in g.parts) if p is not None]
    (x1, y1), (x2, y2) = g.outline.min(axis=0), g.outline.max(axis=0)
    jitter = rng.integers(-1, 2, size=4)
    box = [int(np.clip(x1 + jitter[0], 0, width - 1)), int(np.clip(y1 + jitter[1], 0, height - 1)),
           int(np.clip(x2 + jitter[2], 0, width - 1)), int(np.clip(y2 + jitter[3], 0, height - 1))]
    landmarks: list[int] = []
    unlabeled = rng.random(len(g.landmarks)) < UNLABELED_LANDMARK_RATE
    for (x, y), hidden, unl in zip(g.landmarks, g.landmark_hidden, unlabeled):
        landmarks += [0, 0, 0] if unl else [int(x), int(y), 1 if hidden else 2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    item = {
        "segmentation": segmentation,
        "bounding_box": box,
        "landmarks": landmarks,
        "category_id": g.category,
        "category_name": CATEGORY_BY_ID[g.category].name,
        "style": g.style,
        "scale": _bucket(bw * bh / float(width * height), (0.1, 0.35)),
        "occlusion": _bucket(g.covered, (0.05, 0.2)),
        "zoom_in": _bucket(max(bw / width, bh / height), (0.75, 0.9)),
        "viewpoint": g.viewpoint,
    }
    return _shuffled(item, rng)


def image_dict(garments: list[PlacedGarment], source: str, pair_id: int, width: int, height: int,
               rng: np.random.Generator) -> dict:
    """The whole per-image annotation: source, pair_id, item1..itemN (keys shuffled)."""
    top: dict = {"source": source, "pair_id": pair_id}
    for n, g in enumerate(garments, start=1):
        top[f"item{n}"] = item_dict(g, width, height, rng)
    return _shuffled(top, rng)


def image_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """(height, width) in [min_side, max_side] px, with an aspect ratio height / width in [0.6, 1/0.6].

    Very flat or very tall photos would shrink the garments to a few pixels once resized for training.
    """
    width = int(rng.integers(min_side, max_side + 1))
    lo = max(min_side, int(np.ceil(width * MIN_ASPECT)))
    hi = min(max_side, int(np.floor(width / MIN_ASPECT)))
    return int(rng.integers(lo, hi + 1)), width


def make_image_record(rng_or_seed: np.random.Generator | int, index: int, *, min_side: int = 160,
                      max_side: int = 640) -> tuple[np.ndarray, dict]:
    """One clean synthetic image and its DeepFashion2 annotation, in memory.

    rng_or_seed: an int split seed (then the result equals image ``index`` of
    ``generate_split(..., seed)``, before JPEG compression and quirks), or a numpy
    Generator (then pair_id = index and the source is drawn from it).
    Returns (image uint8 [H, W, 3] RGB with min_side <= H, W <= max_side and 0.6 <= H / W <= 1 / 0.6,
    annotation dict).
    """
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
        pair_id, source = index, ("user", "shop")[int(rng.integers(2))]
        featured = Featured(int(rng.integers(1, 14)), render.random_colour(rng), 1)
    else:
        seed = int(rng_or_seed)
        rng = np.random.default_rng([seed, index, 0])
        pair_id, source = pair_info(seed, index)
        featured = featured_garment(seed, pair_id)
    height, width = image_size(rng, min_side, max_side)
    img, garments = make_scene(rng, height, width, featured, plain=(source == "shop" and rng.random() < 0.7))
    return img, image_dict(garments, source, pair_id, width, height, rng)
