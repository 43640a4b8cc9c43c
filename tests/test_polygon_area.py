"""df2coco._polygon_area (the C mask-area counter) against pycocotools, pixel for pixel.

The C module restates pycocotools' polygon rasterisation without building RLEs, so the
reference here is pycocotools itself (``union_area_pycocotools``: frPyObjects, merge, area),
on polygons chosen to hit every branch: x-major and y-major edges in both directions,
horizontal and vertical edges, repeated vertices, rounding ties at .1/.5 px, vertices on
the image border, self-intersections, overlapping and nested polygons, 1-pixel images.
"""
from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest

import df2coco._polygon_area as polygon_area  # built by `pip install -e .`; not built: these tests fail
from df2coco import geometry
from df2coco.convert import convert_split
from df2coco.geometry import union_area, union_area_pycocotools
from df2coco.synthetic import generate_split


def test_the_c_module_is_what_union_area_uses():
    assert geometry._union_area_c is polygon_area.union_area
    assert geometry.UNION_AREA_IMPORTS == ()  # workers then need not import pycocotools


def test_the_built_module_is_not_older_than_its_source():
    source = Path(geometry.__file__).with_name("_polygon_area.c")
    assert os.path.getmtime(polygon_area.__file__) >= os.path.getmtime(source), \
        "df2coco/_polygon_area.c changed since it was built: run `pip install -e .` again"


def _random_polygon(rng: random.Random, width: int, height: int) -> list[float]:
    """A polygon of one of several kinds, every vertex inside [0, width] x [0, height]."""
    kind = rng.choice(["star", "star", "scribble", "grid", "border", "sliver", "tiny", "axis"])
    n = rng.randint(3, 14)
    if kind == "star":  # simple, often concave: what garment outlines look like
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.5, max(width, height) / 2)
        angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))
        points = [(cx + rng.uniform(0.2, 1) * radius * math.cos(a), cy + rng.uniform(0.2, 1) * radius * math.sin(a))
                  for a in angles]
    elif kind == "scribble":  # random order: self-intersecting
        points = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(n)]
    elif kind == "grid":  # coordinates on a 0.1 px grid: rounding ties of 5x + 0.5, repeated vertices
        points = [(rng.randint(0, 10 * width) / 10, rng.randint(0, 10 * height) / 10) for _ in range(n)]
        points.insert(rng.randrange(len(points)), points[0])
    elif kind == "border":  # vertices on the image's edges and corners
        points = [(rng.choice([0, width, rng.uniform(0, width)]), rng.choice([0, height, rng.uniform(0, height)]))
                  for _ in range(n)]
    elif kind == "sliver":  # nearly degenerate: steep and shallow edges, a few fine units wide
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        points = [(x, y), (min(width, x + rng.uniform(0, 0.6)), rng.uniform(0, height)),
                  (min(width, x + rng.uniform(0, 0.6)), rng.uniform(0, height))]
        if rng.random() < 0.5:
            points = [(py * width / height, px * height / width) for px, py in points]  # shallow instead
    elif kind == "tiny":  # sub-pixel
        x, y = rng.uniform(0, width - 0.5), rng.uniform(0, height - 0.5)
        points = [(x + rng.uniform(0, 0.5), y + rng.uniform(0, 0.5)) for _ in range(n)]
    else:  # "axis": integer rectangle-ish outlines with horizontal and vertical edges
        x1, x2 = sorted(rng.randint(0, width) for _ in range(2))
        y1, y2 = sorted(rng.randint(0, height) for _ in range(2))
        points = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    if rng.random() < 0.5:
        points.append(points[0])  # DeepFashion2 closes its polygons explicitly
    return [min(max(v, 0), side) for p in points for v, side in zip(p, (width, height))]


@pytest.mark.parametrize("seed", range(6))
def test_random_items_equal_pycocotools(seed):
    rng = random.Random(seed)
    mismatches = []
    for case in range(800):
        width, height = rng.choice([(1, 1), (1, 7), (9, 1), (17, 23), (200, 150), (640, 480), (1500, 4000)])
        polygons = [_random_polygon(rng, width, height) for _ in range(rng.choice([1, 1, 1, 2, 3, 5]))]
        got, want = polygon_area.union_area(polygons, width, height), union_area_pycocotools(polygons, width, height)
        if got != want:
            mismatches.append((case, width, height, got, want, polygons))
    assert not mismatches, mismatches[:2]


