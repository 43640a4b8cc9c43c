"""COCO files for evaluation: ground truth and results loaded and checked, detections as result records.

Detections become COCO "results" records (the format ``COCO.loadRes`` and COCOeval read).

One record per detection::

    {"image_id": 3, "category_id": 8, "bbox": [x, y, w, h], "score": 0.97,
     "segmentation": {"size": [H, W], "counts": "<compressed RLE>"},
     "category_name": "trousers", "file_name": "test2.png", "width": W, "height": H}

``bbox`` is COCO's [x, y, width, height] in pixels of the image as read (top-left
corner, floats); ``segmentation`` is the mask as compressed RLE with ``counts``
as a str (JSON-ready). A model with the landmark head adds COCO ``keypoints`` (x, y, score for
each landmark of the table; only the detection's category's slice is non-zero) and ``landmark_score``,
the detection's score times the mean of its landmarks' scores (heatmap confidences)
(:func:`landmark_instance_scores`): landmark AP ranks the keypoint
results by it (COCO scores keypoint results by their own score; to score such a file with plain
pycocotools, copy ``landmark_score`` into ``score`` for ``COCOeval(..., "keypoints")``). The
other keys after ``segmentation`` are ours; pycocotools ignores them.
``loadRes`` also needs the images and categories, which :func:`images_record`
and :func:`categories_records` build (a GT-like skeleton with no annotations).
"""
from __future__ import annotations

import contextlib
import io
import math
import numbers
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.io.files import read_json


class EvaluationError(Exception):
    """Unusable ground truth or results; the message is one line and names the file."""



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
        "scores" [N] float32, "masks" [H, W, N] bool; with the landmark head also "landmarks"
        [N, K, (x, y, score)], written as the record's COCO ``keypoints`` (3 K numbers, the
        detection's class slice filled, the others 0) with its ``landmark_score``.
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
    if "landmarks" in detections:
        landmark_scores = landmark_instance_scores(detections["scores"], detections["landmarks"])
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
        if "landmarks" in detections:  # the landmark head's: 3 values per landmark, the class slice filled
            record["keypoints"] = [round(float(v), 2) for v in np.asarray(detections["landmarks"][i]).reshape(-1)]
            record["landmark_score"] = float(landmark_scores[i])
        if file_name is not None:
            record["file_name"] = file_name
        records.append(record)
    return records


def landmark_instance_scores(scores, landmarks) -> np.ndarray:
    """Each detection's landmark score: its detection score times the mean score of its landmarks (NumPy).

    The rank of a detection's landmarks in keypoint AP (its COCO keypoint result's score): a
    confident box with vague heatmaps ranks below one whose heatmaps agree on a point (the
    rescoring of top-down keypoint detectors such as SimpleBaseline and HRNet).

    Args:
      scores: [n] detection scores.
      landmarks: [n, N, (x, y, score)] from :func:`mrcnn.ops.keypoint_targets.class_landmarks` (or the
        export's twin): the detection's class slice has scores in (0, 1], the rest 0.
    Returns:
      [n] float32 in [0, 1]: ``score * mean(landmark scores > 0)``; 0 for a detection without landmarks.
    """
    if not len(scores):
        return np.zeros(0, np.float32)
    point_scores = np.asarray(landmarks, np.float64).reshape(len(scores), -1)[:, 2::3]  # [n, N]
    means = point_scores.sum(axis=1) / np.maximum((point_scores > 0).sum(axis=1), 1)  # 0 without landmarks
    return (np.asarray(scores, np.float64) * means).astype(np.float32)


def images_record(image_id: int, file_name: str, height: int, width: int, **extra: Any) -> dict[str, Any]:
    """A COCO ``images`` entry: {"id", "file_name", "height", "width", **extra}."""
    return {"id": int(image_id), "file_name": file_name, "height": int(height), "width": int(width), **extra}


