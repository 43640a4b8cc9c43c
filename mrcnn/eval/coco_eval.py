"""Scoring detections against a COCO ground-truth file: COCO AP (boxes, masks and landmarks), per
category, per DeepFashion2 attribute value, and matterport's mAP@0.5.

    gt = load_ground_truth("val.json")
    records = load_results_file("results.json")          # COCO results (RLE masks)
    metrics = evaluate(gt, records, by=["scale"])

Everything here is NumPy and pycocotools (no TensorFlow): results from any
tool can be scored the same way.

Landmarks (``"keypoints"``, when the results carry them): COCOeval's keypoint AP with DeepFashion2's
OKS sigmas and our OKS (:mod:`mrcnn.eval.keypoint_eval`), 10 numbers (``KEYPOINT_STAT_NAMES``).

COCO metrics. pycocotools' ``COCOeval`` for ``"bbox"`` and ``"segm"`` with its
default parameters (IoU 0.50:0.05:0.95, 101 recall points, up to 100
detections per image, areas all/small/medium/large). The 12 numbers carry the
names in :data:`STAT_NAMES`; a value pycocotools reports as -1 (no ground truth
in that area range) is ``None`` here. Detections are loaded the way
``COCO.loadRes`` loads them, except that for ``"segm"`` a detection's area is
its mask's pixel count (loadRes would take the box area whenever a record has
a box, which moves detections between the small/medium/large ranges).

Per attribute value (``by``). DeepFashion2 labels every garment with
``scale``, ``occlusion``, ``zoom_in`` and ``viewpoint`` (1, 2, 3) and every
image with ``source`` (user/shop). The rule:

* annotation attributes: the split for value v keeps **all** images and all
  detections; ground-truth garments whose value is not v are *ignored*: a
  detection that matches one (same IoU as usual, one detection per garment)
  counts neither as a true nor as a false positive, and the garment is not in
  the recall denominator. Detections matching nothing remain false positives
  in every split. This is the rule COCO itself uses for its small / medium /
  large splits (ground truth outside the range is ignored), applied to an
  attribute; a detection prefers a garment of the split over an ignored one.
* image attributes (``source``): the split for value v is the images with
  that value; other images and their detections are left out.
* a missing value (null in the file) is a value of its own, ``None``
  (labelled "unknown"), so every non-crowd ground-truth garment of the
  evaluated images is in exactly one split: the splits' instance counts add
  up to the total. Crowd annotations (``iscrowd`` 1) are ignored everywhere,
  as COCOeval does.
* each split gives the area-"all" numbers (:data:`SPLIT_STAT_NAMES`).

matterport's mAP@0.5. Per image, matterport's ``compute_ap``: predictions in
descending score order, IoU of **masks**, greedy matching in descending IoU
order with the class required to agree, VOC all-point interpolation; the
reported number is the mean of the per-image APs. matterport's matcher skips a
ground truth only when ``gt_match > 0``, so one matched by the first
prediction (index 0) can be matched again (matterport issue #1692): recall,
and AP, can then exceed 1. :func:`match_predictions` reproduces that by
default (``matterport_quirk=True``). Images without ground truth have no AP
(matterport divides 0 by 0) and are left out of the mean (and counted).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.eval.keypoint_eval import (DEEPFASHION2_OKS_SIGMAS, KEYPOINT_SPLIT_STAT_NAMES, KEYPOINT_STAT_NAMES,
                                     check_gt_keypoints, compute_oks, keypoint_count)
from mrcnn.eval.matterport_ap import matterport_map50
from mrcnn.eval.results import (EvaluationError, check_gt_segmentations, check_results, quiet, results_coco)

IOU_TYPES = ("bbox", "segm", "keypoints")
# COCOeval.stats, in its order: (name, IoU, area range, max detections per image).
STATS = (
    ("AP", "0.50:0.95", "all", 100), ("AP50", "0.50", "all", 100), ("AP75", "0.75", "all", 100),
    ("APs", "0.50:0.95", "small", 100), ("APm", "0.50:0.95", "medium", 100), ("APl", "0.50:0.95", "large", 100),
    ("AR1", "0.50:0.95", "all", 1), ("AR10", "0.50:0.95", "all", 10), ("AR100", "0.50:0.95", "all", 100),
    ("ARs", "0.50:0.95", "small", 100), ("ARm", "0.50:0.95", "medium", 100), ("ARl", "0.50:0.95", "large", 100),
)
STAT_NAMES = tuple(s[0] for s in STATS)
# The numbers given per attribute value: area "all" only (the other area ranges made the splits'
# evaluation about twice as slow, and the paper's table does not use them).
SPLIT_STAT_NAMES = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")

ANNOTATION_ATTRIBUTES = ("scale", "occlusion", "zoom_in", "viewpoint")
IMAGE_ATTRIBUTES = ("source",)
ATTRIBUTES = ANNOTATION_ATTRIBUTES + IMAGE_ATTRIBUTES
# What DeepFashion2's attribute values mean (its README).
ATTRIBUTE_LABELS = {
    "scale": {1: "small", 2: "moderate", 3: "large"},
    "occlusion": {1: "slight", 2: "medium", 3: "heavy"},
    "zoom_in": {1: "no", 2: "medium", 3: "large"},
    "viewpoint": {1: "no wear", 2: "frontal", 3: "side or back"},
    "source": {"user": "user (consumer photo)", "shop": "shop (commercial photo)"},
}
UNKNOWN_LABEL = "unknown"


# ================================================================== COCOeval
class _COCOevalWithIgnore(COCOeval):
    """COCOeval that also ignores the ground-truth annotations listed in ``ignored_ids``.

    pycocotools overwrites every annotation's ``ignore`` flag with ``iscrowd``
    in ``_prepare``; this sets it again afterwards for the listed ids. Ignored
    annotations are matched with the ordinary IoU, at most once, exactly like
    the annotations outside an area range.

    ``iou_cache`` ({(image id, category id): IoU matrix}, shared by evaluations
    of the same gt, dt and IoU type) saves recomputing IoUs for every split:
    they do not depend on which annotations are ignored.
    """

    def __init__(self, gt: COCO, dt: COCO, iou_type: str, ignored_ids: frozenset = frozenset(),
                 iou_cache: dict | None = None):
        super().__init__(gt, dt, iou_type)
        self.ignored_ids = ignored_ids
        self.iou_cache = iou_cache
        if iou_type == "keypoints":  # the detections carry their OKS setup (see evaluate); default DeepFashion2's
            self.params.kpt_oks_sigmas = np.asarray(getattr(dt, "oks_sigmas", DEEPFASHION2_OKS_SIGMAS), np.float64)
            self.oks_slices = getattr(dt, "oks_slices", None)

    def computeOks(self, imgId, catId):  # noqa: N802 (pycocotools' name)
        if self.iou_cache is None:
            return compute_oks(self, imgId, catId, self.oks_slices)
        key = (imgId, catId)
        if key not in self.iou_cache:
            self.iou_cache[key] = compute_oks(self, imgId, catId, self.oks_slices)
        return self.iou_cache[key]

    def computeIoU(self, imgId, catId):  # noqa: N802 (pycocotools' name)
        if self.iou_cache is None:
            return super().computeIoU(imgId, catId)
        key = (imgId, catId)
        if key not in self.iou_cache:
            self.iou_cache[key] = super().computeIoU(imgId, catId)
        return self.iou_cache[key]

    def _prepare(self) -> None:
        super()._prepare()
        if not self.ignored_ids:
            return
        for anns in self._gts.values():
            for ann in anns:
                if ann["id"] in self.ignored_ids:
                    ann["ignore"] = 1


def run_cocoeval(gt: COCO, dt: COCO, iou_type: str, image_ids: Sequence[int],
                 ignored_ids: Iterable[int] = (), iou_cache: dict | None = None,
                 all_areas: bool = True) -> COCOeval:
    """Evaluate, accumulate and summarise (quietly); returns the COCOeval with ``stats`` and ``eval``.

    iou_cache: a dict to reuse IoUs across calls with the same gt, dt and iou_type (see above).
    all_areas: False evaluates the area range "all" only (the small/medium/large stats are then -1).
    """
    evaluator = _COCOevalWithIgnore(gt, dt, iou_type, frozenset(ignored_ids), iou_cache)
    evaluator.params.imgIds = sorted(image_ids)
    if not all_areas:
        evaluator.params.areaRng = evaluator.params.areaRng[:1]
        evaluator.params.areaRngLbl = evaluator.params.areaRngLbl[:1]
    with quiet():
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def summary_stats(evaluator: COCOeval) -> dict[str, float | None]:
    """The 12 COCO numbers by name (``STAT_NAMES``; keypoints: the 10 ``KEYPOINT_STAT_NAMES``);
    -1 (nothing to evaluate) becomes None."""
    names = KEYPOINT_STAT_NAMES if evaluator.params.iouType == "keypoints" else STAT_NAMES
    return {name: _number(v) for name, v in zip(names, evaluator.stats)}


def category_ap(evaluator: COCOeval) -> dict[int, dict[str, float | None]]:
    """{category id: {"AP", "AP50", "AP75"}} from the accumulated precision, area "all", 100 detections.

    ``eval["precision"]`` is [T IoU thresholds, R recall points, K categories,
    A area ranges, M max-detection settings]; -1 marks categories without ground
    truth, whose APs are None.
    """
    precision = evaluator.eval["precision"]
    thresholds = evaluator.params.iouThrs
    at = {0.5: int(np.argmin(np.abs(thresholds - 0.5))), 0.75: int(np.argmin(np.abs(thresholds - 0.75)))}
    table = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]  # [T, R]
        table[category_id] = {"AP": _mean_valid(p), "AP50": _mean_valid(p[at[0.5]]),
                              "AP75": _mean_valid(p[at[0.75]])}
    return table


def coco_metrics(gt: COCO, detections: dict[str, COCO], image_ids: Sequence[int],
                 iou_caches: dict[str, dict] | None = None) -> dict:
    """The 12 numbers per IoU type and the per-category table.

    Args:
      detections: {"bbox": COCO, "segm": COCO} from :func:`results_coco` (either may be absent).
      iou_caches: {iou type: cache} to share IoUs with later calls (see ``run_cocoeval``).
    Returns:
      {"bbox": {stat: value}, "segm": {...}, "per_category": [{"id", "name",
      "instances", "bbox": {"AP", "AP50", "AP75"}, "segm": {...}}, ...]}.
    """
    metrics: dict[str, Any] = {}
    per_type = {}
    for iou_type, dt in detections.items():
        evaluator = run_cocoeval(gt, dt, iou_type, image_ids, iou_cache=(iou_caches or {}).get(iou_type))
        metrics[iou_type] = summary_stats(evaluator)
        per_type[iou_type] = category_ap(evaluator)
    counts = instance_counts(gt, image_ids)
    metrics["per_category"] = [
        {"id": cid, "name": gt.cats[cid]["name"], "instances": counts.get(cid, 0),
         **{iou_type: per_type[iou_type][cid] for iou_type in per_type}}
        for cid in sorted(gt.cats)]
    return metrics


def instance_counts(gt: COCO, image_ids: Iterable[int]) -> dict[int, int]:
    """{category id: non-crowd annotations} over the given images."""
    counts: dict[int, int] = defaultdict(int)
    for image_id in image_ids:
        for ann in gt.imgToAnns.get(image_id, []):
            if not ann["iscrowd"]:
                counts[ann["category_id"]] += 1
    return dict(counts)


# ================================================================== attribute splits
@dataclass
class AttributeSplit:
    """One value of an attribute: the images and ignored annotations of its evaluation.

    instances: non-crowd ground-truth annotations that count in this split.
    """

    value: Any
    label: str
    image_ids: list[int]
    ignored_ids: frozenset
    instances: int


def attribute_level(attribute: str) -> str:
    """"annotation" or "image": where the attribute is stored (see the module docstring)."""
    if attribute in ANNOTATION_ATTRIBUTES:
        return "annotation"
    if attribute in IMAGE_ATTRIBUTES:
        return "image"
    raise EvaluationError(f"unknown attribute {attribute!r}; choose from {', '.join(ATTRIBUTES)}")


def attribute_splits(gt: COCO, attribute: str, image_ids: Sequence[int]) -> list[AttributeSplit]:
    """The splits of ``attribute`` over ``image_ids``: its values in sorted order, None ("unknown") last.

    Every non-crowd annotation of the images counts in exactly one split.
    """
    anns = [a for i in image_ids for a in gt.imgToAnns.get(i, []) if not a["iscrowd"]]
    if attribute_level(attribute) == "image":
        value_of_image = {i: gt.imgs[i].get(attribute) for i in image_ids}
        values = _sorted_values(value_of_image.values())
        splits = []
        for value in values:
            ids = [i for i in image_ids if value_of_image[i] == value]
            count = sum(1 for a in anns if value_of_image[a["image_id"]] == value)
            splits.append(AttributeSplit(value, _label(attribute, value), ids, frozenset(), count))
        return splits
    values = _sorted_values(a.get(attribute) for a in anns)
    splits = []
    for value in values:
        ignored = frozenset(a["id"] for a in anns if a.get(attribute) != value)
        splits.append(AttributeSplit(value, _label(attribute, value), list(image_ids), ignored,
                                     len(anns) - len(ignored)))
    return splits


def metrics_by_attribute(gt: COCO, detections: dict[str, COCO], attribute: str,
                         image_ids: Sequence[int], iou_caches: dict[str, dict] | None = None) -> dict:
    """{"level", "instances", "values": [{"value", "label", "instances", "images", "bbox": {...}, "segm": {...}}]}.

    "bbox" and "segm" hold the ``SPLIT_STAT_NAMES`` numbers. iou_caches: as for :func:`coco_metrics`.
    """
    rows = []
    for split in attribute_splits(gt, attribute, image_ids):
        row: dict[str, Any] = {"value": split.value, "label": split.label, "instances": split.instances,
                               "images": len(split.image_ids)}
        for iou_type, dt in detections.items():
            evaluator = run_cocoeval(gt, dt, iou_type, split.image_ids, split.ignored_ids,
                                     (iou_caches or {}).get(iou_type), all_areas=False)
            stats = summary_stats(evaluator)
            names = KEYPOINT_SPLIT_STAT_NAMES if iou_type == "keypoints" else SPLIT_STAT_NAMES
            row[iou_type] = {name: stats[name] for name in names}
        rows.append(row)
    total = sum(count for count in instance_counts(gt, image_ids).values())
    return {"level": attribute_level(attribute), "instances": total, "values": rows}


def _sorted_values(values: Iterable[Any]) -> list[Any]:
    present = set(values)
    known = sorted((v for v in present if v is not None), key=lambda v: (isinstance(v, str), v))
    return known + ([None] if None in present else [])


def _label(attribute: str, value: Any) -> str:
    if value is None:
        return UNKNOWN_LABEL
    return ATTRIBUTE_LABELS.get(attribute, {}).get(value, str(value))


# ================================================================== everything
def evaluate(gt: COCO, records: Sequence[dict], image_ids: Sequence[int] | None = None,
             by: Sequence[str] = (), map_min_score: float = 0.0, source: str = "results", *,
             keypoints: bool | None = None, oks_sigmas=None, keypoint_slices=None) -> dict:
    """COCO metrics, per-category table, attribute splits and matterport's mAP@0.5 in one dict.

    Args:
      gt: the ground truth (:func:`load_ground_truth`; with ``keypoints=True`` for landmarks).
      records: COCO result records (any image of ``gt``; those outside image_ids are not scored).
      image_ids: the evaluated images (default: all of ``gt``'s); images without
        detections count with none.
      by: attributes to split by (``ATTRIBUTES``).
      map_min_score: score threshold for matterport's mAP@0.5 only.
      keypoints: score landmarks (COCO keypoint AP, :mod:`mrcnn.eval.keypoint_eval`); default:
        when the records carry ``keypoints``.
      oks_sigmas: [K] OKS constants; default DeepFashion2's 294.
      keypoint_slices: {category id: landmark indices} scored per category (see keypoint_eval);
        default: all landmarks.
    Returns:
      {"images", "instances", "detections", "bbox", "segm", "keypoints", "per_category", "by",
      "matterport"}; "segm" and "matterport" are None for results without masks, "keypoints"
      None when landmarks are not scored.
    Raises:
      EvaluationError: bad records (see :func:`check_results`), an unknown attribute, or
        landmarks to score without keypoints in the ground truth.
    """
    image_ids = list(gt.imgs) if image_ids is None else list(image_ids)
    for attribute in by:
        attribute_level(attribute)
    _, has_masks = check_results(gt, records, source)
    count = keypoint_count(records, source)
    wanted = set(image_ids)
    records = [r for r in records if r["image_id"] in wanted]
    iou_types = ["bbox"] + (["segm"] if has_masks or not records else [])
    if "segm" in iou_types:
        check_gt_segmentations(gt, image_ids)
    if keypoints or (keypoints is None and count):
        iou_types.append("keypoints")
    detections = {t: results_coco(gt, records, t) for t in iou_types}
    if "keypoints" in detections:
        sigmas = DEEPFASHION2_OKS_SIGMAS if oks_sigmas is None else np.asarray(oks_sigmas, np.float64)
        if count and count != len(sigmas):
            raise EvaluationError(f"{source}: records have {count} keypoints, the OKS sigmas {len(sigmas)}")
        check_gt_keypoints(gt, image_ids, len(sigmas))
        detections["keypoints"].oks_sigmas = sigmas
        detections["keypoints"].oks_slices = keypoint_slices
    caches: dict[str, dict] = {t: {} for t in iou_types}
    metrics = {"images": len(image_ids), "instances": sum(instance_counts(gt, image_ids).values()),
               "detections": len(records), **coco_metrics(gt, detections, image_ids, caches)}
    metrics.setdefault("segm", None)
    metrics.setdefault("keypoints", None)
    metrics["by"] = {a: metrics_by_attribute(gt, detections, a, image_ids, caches) for a in by}
    metrics["matterport"] = (matterport_map50(gt, records, image_ids, map_min_score)
                             if "segm" in detections else None)
    return metrics


# ================================================================== helpers
def _number(value: float) -> float | None:
    return None if value is None or value < 0 or np.isnan(value) else float(value)


def _mean_valid(precision: np.ndarray) -> float | None:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None
