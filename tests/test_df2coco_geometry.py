"""df2coco.geometry: polygon clipping and union area, against hand-computed values."""
from __future__ import annotations

import pytest

from df2coco.geometry import (box_outside, clip_box, clip_polygon, polygon_outside, polygons_extent,
                              union_area)


def rect(x1, y1, x2, y2, closed=True):
    poly = [x1, y1, x2, y1, x2, y2, x1, y2]
    return poly + [x1, y1] if closed else poly


def test_union_area_of_overlapping_rectangles_counts_overlap_once():
    # A = 10x10 at the origin, B = 10x10 shifted by (5, 5): overlap 5x5.
    # union 175; a sum of areas would give 200, an even-odd fill 150.
    assert union_area([rect(0, 0, 10, 10), rect(5, 5, 15, 15)], 20, 20) == 175


def test_union_area_of_part_repeated_inside_outline_is_the_outline():
    # DeepFashion2 repeats sleeves/legs as extra polygons inside the outline.
    outline, leg = rect(10, 10, 50, 90), rect(10, 50, 25, 90)
    assert union_area([outline, leg], 100, 100) == 40 * 80


def test_union_area_of_a_triangle():
    # right triangle with legs 20 -> 200 px (pycocotools rasterises edges to pixel centres;
    # allow the boundary pixels)
    area = union_area([[0, 0, 20, 0, 0, 20, 0, 0]], 40, 40)
    assert abs(area - 200) <= 20


def test_clip_polygon_inside_is_unchanged():
    poly = rect(2, 2, 8, 8)
    assert clip_polygon(poly, 10, 10) == poly


def test_clip_polygon_keeps_the_part_inside_and_stays_closed():
    clipped = clip_polygon(rect(-5, -5, 5, 5), 10, 10)
    assert clipped[:2] == clipped[-2:]  # closed like the input
    assert set(zip(clipped[0::2], clipped[1::2])) == {(0, 0), (5, 0), (5, 5), (0, 5)}


def test_clip_polygon_open_input_stays_open():
    clipped = clip_polygon(rect(5, 5, 15, 15, closed=False), 10, 10)
    assert len(clipped) == 8
    assert set(zip(clipped[0::2], clipped[1::2])) == {(5, 5), (10, 5), (10, 10), (5, 10)}


def test_clip_polygon_diagonal_edge_gets_exact_intersection():
    # triangle (0,0) (20,0) (0,20) clipped to 10x10: the hypotenuse x + y = 20 misses the
    # square, so the result is the whole square
    clipped = clip_polygon([0, 0, 20, 0, 0, 20], 10, 10)
    assert set(zip(clipped[0::2], clipped[1::2])) == {(0, 0), (10, 0), (10, 10), (0, 10)}
    # triangle (0,0) (30,0) (0,15): hypotenuse y = 15 - x/2 crosses x = 10 at y = 10 exactly
    # and meets y = 10 at x = 10 too, so the corner (10, 10) is on it.
    clipped = clip_polygon([0, 0, 30, 0, 0, 15], 10, 10)
    assert set(zip(clipped[0::2], clipped[1::2])) == {(0, 0), (10, 0), (10, 10), (0, 10)}


def test_clip_polygon_fractional_intersection_is_rounded():
    # edge from (5, 5) to (15, 8) crosses x = 10 at y = 6.5
    clipped = clip_polygon([5, 5, 15, 8, 5, 8], 10, 10)
    assert (10, 6.5) in set(zip(clipped[0::2], clipped[1::2]))


def test_clip_polygon_entirely_outside_is_empty():
    assert clip_polygon(rect(20, 20, 30, 30), 10, 10) == []


def test_clip_polygon_reduced_to_a_line_is_empty():
    # only the edge x = 10 touches the image
    assert clip_polygon(rect(10, 0, 20, 10), 10, 10) == []


@pytest.mark.parametrize("poly, outside", [
    (rect(0, 0, 10, 10), False),  # on the border counts as inside
    (rect(-1, 0, 10, 10), True),
    (rect(0, 0, 11, 10), True),
    (rect(0, 0, 10, 10.5), True),
])
def test_polygon_outside(poly, outside):
    assert polygon_outside(poly, 10, 10) is outside


def test_clip_box_and_box_outside():
    assert box_outside([-3, 2, 12, 9], 10, 10)
    assert not box_outside([0, 0, 10, 10], 10, 10)
    assert clip_box([-3, 2, 12, 9], 10, 10) == [0, 2, 10, 9]
    assert clip_box([20, 20, 30, 30], 10, 10) == [10, 10, 10, 10]


def test_polygons_extent():
    assert polygons_extent([rect(1, 2, 3, 4), [0, 5, 7, 5, 7, 9]]) == [0, 2, 7, 9]