def categories_records(class_names: Sequence[str], category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO ``categories`` for every class but background: [{"id", "name"}, ...]."""
    ids = category_ids if category_ids is not None else range(len(class_names))
    return [{"id": int(ids[c]), "name": class_names[c]} for c in range(1, len(class_names))]


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """A segmentation (compressed or uncompressed RLE, or polygons) as one compressed RLE."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            return mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, *segmentation["size"])
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        return segmentation
    raise EvaluationError(f"unreadable segmentation (not polygons or RLE): {str(segmentation)[:60]}")


# ================================================================== loading and checking
@contextlib.contextmanager
def quiet():
    """Silence pycocotools' progress prints (they go to stdout)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_ground_truth(path: str | Path, keypoints: bool = False) -> COCO:
    """Read a COCO instances file as a pycocotools ``COCO`` (quietly).

    ``keypoints`` fields (DeepFashion2 files carry 882 numbers per garment) are dropped while
    parsing, or with ``keypoints=True`` (landmark evaluation) kept as float32 arrays, a tenth of
    the memory of Python lists, with ``num_keypoints`` (labelled points) added where missing.
    Annotations without ``iscrowd`` get 0. Raises EvaluationError for a missing or non-COCO file.
    """
    hook = _compact_keypoints if keypoints else _drop_keypoints
    data = read_json(path, EvaluationError, "COCO annotation file", object_hook=hook)
    return ground_truth_from_dict(data, str(path))


def _drop_keypoints(obj: dict) -> dict:
    obj.pop("keypoints", None)
    return obj


def _compact_keypoints(obj: dict) -> dict:
    points = obj.get("keypoints")
    if isinstance(points, list) and "image_id" in obj:
        try:
            obj["keypoints"] = np.asarray(points, np.float32)
        except (TypeError, ValueError):
            raise EvaluationError(f"annotation {obj.get('id')}: keypoints are not numbers") from None
        obj.setdefault("num_keypoints", int(np.count_nonzero(obj["keypoints"][2::3] > 0)))
    return obj


def ground_truth_from_dict(data: Any, source: str = "ground truth") -> COCO:
    """A ``COCO`` object from an in-memory COCO instances dict (checked; the dict is used as is)."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise EvaluationError(f"{source}: not a COCO instances file (needs 'images', 'annotations', 'categories')")
    for image in data["images"]:
        if not isinstance(image, dict) or not all(k in image for k in ("id", "width", "height")):
            raise EvaluationError(f"{source}: an image lacks id, width or height")
        for key in ("id", "width", "height"):
            if type(image[key]) is not int or (key != "id" and image[key] < 1):
                raise EvaluationError(f"{source}: image {_id_of(image)} has {key} {image[key]!r}, not "
                                      f"{'an integer' if key == 'id' else 'a positive integer'}")
        if not isinstance(image.get("file_name", ""), str):
            raise EvaluationError(f"{source}: image {image['id']} has file_name {image['file_name']!r}, not a string")
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or not all(k in ann for k in ("id", "image_id", "category_id", "bbox", "area")):
            raise EvaluationError(f"{source}: annotation {_id_of(ann)} lacks id, image_id, category_id, bbox or area")
        ann.setdefault("iscrowd", 0)
    coco = COCO()
    coco.dataset = data
    with quiet():
        coco.createIndex()
    unknown = [a for a in data["annotations"] if a["image_id"] not in coco.imgs or a["category_id"] not in coco.cats]
    if unknown:
        raise EvaluationError(f"{source}: annotation {unknown[0]['id']} refers to an image or category "
                              f"that is not listed ({len(unknown)} such annotations)")
    return coco


def load_results_file(path: str | Path) -> list[dict]:
    """Read a COCO results file: a JSON list of {image_id, category_id, score, bbox and/or segmentation}."""
    records = read_json(path, EvaluationError, "results file")
    if not isinstance(records, list):
        raise EvaluationError(f"{path}: not a COCO results file (the top level must be a list of detections)")
    return records


def check_results(gt: COCO, records: Sequence[Any], source: str = "results") -> tuple[bool, bool]:
    """Check result records against the ground truth.

    Returns (has_boxes, has_masks): whether the records carry ``bbox`` /
    ``segmentation`` (every record must agree). Raises EvaluationError for a
    record that is not an object, lacks image_id / category_id / score, or
    refers to an image or category the ground truth does not list.
    """
    for k, r in enumerate(records):
        if not isinstance(r, dict) or not all(key in r for key in ("image_id", "category_id", "score")):
            raise EvaluationError(f"{source}: record {k} is not a detection (needs image_id, category_id, score)")
        if not ("bbox" in r or "segmentation" in r):
            raise EvaluationError(f"{source}: record {k} has neither bbox nor segmentation")
        _check_record_values(r, k, source)
    for key, known, what in (("image_id", gt.imgs, "image ids"), ("category_id", gt.cats, "category ids")):
        bad = sorted({r[key] for r in records if r[key] not in known}, key=str)
        if bad:
            raise EvaluationError(f"{source}: {len(bad)} {what} not in the ground truth: "
                                  f"{', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''} "
                                  f"(ground truth has {', '.join(map(str, sorted(known)[:15]))}"
                                  f"{' ...' if len(known) > 15 else ''})")
    has_boxes = [("bbox" in r) for r in records]
    has_masks = [("segmentation" in r) for r in records]
    for flags, key in ((has_boxes, "bbox"), (has_masks, "segmentation")):
        if any(flags) and not all(flags):
            raise EvaluationError(f"{source}: some records have '{key}' and some do not")
    return bool(records) and all(has_boxes), bool(records) and all(has_masks)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_record_values(record: dict, index: int, source: str) -> None:
    """Types and values of one record: a finite score, a bbox of 4 finite numbers, RLE counts as a string or a
    list of integers (bytes as pycocotools returns them), polygons of numbers. Raises EvaluationError naming
    the record."""
    where = f"{source}: record {index}"
    if not _finite_number(record["score"]):
        raise EvaluationError(f"{where}: score must be a finite number, got {record['score']!r}")
    if "landmark_score" in record and not _finite_number(record["landmark_score"]):
        raise EvaluationError(f"{where}: landmark_score must be a finite number, got {record['landmark_score']!r}")
    if "bbox" in record:
        box = record["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)):
            raise EvaluationError(f"{where}: bbox must be [x, y, width, height] finite numbers, got {box!r}")
    if "segmentation" in record:
        segmentation = record["segmentation"]
        if isinstance(segmentation, dict):
            counts, size = segmentation.get("counts"), segmentation.get("size")
            counts_ok = isinstance(counts, (str, bytes)) or (isinstance(counts, list) and all(
                _whole_number(c) and c >= 0 for c in counts))  # bytes: pycocotools' own encode, in memory
            size_ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(
                _whole_number(v) and v > 0 for v in size)
            if not (counts_ok and size_ok):
                raise EvaluationError(f"{where}: segmentation RLE needs counts (a string or a list of counts) "
                                      f"and size [height, width]")
        elif not (isinstance(segmentation, list) and all(
                isinstance(p, list) and all(_finite_number(v) for v in p) for p in segmentation)):
            raise EvaluationError(f"{where}: segmentation must be RLE or a list of polygons of finite numbers")


def _whole_number(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_gt_segmentations(gt: COCO, image_ids: Iterable[int]) -> None:
    """Raise EvaluationError if an annotation of these images has no polygon or RLE to rasterise.

    (pycocotools fails with an IndexError on an empty polygon list.)
    """
    for image_id in image_ids:
        for ann in gt.imgToAnns.get(image_id, []):
            seg = ann.get("segmentation")
            usable = (isinstance(seg, dict) and "counts" in seg and "size" in seg) or (
                isinstance(seg, list) and any(isinstance(p, list) and len(p) >= 6 for p in seg))
            if not usable:
                raise EvaluationError(f"ground-truth annotation {ann['id']} (image {image_id}) has no usable "
                                      f"segmentation, so masks cannot be scored")


def results_coco(gt: COCO, records: Sequence[dict], iou_type: str) -> COCO:
    """Detections as a pycocotools ``COCO`` for one IoU type (the records are not modified).

    bbox: ``bbox`` as given (or the mask's extent), area = box width x height.
    segm: ``segmentation`` as compressed RLE (polygons and uncompressed RLE
    are converted at the image's size), area = mask pixels, bbox = the mask's extent.
    keypoints: ``keypoints``, scored by ``landmark_score`` where the record has one (else ``score``).
    """
    anns = []
    for k, r in enumerate(records):
        ann = {"id": k + 1, "image_id": r["image_id"], "category_id": r["category_id"],
               "score": float(r["score"]), "iscrowd": 0}
        if iou_type == "segm" or iou_type == "bbox" and "bbox" not in r:
            image = gt.imgs[r["image_id"]]
            rle = to_rle(r["segmentation"], image["height"], image["width"])
            if list(rle["size"]) != [image["height"], image["width"]]:
                raise EvaluationError(f"result record {k}: mask size {list(rle['size'])} differs from image "
                                      f"{r['image_id']}'s [height, width] [{image['height']}, {image['width']}]")
            ann["segmentation"] = rle
            ann["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
            ann["area"] = float(mask_utils.area(rle))
        if iou_type == "keypoints":
            _keypoint_fields(ann, r)
            ann["score"] = float(r.get("landmark_score", r["score"]))
        if iou_type == "bbox" and "bbox" in r:
            if not (isinstance(r["bbox"], (list, tuple)) and len(r["bbox"]) == 4):
                raise EvaluationError(f"result record {k}: bbox must be [x, y, width, height], got {r['bbox']!r}")
            ann["bbox"] = [float(v) for v in r["bbox"]]
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
        anns.append(ann)
    coco = COCO()
    coco.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                    "annotations": anns}
    with quiet():
        coco.createIndex()
    return coco


def _keypoint_fields(ann: dict, record: dict) -> None:
    """keypoints, bbox and area of a keypoint detection, as ``COCO.loadRes`` sets them: with a bbox,
    area = its width x height; without, bbox and area are the extent of all the points (zeros included)."""
    points = np.asarray(record["keypoints"], np.float64)
    ann["keypoints"] = points
    if "bbox" in record:
        ann["bbox"] = [float(v) for v in record["bbox"]]
        ann["area"] = ann["bbox"][2] * ann["bbox"][3]
        return
    x0, x1, y0, y1 = points[0::3].min(), points[0::3].max(), points[1::3].min(), points[1::3].max()
    ann["bbox"] = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    ann["area"] = float((x1 - x0) * (y1 - y0))


def _id_of(ann: Any) -> Any:
    return ann.get("id") if isinstance(ann, dict) else "?"
