"""Read one DeepFashion2 annotation file (``annos/000001.json``) into typed records.

The reader checks the *structure* of the file: JSON object, field types, a known
category, polygons of even length with at least 3 points, the category's number
of landmarks. Anything wrong becomes a :class:`~df2coco.report.Problem` and the
broken part is dropped or neutralised; the reader never raises on bad data.
Checks that need the image size (coordinates outside the image) are done later,
in :mod:`df2coco.annotation`.

Coordinates are kept exactly as written in the file (int, or float where the
file has floats), in DeepFashion2's pixel frame: x to the right, y down, 0-based.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from df2coco import problems as P
from df2coco import report as R
from df2coco.categories import CATEGORY_BY_ID
from df2coco.report import Problem

_ITEM_KEY = re.compile(r"item(\d+)\Z")
_ATTRIBUTES = ("style", "scale", "occlusion", "zoom_in", "viewpoint")
_SOURCES = ("user", "shop")


@dataclass
class Item:
    """One garment of an image, validated.

    Attributes:
      key: the item's key in the file, e.g. ``"item2"``.
      number: the item number from the key (2 for ``"item2"``); items are sorted by it.
      category_id: 1..13 (see df2coco.categories).
      bounding_box: ``[x1, y1, x2, y2]`` pixel corners as in the file, or None if the
        file's box was unusable (then the box is taken from the polygons).
      polygons: ``[[x1, y1, x2, y2, ...], ...]``, each of even length >= 6; at least one.
      landmarks: ``[x1, y1, v1, ...]`` with exactly 3 x the category's landmark count
        values, or None if unusable (keypoints are then written as unlabeled).
      attributes: ``style``, ``scale``, ``occlusion``, ``zoom_in``, ``viewpoint``
        (int, or None where the file's value is missing or not an int).
    """

    key: str
    number: int
    category_id: int
    bounding_box: list | None
    polygons: list[list]
    landmarks: list | None
    attributes: dict


@dataclass
class ImageAnnotation:
    """The content of one annotation file.

    Attributes:
      source: ``"user"`` or ``"shop"``, or None if missing/invalid.
      pair_id: int, or None if missing/invalid.
      items: the usable items, sorted by item number (NOT file key order).
    """

    source: str | None
    pair_id: int | None
    items: list[Item]


def read_annotation(path: str | Path, landmarks: bool = True) -> tuple[ImageAnnotation | None, list[Problem]]:
    """Read and validate one annotation file.

    Args:
      path: the ``annos/NNNNNN.json`` file.
      landmarks: check the landmarks (False: they are neither checked nor kept, for ``--no-keypoints``).
    Returns:
      ``(annotation, problems)``; annotation is None when the file cannot be used at
      all (unreadable, not JSON, not a JSON object); problems lists everything found.
    """
    file = str(path)
    try:
        data = json.loads(read_bytes(path))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, [Problem(file, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, _short(exc))]
    if not isinstance(data, dict):
        detail = f"top level is a JSON {type(data).__name__}, not an object"
        return None, [Problem(file, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, detail)]
    return parse_annotation(data, file, landmarks)


def read_bytes(path: str | Path) -> bytes:
    """The whole file, read with plain system calls (cheaper than ``open()`` for small files).

    The first read asks for the file's size plus one byte: a read buffer much larger than the
    file costs more than the read itself (64 KB: 23 us per file; 16 KB: 10 us, for 1 KB files;
    docs/BENCHMARKS.md). The extra byte makes one read enough for a file that did not grow.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:
            return data
        parts = [data]  # the file grew since fstat (or is not a regular file): read to the end
        while part := os.read(fd, 1 << 16):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def parse_annotation(data: dict, file: str, landmarks: bool = True) -> tuple[ImageAnnotation, list[Problem]]:
    """Validate an already-decoded annotation object (see :func:`read_annotation`)."""
    problems: list[Problem] = []
    source = data.get("source")
    if source not in _SOURCES:
        problems.append(Problem(file, None, P.BAD_FIELD, R.SET_NULL, f"source is {source!r}, not 'user' or 'shop'"))
        source = None
    pair_id = data.get("pair_id")
    if not _is_int(pair_id):
        problems.append(Problem(file, None, P.BAD_FIELD, R.SET_NULL, f"pair_id is {pair_id!r}, not an int"))
        pair_id = None
    items = []
    for key, value in data.items():
        if key in ("source", "pair_id"):
            continue
        match = _ITEM_KEY.match(key)
        if match is None:
            problems.append(Problem(file, None, P.BAD_FIELD, R.IGNORED, f"unexpected key {key!r}"))
            continue
        item = _parse_item(key, int(match.group(1)), value, file, problems, landmarks)
        if item is not None:
            items.append(item)
    items.sort(key=lambda it: it.number)
    return ImageAnnotation(source, pair_id, items), problems


def _parse_item(key: str, number: int, raw, file: str, problems: list[Problem],
                check_landmarks: bool) -> Item | None:
    """Validate one item; append its problems; None if the item must be skipped.

    All checks run even when an early one already condemns the item, so that the
    report lists every problem of the item.
    """
    if not isinstance(raw, dict):
        problems.append(Problem(file, key, P.BAD_FIELD, R.SKIPPED_ITEM, f"item is a {type(raw).__name__}"))
        return None
    usable = True
    category_id = raw.get("category_id")
    if not _is_int(category_id):
        problems.append(Problem(file, key, P.BAD_FIELD, R.SKIPPED_ITEM, f"category_id is {category_id!r}"))
        usable = False
    elif category_id not in CATEGORY_BY_ID:
        problems.append(Problem(file, key, P.UNKNOWN_CATEGORY, R.SKIPPED_ITEM, f"category_id {category_id}"))
        usable = False
    polygons = _parse_polygons(raw.get("segmentation"), key, file, problems)
    if not polygons:
        usable = False
    box = _parse_box(raw.get("bounding_box"), key, file, problems)
    landmarks = None
    if check_landmarks:
        known_category = _is_int(category_id) and category_id in CATEGORY_BY_ID
        landmarks = _parse_landmarks(raw.get("landmarks"), category_id if known_category else None,
                                     key, file, problems)
    attributes = {}
    for name in _ATTRIBUTES:
        value = raw.get(name)
        if not _is_int(value):
            problems.append(Problem(file, key, P.BAD_FIELD, R.SET_NULL, f"{name} is {value!r}, not an int"))
            value = None
        attributes[name] = value
    if not usable:
        return None
    return Item(key, number, category_id, box, polygons, landmarks, attributes)


def _parse_polygons(raw, key: str, file: str, problems: list[Problem]) -> list[list]:
    """The item's valid polygons; reports dropped ones and the no-polygon case."""
    if not isinstance(raw, list):
        problems.append(Problem(file, key, P.BAD_FIELD, R.SKIPPED_ITEM, f"segmentation is {type(raw).__name__}"))
        return []
    kept, malformed, odd, short = [], 0, 0, 0
    for poly in raw:
        if not _is_number_list(poly):
            malformed += 1
        elif len(poly) % 2:
            odd += 1
        elif len(poly) < 6:
            short += 1
        else:
            kept.append(poly)
    for name, n, what in ((P.BAD_FIELD, malformed, "not a list of numbers"),
                          (P.ODD_POLYGON, odd, "an odd number of coordinates"),
                          (P.SHORT_POLYGON, short, "fewer than 3 points")):
        if n:
            problems.append(Problem(file, key, name, R.DROPPED_POLYGON, f"{n} of {len(raw)} polygon(s) with {what}"))
    if not kept:
        detail = "segmentation is empty" if not raw else "no valid polygon left"
        problems.append(Problem(file, key, P.NO_POLYGON, R.SKIPPED_ITEM, detail))
    return kept


def _parse_box(raw, key: str, file: str, problems: list[Problem]) -> list | None:
    """``[x1, y1, x2, y2]`` if well formed, else None (reported; box from polygons)."""
    if _is_number_list(raw) and len(raw) == 4 and raw[2] >= raw[0] and raw[3] >= raw[1]:
        return raw
    problems.append(Problem(file, key, P.BAD_FIELD, R.BBOX_FROM_POLYGONS,
                            f"bounding_box {_short_repr(raw)} is not [x1, y1, x2, y2] with x2 >= x1, y2 >= y1"))
    return None


def _parse_landmarks(raw, category_id: int | None, key: str, file: str, problems: list[Problem]) -> list | None:
    """The landmark list if it has exactly the category's count of triples with v in {0, 1, 2}.

    With ``category_id`` None (the item is skipped for its category), the list is
    still checked as far as possible without the count: numbers, whole triples, v.
    """
    if not _is_number_list(raw):
        problems.append(Problem(file, key, P.BAD_FIELD, R.CLEARED_LANDMARKS, f"landmarks is {_short_repr(raw)}"))
        return None
    if category_id is None:
        expected = len(raw) - len(raw) % 3  # unknown count: only require whole triples
        needs = "whole (x, y, v) triples"
    else:
        expected = 3 * CATEGORY_BY_ID[category_id].num_landmarks
        needs = f"category {category_id} needs {expected}"
    if len(raw) < expected:
        problems.append(Problem(file, key, P.FEW_LANDMARKS, R.CLEARED_LANDMARKS, f"{len(raw)} values, {needs}"))
        return None
    if len(raw) > expected:
        problems.append(Problem(file, key, P.BAD_FIELD, R.CLEARED_LANDMARKS, f"{len(raw)} values, {needs}"))
        return None
    if not set(raw[2::3]) <= {0, 1, 2}:
        detail = "visibility values other than 0, 1, 2"
        problems.append(Problem(file, key, P.BAD_FIELD, R.CLEARED_LANDMARKS, detail))
        return None
    return raw


def _is_int(value) -> bool:
    return type(value) is int  # excludes bool, which JSON true/false would give


_NUMBER_TYPES = frozenset((int, float))


def _is_number_list(value) -> bool:
    """True for a list of finite ints/floats (JSON ``true``/``false`` are not numbers).

    The element types are collected in C (``set(map(type, ...))``), which rejects
    booleans (``bool`` is a subclass of ``int`` but not ``int`` itself) and
    anything else. ``sum`` also runs in C: a NaN or an infinity (which Python's
    json accepts) makes the sum NaN or infinite, and ``total - total`` is then
    NaN, which is not 0.
    """
    if not isinstance(value, list) or not _NUMBER_TYPES.issuperset(map(type, value)):
        return False
    total = sum(value)
    return total - total == 0


def _short_repr(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
