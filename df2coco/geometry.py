"""Polygon and box geometry for the converter: clipping to the image and union area.

Frame: DeepFashion2/COCO pixel coordinates, x to the right, y down, origin at
the top-left corner of the image. The image rectangle is ``[0, width] x [0, height]``
(continuous coordinates: pixel i covers [i, i + 1)). Polygons are flat lists
``[x1, y1, x2, y2, ...]`` as in COCO; DeepFashion2 closes them explicitly (the
first point is repeated at the end).

Pure Python except :func:`union_area`, which counts the pixels of pycocotools'
rasterisation: with the C module ``df2coco._polygon_area`` where it was built
(``pip install -e .`` builds it; about 6x faster), else, and for images of more than
its ``MAX_SIDE`` (2**24) px a side, with pycocotools itself.
"""
from __future__ import annotations

try:
    from df2coco._polygon_area import MAX_SIDE as _C_MAX_SIDE
    from df2coco._polygon_area import union_area as _union_area_c
except ImportError:  # built without a C compiler: pycocotools gives the same areas, slower
    _union_area_c, _C_MAX_SIDE = None, 0

# Modules union_area imports on first use (the converter's worker pool preloads them).
UNION_AREA_IMPORTS: tuple[str, ...] = () if _union_area_c is not None else ("pycocotools.mask",)


def polygon_outside(poly: list, width: float, height: float) -> bool:
    """True if any vertex of ``poly`` lies outside ``[0, width] x [0, height]``."""
    xs, ys = poly[0::2], poly[1::2]
    return min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height


def clip_polygon(poly: list, width: float, height: float) -> list:
    """Intersect a polygon with the image rectangle (Sutherland-Hodgman).

    Args:
      poly: ``[x1, y1, ..., xn, yn]`` ints or floats; closed or not.
      width, height: image size in pixels.
    Returns:
      The clipped polygon as a flat list, closed explicitly if the input was
      closed. Vertices inside the image are copied unchanged (a float ``52.0``
      stays ``52.0``); new vertices on the border are rounded to 2 decimals and
      written in the polygon's type: floats for a polygon with any float, ints
      where integral for an all-int polygon. An empty list if fewer than 3
      distinct vertices remain.
    """
    points = list(zip(poly[0::2], poly[1::2]))
    closed = len(points) > 1 and points[0] == points[-1]
    if closed:
        points = points[:-1]
    tidy = _tidy_float if any(type(c) is float for c in poly) else _tidy_int
    for inside, intersect in _rectangle_edges(width, height, tidy):
        points = _clip_against_edge(points, inside, intersect)
        if not points:
            return []
    points = [p for i, p in enumerate(points) if p != points[i - 1]] or points[:1]  # drop repeats
    if len(set(points)) < 3:
        return []
    if closed:
        points.append(points[0])
    return [c for point in points for c in point]


def _rectangle_edges(width: float, height: float, tidy):
    """(inside test, intersection) for the four edges of the image rectangle.

    ``tidy`` rounds the coordinates of each new (intersection) vertex.
    """
    def at_x(x_edge):
        return lambda p, q: (tidy(x_edge), tidy(p[1] + (q[1] - p[1]) * (x_edge - p[0]) / (q[0] - p[0])))

    def at_y(y_edge):
        return lambda p, q: (tidy(p[0] + (q[0] - p[0]) * (y_edge - p[1]) / (q[1] - p[1])), tidy(y_edge))

    return (
        (lambda p: p[0] >= 0, at_x(0)),
        (lambda p: p[0] <= width, at_x(width)),
        (lambda p: p[1] >= 0, at_y(0)),
        (lambda p: p[1] <= height, at_y(height)),
    )


def _clip_against_edge(points: list, inside, intersect) -> list:
    """One Sutherland-Hodgman pass: keep the part of the polygon on the inside of one edge."""
    out = []
    for i, current in enumerate(points):
        previous = points[i - 1]
        if inside(current):
            if not inside(previous):
                out.append(intersect(previous, current))
            out.append(current)
        elif inside(previous):
            out.append(intersect(previous, current))
    return out


def _tidy_int(value: float) -> int | float:
    """A new vertex coordinate of an all-int polygon: 2 decimals, an int when integral."""
    value = round(value, 2)
    return int(value) if value == int(value) else value


def _tidy_float(value: float) -> float:
    """A new vertex coordinate of a float polygon: a float with 2 decimals."""
    return round(float(value), 2)


def clamp(value, low, high):
    """``value`` limited to ``[low, high]``, keeping its type (a float stays a float)."""
    if value < low:
        return type(value)(low)
    if value > high:
        return type(value)(high)
    return value


def clip_box(box: list, width: float, height: float) -> list:
    """Clip ``[x1, y1, x2, y2]`` (pixel corners) to ``[0, width] x [0, height]``; types kept."""
    x1, y1, x2, y2 = box
    return [clamp(x1, 0, width), clamp(y1, 0, height), clamp(x2, 0, width), clamp(y2, 0, height)]


def overshoot(values: list, limit: float) -> float:
    """How far (pixels) the values reach outside ``[0, limit]``; 0 if none does."""
    return max(0, -min(values), max(values) - limit)


def box_outside(box: list, width: float, height: float) -> bool:
    """True if any corner of ``[x1, y1, x2, y2]`` lies outside the image rectangle."""
    x1, y1, x2, y2 = box
    return min(x1, y1) < 0 or max(x1, x2) > width or max(y1, y2) > height


def polygons_extent(polygons: list[list]) -> list:
    """Tight box ``[x1, y1, x2, y2]`` around all vertices of the polygons."""
    xs = [x for poly in polygons for x in poly[0::2]]
    ys = [y for poly in polygons for y in poly[1::2]]
    return [min(xs), min(ys), max(xs), max(ys)]


def union_area(polygons: list[list], width: int, height: int) -> int:
    """Area in pixels of the union of the polygons, rasterised on the image grid.

    DeepFashion2 items repeat parts (sleeves, legs) as extra polygons that overlap
    the outline, so the mask is the union; summing areas or an even-odd fill would
    double-count or punch holes. The pixels are pycocotools' (``frPyObjects``, then
    ``merge``, then ``area``): each polygon rasterised with an even-odd fill, the
    masks united with a logical OR. ``df2coco/_polygon_area.c`` computes the same
    count without building the masks; :func:`union_area_pycocotools` is the
    reference it is tested against and the fallback where it is not built.

    Args:
      polygons: flat polygons, each of even length >= 6, clipped to the image
        (every vertex in ``[0, width] x [0, height]``).
      width, height: image size in pixels.
    Returns:
      Number of pixels in the union mask (int).
    """
    if _union_area_c is not None and width <= _C_MAX_SIDE and height <= _C_MAX_SIDE:
        return _union_area_c(polygons, width, height)
    return union_area_pycocotools(polygons, width, height)


def union_area_pycocotools(polygons: list[list], width: int, height: int) -> int:
    """:func:`union_area` computed by pycocotools: rasterise to RLEs, merge (OR), count."""
    from pycocotools import mask as mask_utils  # imported here: only workers need it

    rles = mask_utils.frPyObjects(polygons, height, width)
    return int(mask_utils.area(rles[0] if len(rles) == 1 else mask_utils.merge(rles)))
