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
import math
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

    An item key written twice (two ``"item1"`` objects) is a ``bad_field`` problem: the last
    object is used, as JSON decoders do, and each earlier one is reported as skipped.
    """
    file = str(path)
    try:
        raw = read_bytes(path)
        data = decode_json(raw)
    except RecursionError:  # nesting deeper than the interpreter's recursion limit ('[' * 100000)
        return None, [Problem(file, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, "JSON nested too deeply to read")]
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, [Problem(file, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, _short(exc))]
    if not isinstance(data, dict):
        detail = f"top level is a JSON {type(data).__name__}, not an object"
        return None, [Problem(file, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, detail)]
    annotation, problems, num_item_keys = _parse(data, file, landmarks)
    # Cheap test for repeated item keys (about 0.7 us per KB): the text holds '"item' once per item key
    # unless a key repeats (or another key or a string starts with "item"); only then is it decoded again.
    if raw.count(b'"item') != num_item_keys:
        problems.extend(_repeated_item_keys(raw, file))
    return annotation, problems


_DECODER = json.JSONDecoder()


def decode_json(raw: bytes):
    """``json.loads(raw)``, with the same result and errors, about 2.5 us faster for a usual file.

    A file that starts with ``{`` followed by a non-NUL byte is UTF-8 for ``json.loads`` too
    (``json.detect_encoding``); it is decoded without detecting the encoding, and the check for
    text after the value runs only when there is some. Anything else goes to ``json.loads``.
    """
    if raw[:1] != b"{" or raw[1:2] == b"\x00":
        return json.loads(raw)
    text = raw.decode("utf-8", "surrogatepass")
    data, end = _DECODER.raw_decode(text)
    if end != len(text):
        end = json.decoder.WHITESPACE.match(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    return data


def _repeated_item_keys(raw: bytes, file: str) -> list[Problem]:
    """A ``bad_field`` problem per earlier object of an item key written more than once at the top level."""
    top_level_keys: list[str] = []

    def pairs_of(pairs: list[tuple]) -> dict:
        top_level_keys[:] = [key for key, _ in pairs]  # the top-level object is the last one decoded
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=pairs_of)
    except (ValueError, RecursionError):  # decoded once already; cannot happen, but never raise on data
        return []
    counts: dict[str, int] = {}
    for key in top_level_keys:
        counts[key] = counts.get(key, 0) + 1
    return [Problem(file, key, P.BAD_FIELD, R.SKIPPED_ITEM,
                    f"{key} appears {n} times; the last one is used, the {n - 1} earlier one(s) skipped")
            for key, n in counts.items() if n > 1 and _ITEM_KEY.match(key)]


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
    annotation, problems, _ = _parse(data, file, landmarks)
    return annotation, problems


def _parse(data: dict, file: str, landmarks: bool) -> tuple[ImageAnnotation, list[Problem], int]:
    """:func:`parse_annotation`, plus the number of item keys (``item<digits>``) in ``data``."""
    problems: list[Problem] = []
    source = data.get("source")
    if source not in _SOURCES:
        detail = f"source is {_short_repr(source)}, not 'user' or 'shop'"
        problems.append(Problem(file, None, P.BAD_FIELD, R.SET_NULL, detail))
        source = None
    pair_id = data.get("pair_id")
    if not _is_int(pair_id):
        problems.append(Problem(file, None, P.BAD_FIELD, R.SET_NULL, f"pair_id is {_short_repr(pair_id)}, not an int"))
        pair_id = None
    items = []
    num_item_keys = 0
    for key, value in data.items():
        if key in ("source", "pair_id"):
            continue
        match = _ITEM_KEY.match(key)
        if match is None:
            problems.append(Problem(file, None, P.BAD_FIELD, R.IGNORED, f"unexpected key {_short_repr(key)}"))
            continue
        num_item_keys += 1
        item = _parse_item(key, int(match.group(1)), value, file, problems, landmarks)
        if item is not None:
            items.append(item)
    items.sort(key=lambda it: it.number)
    return ImageAnnotation(source, pair_id, items), problems, num_item_keys


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
        problems.append(Problem(file, key, P.BAD_FIELD, R.SKIPPED_ITEM, f"category_id is {_short_repr(category_id)}"))
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
            problems.append(Problem(file, key, P.BAD_FIELD, R.SET_NULL, f"{name} is {_short_repr(value)}, not an int"))
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
    for name, n, what in ((P.BAD_FIELD, malformed, "values other than finite numbers below 1e9"),
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
# Coordinates are pixels; a list whose values reach this far (its Euclidean norm) is not coordinates,
# and clipping it to the image could overflow a float.
MAX_COORDINATE = 1e9


def _is_number_list(value) -> bool:
    """True for a list of finite ints/floats whose Euclidean norm is below ``MAX_COORDINATE`` (pixels).

    JSON ``true``/``false`` are not numbers. The element types are collected in C
    (``set(map(type, ...))``), which rejects booleans (``bool`` is a subclass of ``int``
    but not ``int`` itself) and anything else. ``math.hypot`` also runs in C (about 0.2 us
    more than ``sum`` per list; :func:`decode_json` saves more per file): the list's Euclidean
    norm is NaN or infinite for a NaN or an infinity (which Python's json accepts), so the
    comparison is False; it raises OverflowError for an int too large for a float
    (``10**400``); and it is at least the largest magnitude, so every value lies within
    ``MAX_COORDINATE`` of 0.
    """
    if not isinstance(value, list) or not _NUMBER_TYPES.issuperset(map(type, value)):
        return False
    try:
        return math.hypot(*value) < MAX_COORDINATE
    except OverflowError:
        return False


def _short_repr(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a value nested too deeply to repr is named as such)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
