"""One synthetic photo: pick 1-4 garments, place them without heavy occlusion, paint them.

Garments are painted in *draw order* (bottoms, then tops and dresses, then
outwear), each on top of the earlier ones. Every garment's annotation is its
full outline as drawn; a placement is rejected when it would hide more than
``MAX_COVERED`` of any earlier garment, so an earlier garment's polygon includes
only a small occluded part (see docs/usage_synth.md).

Coordinates: pixels, x = column, y = row, integer vertices inside the image
(0 <= x <= W - 1, 0 <= y <= H - 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from df2coco.categories import CATEGORY_BY_ID
from df2coco.synthetic import render
from df2coco.synthetic.shapes import BOTTOMS, DRESSES, OUTWEAR, TROUSERS, build_shape, landmarks_on_outline, \
    place_shape

MAX_COVERED = 0.25  # largest fraction of a garment that later garments may hide
ITEM_COUNT_WEIGHTS = (0.3, 0.35, 0.2, 0.15)  # P(1), P(2), P(3), P(4) garments per image
PLACEMENT_TRIES = 24  # random positions tried per garment (shrinking every 8) before it is dropped


@dataclass
class Featured:
    """The garment shared by the images of one user/shop pair (style > 0)."""
    category: int
    colour: np.ndarray  # float32 [3] RGB
    style: int


@dataclass
class PlacedGarment:
    """A garment as painted.

    outline: [K, (x, y)] int32 pixels, simple polygon, not closed.
    parts: list of int index arrays into ``outline`` (sub-polygons: sleeves, legs).
    mask: bool [H, W], the filled outline.
    landmarks: [N, (x, y)] int32 pixels on the outline, N = the category's landmark count: its corners
      and fixed points of its edges (``shapes.landmarks_on_outline``), the same parts on every garment of a category.
    landmark_hidden: bool [N], True where a later garment covers the landmark.
    covered: fraction of the mask hidden by later garments, in [0, 1].
    """
    category: int
    outline: np.ndarray
    parts: list[np.ndarray]
    mask: np.ndarray
    style: int
    viewpoint: int
    landmarks: np.ndarray | None = None
    landmark_hidden: np.ndarray | None = None
    covered: float = 0.0
    area: int = 0  # pixels in mask
    hidden_px: int = 0  # pixels of mask hidden by the garments placed after it so far


def _height_fraction(category: int, rng: np.random.Generator) -> float:
    """Garment height as a fraction of the image height (trousers and dresses are tall)."""
    if category in DRESSES or category == TROUSERS:
        return float(rng.uniform(0.55, 0.9))
    if category in BOTTOMS:
        return float(rng.uniform(0.22, 0.42))
    if category in OUTWEAR:
        return float(rng.uniform(0.35, 0.62))
    return float(rng.uniform(0.3, 0.55))


def _centre_y_fraction(category: int, rng: np.random.Generator) -> float:
    """Preferred vertical centre, fraction of the image height: tops high, bottoms low."""
    if category == TROUSERS:
        return float(rng.uniform(0.45, 0.7))
    if category in BOTTOMS:
        return float(rng.uniform(0.55, 0.85))
    if category in DRESSES:
        return float(rng.uniform(0.4, 0.6))
    return float(rng.uniform(0.15, 0.5))


def _draw_rank(category: int) -> int:
    """Layer of a garment: bottoms under tops and dresses, outwear on top."""
    return 0 if category in BOTTOMS else 2 if category in OUTWEAR else 1


def _box_mask(outline: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """The filled outline within its bounding box: ((row slice, column slice), bool [h, w])."""
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0) + 1
    crop = np.zeros((int(y1 - y0), int(x1 - x0)), np.uint8)
    cv2.fillPoly(crop, [(outline - (x0, y0)).astype(np.int32)], 1)
    return (slice(int(y0), int(y1)), slice(int(x0), int(x1))), crop.astype(bool)


def _hides_too_much(box, crop: np.ndarray, placed: list[PlacedGarment], hidden: list[np.ndarray]) -> bool:
    """True if a new garment (``crop`` at ``box``) would hide more than MAX_COVERED of an earlier one.

    hidden: per placed garment, bool [H, W], its pixels already hidden by later garments.
    """
    for g, h in zip(placed, hidden):
        extra = int(np.count_nonzero(crop & g.mask[box] & ~h[box]))
        if g.hidden_px + extra > MAX_COVERED * g.area:
            return True
    return False


def _try_place(category: int, rng, height: int, width: int, placed: list[PlacedGarment], hidden: list[np.ndarray]):
    """Find a position for one garment; returns (pixel shape, outline int32, box, box mask) or None."""
    shape = build_shape(category, rng)
    target_h = _height_fraction(category, rng) * height
    angle = float(np.clip(rng.normal(0.0, 4.0), -10, 10))
    for attempt in range(PLACEMENT_TRIES):
        if attempt and attempt % 8 == 0:
            target_h *= 0.8
        px = place_shape(shape, target_h, angle, jitter=0.012, rng=rng)
        w_px, h_px = np.ptp(px.outline, axis=0)
        if w_px > width - 3 or h_px > height - 3:
            target_h *= min(0.95, (width - 3) / max(w_px, 1), (height - 3) / max(h_px, 1))
            continue
        x0 = rng.uniform(1, width - 2 - w_px)
        cy = _centre_y_fraction(category, rng) * height
        y0 = float(np.clip(cy - h_px / 2, 1, height - 2 - h_px))
        outline = np.round(px.outline + (x0, y0)).astype(np.int32)
        box, crop = _box_mask(outline)
        if not _hides_too_much(box, crop, placed, hidden):
            px.seams = [s + (x0, y0) for s in px.seams]
            px.buttons = px.buttons + (x0, y0) if len(px.buttons) else px.buttons
            return px, outline, box, crop
    return None


def _choose_categories(rng: np.random.Generator, featured: Featured | None) -> list[int]:
    count = int(rng.choice(len(ITEM_COUNT_WEIGHTS), p=ITEM_COUNT_WEIGHTS)) + 1
    cats = [int(c) for c in rng.integers(1, 14, size=count)]
    if featured is not None:
        cats[0] = featured.category
    return cats


def _finish_occlusion(garments: list[PlacedGarment], height: int, width: int) -> None:
    """Set covered fraction, landmarks and landmark visibility once all garments are placed."""
    above = np.zeros((height, width), bool)  # union of garments drawn after the current one
    for g in reversed(garments):
        g.covered = float(np.count_nonzero(g.mask & above)) / max(g.area, 1)
        n = CATEGORY_BY_ID[g.category].num_landmarks
        pts = np.round(landmarks_on_outline(g.outline.astype(np.float64), n)).astype(np.int32)
        pts[:, 0] = np.clip(pts[:, 0], 0, width - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, height - 1)
        g.landmarks = pts
        g.landmark_hidden = above[pts[:, 1], pts[:, 0]]
        above |= g.mask


def make_scene(rng: np.random.Generator, height: int, width: int, featured: Featured | None = None,
               plain: bool = False) -> tuple[np.ndarray, list[PlacedGarment]]:
    """Paint one photo.

    Returns the image (uint8 [height, width, 3] RGB) and its garments in draw order
    (at least one: the first garment always fits after shrinking).
    plain: a shop-style photo (flat or gradient background, no clutter).
    """
    img = render.background(rng, height, width, plain)
    if not plain:
        render.draw_distractors(rng, img, int(rng.integers(0, 4)))
    cats = _choose_categories(rng, featured)
    order = sorted(range(len(cats)), key=lambda i: (_draw_rank(cats[i]), rng.random()))
    garments: list[PlacedGarment] = []
    hidden: list[np.ndarray] = []  # per placed garment: its pixels hidden by later garments so far
    for i in order:
        cat = cats[i]
        found = _try_place(cat, rng, height, width, garments, hidden)
        if found is None:
            continue
        px, outline, box, crop = found
        mask = np.zeros((height, width), bool)
        mask[box] = crop
        is_featured = featured is not None and i == 0
        x0, y0 = outline.min(axis=0)
        x1, y1 = outline.max(axis=0)
        under = img[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3).mean(axis=0)
        colour = featured.colour if is_featured else render.contrasting_colour(rng, under)
        render.draw_garment(rng, img, outline, px.seams, px.buttons, colour)
        for g, h in zip(garments, hidden):
            h[box] |= crop & g.mask[box]
            g.hidden_px = int(np.count_nonzero(h))
        hidden.append(np.zeros_like(mask))
        viewpoint = int(rng.choice(3, p=(0.3, 0.55, 0.15))) + 1
        garments.append(PlacedGarment(cat, outline, px.parts, mask, featured.style if is_featured else 0, viewpoint,
                                      area=int(np.count_nonzero(crop))))
    if not garments:  # cannot happen with sane sizes; keep the contract anyway
        return make_scene(rng, height, width, featured, plain)
    _finish_occlusion(garments, height, width)
    img = render.add_noise(rng, img, int(rng.integers(2, 8)))
    return img, garments
