"""Detections as COCO "results" records (the format ``COCO.loadRes`` and COCOeval read).

One record per detection::

    {"image_id": 3, "category_id": 8, "bbox": [x, y, w, h], "score": 0.97,
     "segmentation": {"size": [H, W], "counts": "<compressed RLE>"},
     "category_name": "trousers", "file_name": "test2.png", "width": W, "height": H}

``bbox`` is COCO's [x, y, width, height] in pixels of the image as read (top-left
corner, floats); ``segmentation`` is the mask as compressed RLE with ``counts``
as a str (JSON-ready). The last four keys are ours; pycocotools ignores them.
``loadRes`` also needs the images and categories, which :func:`images_record`
and :func:`categories_records` build (a GT-like skeleton with no annotations).
:func:`read_json` and :func:`write_json` are the JSON file I/O of the COCO readers and writers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn.image_io import atomic_write


def boxes_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Convert matterport boxes to COCO boxes.

    Args:
      boxes: [N, (y1, x1, y2, x2)] int or float, pixels, y2/x2 exclusive.
    Returns:
      [N, (x, y, w, h)] float64, pixels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    y1, x1, y2, x2 = boxes.T
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode masks as compressed RLE with str counts.

    Args:
      masks: [H, W, N] bool (or 0/1).
    Returns:
      N dicts {"size": [H, W], "counts": str}.
    """
    if masks.shape[2] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8)))
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def detections_to_records(
    detections: dict[str, np.ndarray],
    image_id: int,
    class_names: Sequence[str],
    *,
    file_name: str | None = None,
    category_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """COCO results records for one image's detections.

    Args:
      detections: one element of ``MaskRCNN.detect``'s list: "rois" [N, (y1, x1,
        y2, x2)] int32 pixels (exclusive y2/x2), "class_ids" [N] int32,
        "scores" [N] float32, "masks" [H, W, N] bool.
      image_id: the image's id in the matching images list.
      class_names: names by class id, background first.
      file_name: stored in each record when given.
      category_ids: COCO category id of each class id (index = class id); the
        default is the identity (DeepFashion2's ids 1..13 are its class ids).
        matterport's COCO model needs the sorted COCO ids here.
    Returns:
      N records in detection order (matterport returns them by descending score).
    """
    masks = detections["masks"]
    height, width = masks.shape[:2]
    xywh = boxes_to_xywh(detections["rois"])
    records = []
    for i, rle in enumerate(encode_masks(masks)):
        class_id = int(detections["class_ids"][i])
        record = {
            "image_id": int(image_id),
            "category_id": int(category_ids[class_id]) if category_ids is not None else class_id,
            "bbox": [float(v) for v in xywh[i]],
            "score": float(detections["scores"][i]),
            "segmentation": rle,
            "category_name": class_names[class_id] if class_id < len(class_names) else f"class {class_id}",
            "width": int(width),
            "height": int(height),
        }
        if file_name is not None:
            record["file_name"] = file_name
        records.append(record)
    return records


def images_record(image_id: int, file_name: str, height: int, width: int, **extra: Any) -> dict[str, Any]:
    """A COCO ``images`` entry: {"id", "file_name", "height", "width", **extra}."""
    return {"id": int(image_id), "file_name": file_name, "height": int(height), "width": int(width), **extra}


def categories_records(class_names: Sequence[str], category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO ``categories`` for every class but background: [{"id", "name"}, ...]."""
    ids = category_ids if category_ids is not None else range(len(class_names))
    return [{"id": int(ids[c]), "name": class_names[c]} for c in range(1, len(class_names))]


def read_json(path: str | os.PathLike, error: type[Exception], what: str, object_hook=None) -> Any:
    """The parsed JSON file at ``path``; a missing, folder or non-JSON path raises ``error`` (one line).

    ``what`` names the file in the messages ("COCO annotation file", "results file").
    ``object_hook`` is passed to ``json.load`` (e.g. to drop big fields while parsing).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return json.load(f, object_hook=object_hook)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not a {what} (not valid JSON: {exc})") from None


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as compact JSON, atomically (temp file + rename)."""
    payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
    atomic_write(path, lambda f: f.write(payload))