def test_hand_made_cases_equal_pycocotools():
    cases = [
        ([[0, 0, 10, 0, 10, 10, 0, 10]], 10, 10),  # the whole image
        ([[0, 0, 20, 0, 0, 20, 0, 0]], 40, 40),  # triangle, closed
        ([[0, 0, 10, 10, 10, 0, 0, 10]], 12, 12),  # bow tie: even-odd fill
        ([[2, 2, 8, 2, 8, 8, 2, 8], [4, 4, 6, 4, 6, 6, 4, 6]], 10, 10),  # nested: the union is the outer one
        ([[1, 1, 5, 1, 5, 5, 1, 5], [1, 1, 5, 1, 5, 5, 1, 5]], 6, 6),  # the same polygon twice
        ([[3, 3, 3, 3, 3, 3]], 5, 5),  # a single point
        ([[0, 0, 5, 5, 10, 10]], 10, 10),  # collinear: no area
        ([[0.1, 0.1, 0.3, 0.1, 0.3, 0.5]], 1, 1),  # ties: 5 * 0.1 + 0.5 and 5 * 0.3 + 0.5
        ([[0.5, 0, 1, 0.5, 0.5, 1, 0, 0.5]], 1, 1),  # diamond in one pixel
        ([[1e-9, 0, 3, 1e-9, 3, 3]], 3, 3),
    ]
    for polygons, width, height in cases:
        assert polygon_area.union_area(polygons, width, height) == union_area_pycocotools(polygons, width, height), \
            polygons


def test_columns_crossed_many_times_equal_pycocotools():
    # a comb: one polygon crossing columns 1..9 eighty times (past the insertion-sort limit)
    comb = [0, 0]
    for tooth in range(40):
        comb += [10, 2 * tooth, 10, 2 * tooth + 1, 1, 2 * tooth + 1, 1, 2 * tooth + 2]
    comb += [0, 80]
    strips = [[0, y, 12, y, 12, y + 1.5, 0, y + 1.5] for y in range(0, 78, 2)]  # 39 overlapping polygons
    for polygons in ([comb], strips, [comb] + strips):
        assert polygon_area.union_area(polygons, 12, 80) == union_area_pycocotools(polygons, 12, 80)


def test_python_numbers_of_every_kind_are_read():
    floats = [[1.0, 1.0, 30.5, 2.0, 20.0, 40.25]]
    assert polygon_area.union_area([(1, 1, 30.5, 2, 20, 40.25)], 50, 50) == union_area_pycocotools(floats, 50, 50)
    assert polygon_area.union_area([[True, 1, 30.5, 2, 20, 40.25]], 50, 50) == union_area_pycocotools(floats, 50, 50)


@pytest.mark.parametrize("polygons, width, height, error", [
    ([[1, 1, 2, 2]], 5, 5, ValueError),  # two points
    ([[1, 1, 2, 2, 3]], 5, 5, ValueError),  # odd length
    ([[1, 1, 2, 2, 6, 1]], 5, 5, ValueError),  # outside: not clipped
    ([[1, 1, 2, -0.1, 3, 1]], 5, 5, ValueError),
    ([[1, 1, 2, float("nan"), 3, 1]], 5, 5, ValueError),
    ([[1, 1, 2, float("inf"), 3, 1]], 5, 5, ValueError),
    ([[1, 1, 2, "2", 3, 1]], 5, 5, TypeError),
    ([[1, 1, 2, None, 3, 1]], 5, 5, TypeError),
    ([5], 5, 5, TypeError),  # a polygon that is not a sequence
    (None, 5, 5, TypeError),
    ([[1, 1, 2, 2, 3, 1]], 0, 5, ValueError),
    ([[1, 1, 2, 2, 3, 1]], 5, -1, ValueError),
    ([[1, 1, 2, 2, 3, 1]], 1 << 25, 5, ValueError),
])
def test_bad_input_is_an_exception_not_a_crash(polygons, width, height, error):
    with pytest.raises(error):
        polygon_area.union_area(polygons, width, height)


def test_images_wider_than_the_c_module_takes_go_to_pycocotools():
    # a PNG header may claim a side of up to 2**31 - 1 px; the C module takes up to MAX_SIDE
    width = polygon_area.MAX_SIDE + 1
    with pytest.raises(ValueError):
        polygon_area.union_area([[0, 0, 4, 0, 4, 4]], width, 10)
    assert union_area([[0, 0, 4, 0, 4, 4]], width, 10) == union_area_pycocotools([[0, 0, 4, 0, 4, 4]], width, 10)


def test_no_polygons_is_no_area():
    assert polygon_area.union_area([], 10, 10) == 0


def test_union_area_falls_back_to_pycocotools_with_the_same_result(monkeypatch):
    polygons = [[0, 0, 10, 10, 10, 0, 0, 10], [2, 2, 8, 2, 8, 8, 2, 8]]
    fast = union_area(polygons, 12, 12)
    monkeypatch.setattr(geometry, "_union_area_c", None)
    assert union_area(polygons, 12, 12) == fast


def test_every_area_of_a_converted_synthetic_split_equals_pycocotools(tmp_path):
    generate_split(tmp_path / "split", 60, seed=5, quirk_rate=0.3, min_side=96, max_side=700, workers=1)
    convert_split(tmp_path / "split", tmp_path / "coco.json", workers=1)
    coco = json.loads((tmp_path / "coco.json").read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    assert len(coco["annotations"]) > 60
    for ann in coco["annotations"]:
        width, height = sizes[ann["image_id"]]
        assert ann["area"] == union_area_pycocotools(ann["segmentation"], width, height), ann["id"]
