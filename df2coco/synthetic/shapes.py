"""Garment silhouettes for the 13 DeepFashion2 categories, in a local unit frame.

Every builder returns a :class:`GarmentShape` whose coordinates are in *garment
units*, x to the right and y downwards (image convention), origin at the top
centre of the garment (the neck for tops and dresses, the waistband centre for
bottoms). One unit is the torso width of a top or the waist width of a bottom.
:func:`place_shape` then scales, rotates and translates a shape to pixels.

Each category has a silhouette a small detector can learn:

* tops: round neck, torso, sleeves (short: angled stubs; long: down to the hem);
* outwear: like tops but longer, V neck and an open front (a notch at the hem);
* vest: no sleeves, wide shoulder straps; sling: thin straps, straight top edge;
* shorts / trousers: waistband and two legs (short stubs / down to the ankle);
* skirt: a flared trapezoid, no crotch;
* dresses: the corresponding top down to a waist seam, then a long flared skirt.

The outline is one simple (non-self-intersecting) polygon. ``parts`` are
sub-polygons made of outline vertices (sleeves, legs), like the extra polygons
of real DeepFashion2 items; they lie inside the outline, so the union of all
polygons is the outline. ``seams`` are decoration lines (armholes, waistband,
the front opening) that are drawn but not annotated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Category ids by silhouette family (DeepFashion2 ids, see df2coco.categories).
SHORT_SLEEVE_TOP, LONG_SLEEVE_TOP, SHORT_SLEEVE_OUTWEAR, LONG_SLEEVE_OUTWEAR = 1, 2, 3, 4
VEST, SLING, SHORTS, TROUSERS, SKIRT = 5, 6, 7, 8, 9
SHORT_SLEEVE_DRESS, LONG_SLEEVE_DRESS, VEST_DRESS, SLING_DRESS = 10, 11, 12, 13

TOPS = (1, 2, 3, 4, 5, 6)
BOTTOMS = (7, 8, 9)
DRESSES = (10, 11, 12, 13)
OUTWEAR = (3, 4)


@dataclass
class GarmentShape:
    """A garment silhouette.

    outline: [K, (x, y)] float64, garment units (or pixels after place_shape); simple polygon, not closed.
    parts: list of [M] int index arrays into ``outline`` (sub-polygons such as sleeves or legs).
    seams: list of [P, (x, y)] float64 polylines drawn as darker lines (not annotated).
    buttons: [B, (x, y)] float64 centres of small buttons (outwear).
    """

    outline: np.ndarray
    parts: list[np.ndarray] = field(default_factory=list)
    seams: list[np.ndarray] = field(default_factory=list)
    buttons: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _mirror(right: list[tuple[float, float]]) -> np.ndarray:
    """Full outline from its right half.

    ``right`` runs clockwise from a point on the axis (x = 0, top) to a point on
    the axis (bottom). The left half is the mirror image of ``right[1:-1]`` in
    reverse order, so the outline runs right half down, left half up.
    """
    half = np.asarray(right, dtype=np.float64)
    left = half[-2:0:-1] * np.array([-1.0, 1.0])
    return np.concatenate([half, left], axis=0)


def _mirror_index(j: int, half_len: int) -> int:
    """Outline index of the mirror image of right-half vertex ``j`` (0 < j < half_len - 1)."""
    return 2 * half_len - 2 - j


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _neck_curve(nw: float, nd: float, v_neck: bool) -> list[tuple[float, float]]:
    """Right half of a neckline from the centre dip (0, nd) up to the neck corner (nw, 0)."""
    if v_neck:
        return [(0.0, nd), (nw * 0.55, nd * 0.45), (nw, 0.0)]
    angles = np.linspace(0.0, np.pi / 2, 4)
    return [(nw * float(np.sin(a)), nd * float(np.cos(a))) for a in angles]


def _sleeve(shoulder, long: bool, rng) -> tuple[tuple[float, float], tuple[float, float]]:
    """Outer and inner cuff points of a right sleeve starting at ``shoulder``."""
    if long:
        angle, length, cuff = np.radians(_u(rng, 58, 72)), _u(rng, 1.05, 1.3), _u(rng, 0.2, 0.27)
    else:
        angle, length, cuff = np.radians(_u(rng, 25, 40)), _u(rng, 0.35, 0.48), _u(rng, 0.26, 0.34)
    sx, sy = shoulder
    outer = (sx + length * np.cos(angle), sy + length * np.sin(angle))
    inner = (outer[0] - cuff * np.sin(angle), outer[1] + cuff * np.cos(angle))
    return outer, inner


def _upper_body(category: int, rng: np.random.Generator):
    """Right half of the upper body from the neck to the armpit.

    Returns (points, sleeve_indices or None, armpit_y, seams). ``sleeve_indices``
    are the right-half indices of (shoulder, outer cuff, inner cuff, armpit).
    """
    sleeved = category in (1, 2, 3, 4, 10, 11)
    long = category in (2, 4, 11)
    tw = 0.5  # half torso width = 0.5 unit
    seams: list[np.ndarray] = []
    if sleeved:
        v_neck = category in OUTWEAR
        nw = _u(rng, 0.15, 0.2)
        nd = _u(rng, 0.3, 0.45) if v_neck else _u(rng, 0.08, 0.16)
        shoulder = (tw + _u(rng, 0.0, 0.04), _u(rng, 0.06, 0.11))
        armpit = (tw - _u(rng, 0.0, 0.03), _u(rng, 0.4, 0.48))
        outer, inner = _sleeve(shoulder, long, rng)
        pts = _neck_curve(nw, nd, v_neck) + [shoulder, outer, inner, armpit]
        n = len(pts)
        seams.append(np.array([shoulder, armpit]))
        return pts, [n - 4, n - 3, n - 2, n - 1], armpit[1], seams
    if category in (VEST, VEST_DRESS):
        nw, nd = _u(rng, 0.17, 0.24), _u(rng, 0.2, 0.35)
        strap = _u(rng, 0.12, 0.2)
        armpit_y = _u(rng, 0.45, 0.55)
        top_out = (nw + strap, _u(rng, 0.02, 0.06))
        # Armhole: a concave curve from the strap's outer corner down to the armpit.
        t = np.linspace(0.25, 1.0, 3)
        curve = [(top_out[0] + (tw - top_out[0]) * float(tt**2), top_out[1] + (armpit_y - top_out[1]) * float(tt))
                 for tt in t]
        pts = _neck_curve(nw, nd, v_neck=False) + [top_out] + curve
        return pts, None, armpit_y, seams
    # Sling: straight top edge at y = top_y, thin straps going up to y = 0.
    top_y = _u(rng, 0.28, 0.38)
    strap_x, strap_w = _u(rng, 0.18, 0.3), _u(rng, 0.035, 0.055)
    pts = [(0.0, top_y + _u(rng, 0.0, 0.05)), (strap_x, top_y), (strap_x, 0.0), (strap_x + strap_w, 0.0),
           (strap_x + strap_w, top_y - 0.02), (tw, top_y + _u(rng, 0.02, 0.08))]
    return pts, None, pts[-1][1], seams


def build_top(category: int, rng: np.random.Generator) -> GarmentShape:
    """Tops, outwear, vest and sling (categories 1-6)."""
    pts, sleeve, armpit_y, seams = _upper_body(category, rng)
    outwear = category in OUTWEAR
    length = _u(rng, 1.35, 1.7) if outwear else _u(rng, 1.1, 1.4)
    hem_x = _u(rng, 0.46, 0.56)
    pts = pts + [(_u(rng, 0.44, 0.5), (armpit_y + length) / 2), (hem_x, length)]
    if outwear:
        gap, notch_top = _u(rng, 0.04, 0.1), length * _u(rng, 0.55, 0.75)
        pts += [(gap, length), (0.0, notch_top)]
        neck_y = pts[0][1]
        seams.append(np.array([(0.0, neck_y), (0.0, notch_top)]))
        seams.append(np.array([pts[2], (0.13, neck_y + 0.15)]))  # lapel
        buttons = np.array([(-0.05, y) for y in np.linspace(neck_y + 0.1, notch_top - 0.05, 3)])
    else:
        pts += [(0.0, length + _u(rng, -0.02, 0.04))]
        buttons = np.zeros((0, 2))
    shape = GarmentShape(_mirror(pts), seams=seams, buttons=buttons)
    _add_mirrored_parts(shape, sleeve, len(pts))
    return shape


def build_dress(category: int, rng: np.random.Generator) -> GarmentShape:
    """Dresses (categories 10-13): a top down to the waist seam, then a flared skirt."""
    pts, sleeve, armpit_y, seams = _upper_body(category, rng)
    waist_y, waist_x = armpit_y + _u(rng, 0.35, 0.5), _u(rng, 0.38, 0.46)
    length = _u(rng, 2.1, 2.8)
    hem_x = _u(rng, 0.75, 1.05)
    sag = _u(rng, 0.0, 0.08)
    pts = pts + [(waist_x, waist_y), (hem_x, length), (hem_x * 0.5, length + sag * 0.75), (0.0, length + sag)]
    seams.append(np.array([(-waist_x, waist_y), (waist_x, waist_y)]))
    shape = GarmentShape(_mirror(pts), seams=seams)
    _add_mirrored_parts(shape, sleeve, len(pts))
    return shape


def build_bottom(category: int, rng: np.random.Generator) -> GarmentShape:
    """Shorts, trousers and skirt (categories 7-9); origin at the waistband centre."""
    band = _u(rng, 0.06, 0.1)
    hip = (_u(rng, 0.53, 0.58), _u(rng, 0.22, 0.3))
    seams = [np.array([(-0.5, band), (0.5, band)])]
    if category == SKIRT:
        length, hem_x, sag = _u(rng, 0.8, 1.4), _u(rng, 0.7, 1.0), _u(rng, 0.0, 0.08)
        pts = [(0.0, 0.0), (0.5, 0.0), hip, (hem_x, length), (hem_x * 0.5, length + sag * 0.75), (0.0, length + sag)]
        return GarmentShape(_mirror(pts), seams=seams)
    if category == TROUSERS:
        length, crotch = _u(rng, 2.4, 3.0), _u(rng, 0.38, 0.48)
        outer, leg_w = _u(rng, 0.52, 0.7), _u(rng, 0.3, 0.4)
    else:  # shorts
        length, crotch = _u(rng, 0.75, 0.95), _u(rng, 0.36, 0.44)
        outer, leg_w = _u(rng, 0.62, 0.78), _u(rng, 0.45, 0.55)
    inner = max(outer - leg_w, 0.06)
    pts = [(0.0, 0.0), (0.5, 0.0), hip, (outer, length), (inner, length), (0.0, crotch)]
    seams.append(np.array([(0.0, band), (0.0, crotch * 0.85)]))  # fly
    shape = GarmentShape(_mirror(pts), seams=seams)
    _add_mirrored_parts(shape, [2, 3, 4, 5], len(pts), include_axis=True)
    return shape


def _add_mirrored_parts(shape: GarmentShape, right_idx, half_len: int, include_axis: bool = False) -> None:
    """Add a right part and its mirror image as sub-polygons (index arrays into the outline).

    A part vertex on the axis (x = 0, the last right-half index, e.g. the crotch)
    is shared by both halves and is not mirrored.
    """
    if right_idx is None:
        return
    right = np.asarray(right_idx)
    left = np.array([j if (include_axis and j == half_len - 1) else _mirror_index(j, half_len) for j in right_idx])
    shape.parts.extend([right, left[::-1]])


def build_shape(category: int, rng: np.random.Generator) -> GarmentShape:
    """The silhouette of one garment of ``category`` (1..13), with random proportions."""
    if category in BOTTOMS:
        return build_bottom(category, rng)
    if category in DRESSES:
        return build_dress(category, rng)
    if category in TOPS:
        return build_top(category, rng)
    raise ValueError(f"unknown category id {category}")


def place_shape(shape: GarmentShape, height_px: float, angle_deg: float, jitter: float,
                rng: np.random.Generator) -> GarmentShape:
    """Scale a shape to ``height_px`` pixels tall, rotate it and move its top-left extent to (0, 0).

    jitter: random displacement of each outline vertex, in garment units (keeps the silhouette
    from being perfectly symmetric). Returns a new shape in pixels (float64).
    """
    outline = shape.outline + rng.normal(0.0, jitter, size=shape.outline.shape)
    extent_h = float(np.ptp(outline[:, 1]))
    scale = height_px / max(extent_h, 1e-6)
    theta = np.radians(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])

    def tf(p: np.ndarray) -> np.ndarray:
        return (p * scale) @ rot.T

    out = tf(outline)
    origin = out.min(axis=0)
    return GarmentShape(
        outline=out - origin,
        parts=[p.copy() for p in shape.parts],
        seams=[tf(s) - origin for s in shape.seams],
        buttons=tf(shape.buttons) - origin if len(shape.buttons) else shape.buttons,
    )


def landmarks_on_outline(outline: np.ndarray, count: int) -> np.ndarray:
    """``count`` landmarks tied to the garment's shape: its corners, then fixed points of its edges.

    A category's outline always has the same vertices in the same order (the neck centre or
    waistband centre first, see the builders), so landmark i is the same part of every garment
    of a category, wherever the shape's random proportions put it. With count >= K vertices:
    every vertex, and the count - K others spread over the edges in a fixed order (edge e gets
    points at fractions j / (m + 1) of its length, j = 1..m); with count < K: the vertices
    round(i K / count), i = 0..count - 1. Points are listed in outline order.

    outline: [K, (x, y)] float64. Returns [count, (x, y)] float64 points on the outline.
    """
    outline = np.asarray(outline, np.float64)
    vertices = len(outline)
    if count <= vertices:
        return outline[np.round(np.arange(count) * vertices / count).astype(int)]
    extra = count - vertices
    per_edge = np.full(vertices, extra // vertices)
    per_edge[np.round(np.arange(extra % vertices) * vertices / (extra % vertices)).astype(int)] += 1
    points = []
    for edge in range(vertices):
        start, stop = outline[edge], outline[(edge + 1) % vertices]
        points.append(start)
        points.extend(start + (stop - start) * j / (per_edge[edge] + 1) for j in range(1, per_edge[edge] + 1))
    return np.array(points)

