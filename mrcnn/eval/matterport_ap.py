"""matterport's mAP@0.5: its ``utils.compute_ap`` on masks, averaged over images.

Numbers from matterport-based reports use this, not COCO AP, so ``fseg evaluate``
gives it too, labelled as such. Behaviour kept from matterport:

- IoU is computed on masks, not boxes; predictions are taken in descending score order;
- matching is greedy per prediction, in descending IoU order, and the class must match;
- the quirk of matterport issue #1692: a ground truth matched to the *first* prediction
  (index 0) can be matched again, because matterport tests ``gt_match[j] > 0``
  (``matterport_quirk=True``); AP of an image can then exceed 1;
- precision is made monotone and AP sums over recall steps (VOC all-point).

``mrcnn.utils.compute_matches`` / ``compute_ap`` (matterport's public signatures, with boxes
and zero padding) are built on :func:`matterport_mask_overlaps`, :func:`score_order`,
:func:`match_predictions` and :func:`voc_ap`.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.eval.results import to_rle


def mask_overlaps(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """Pixel IoU of every pair of masks.

    Args:
      masks1: [H, W, N1] bool (or 0/1). masks2: [H, W, N2], same H, W.
    Returns:
      [N1, N2] float64; 0 where both masks are empty.
    """
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    intersections, unions = _pixel_counts(masks1, masks2, np.float64)
    return np.divide(intersections, unions, out=np.zeros_like(intersections), where=unions > 0)


def matterport_mask_overlaps(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """matterport's ``utils.compute_overlaps_masks``: pixel IoU with its threshold and float32 numbers.

    Differs from :func:`mask_overlaps` where matterport does: a pixel belongs to a mask
    when its value is ``> 0.5`` (so soft masks are accepted), the counts and the ratio are
    float32, and a pair of two empty masks gives NaN (0 / 0), not 0.
    Args:
      masks1: [H, W, N1] bool or float. masks2: [H, W, N2], same H, W.
    Returns:
      [N1, N2] float32; [N1, N2] float64 zeros when N1 or N2 is 0 (as matterport).
    """
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    intersections, unions = _pixel_counts(masks1 > 0.5, masks2 > 0.5, np.float32)
    with np.errstate(invalid="ignore"):  # two empty masks: NaN, as matterport (without its warning)
        return intersections / unions


def _pixel_counts(masks1: np.ndarray, masks2: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union pixel counts [N1, N2] of two stacks of 0/1 masks [H, W, N], in ``dtype``."""
    flat1 = masks1.reshape(-1, masks1.shape[-1]).astype(dtype)  # [H*W, N1]
    flat2 = masks2.reshape(-1, masks2.shape[-1]).astype(dtype)  # [H*W, N2]
    intersections = flat1.T @ flat2
    unions = flat1.sum(0)[:, None] + flat2.sum(0)[None, :] - intersections
    return intersections, unions


def score_order(scores: np.ndarray) -> np.ndarray:
    """Prediction indices by descending score, ties ordered as matterport orders them."""
    return np.argsort(scores)[::-1]


def match_predictions(overlaps: np.ndarray, pred_class_ids: np.ndarray, gt_class_ids: np.ndarray,
                      iou_threshold: float = 0.5, matterport_quirk: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """matterport's greedy matching.

    Each prediction, in row order (rows must be sorted by descending score),
    takes the first ground truth in descending IoU order that is still free,
    has IoU >= iou_threshold and the same class; a wrong-class ground truth is
    passed over, and the search stops at the first IoU below the threshold.
    With ``matterport_quirk`` a ground truth counts as taken only when matched
    to a prediction of index > 0 (matterport's ``gt_match > 0``, #1692);
    without it, any match takes it.

    Args:
      overlaps: [P, G] float IoU. pred_class_ids: [P] int. gt_class_ids: [G] int.
    Returns:
      gt_match: [G] float, index of the matched prediction or -1.
      pred_match: [P] float, index of the matched ground truth or -1.
    """
    gt_match = -np.ones(overlaps.shape[1])
    pred_match = -np.ones(overlaps.shape[0])
    taken_from = 0 if matterport_quirk else -1  # gt_match[j] > taken_from means "taken"
    for i in range(overlaps.shape[0]):
        for j in np.argsort(overlaps[i])[::-1]:
            if gt_match[j] > taken_from:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match


def voc_ap(pred_match: np.ndarray, num_gt: int) -> tuple[float, np.ndarray, np.ndarray]:
    """All-point interpolated AP of predictions in score order, as matterport computes it.

    Args:
      pred_match: [P] matched ground-truth index or -1, in descending score order.
      num_gt: ground-truth instances (> 0).
    Returns:
      ap, precisions [P + 2], recalls [P + 2] (padded with 0/0 in front, 0/1 at the end;
      precisions made non-increasing from the right).
    """
    hits = np.cumsum(pred_match > -1)
    precisions = np.concatenate([[0.0], hits / (np.arange(len(pred_match)) + 1), [0.0]])
    recalls = np.concatenate([[0.0], hits.astype(np.float32) / num_gt, [1.0]])  # float32 as matterport
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))
    return ap, precisions, recalls


def compute_ap(gt_class_ids: np.ndarray, gt_masks: np.ndarray, pred_class_ids: np.ndarray,
               pred_scores: np.ndarray, pred_masks: np.ndarray, iou_threshold: float = 0.5,
               matterport_quirk: bool = True) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """matterport's ``utils.compute_ap`` on masks (boxes are not needed: inputs are not zero-padded).

    Args:
      gt_class_ids: [G] int. gt_masks: [H, W, G] bool.
      pred_class_ids: [P] int. pred_scores: [P] float. pred_masks: [H, W, P] bool.
    Returns:
      ap, precisions, recalls (see :func:`voc_ap`), overlaps [P, G] with
      predictions in descending score order.
    """
    order = score_order(np.asarray(pred_scores))
    overlaps = mask_overlaps(pred_masks[..., order], gt_masks)
    _, pred_match = match_predictions(overlaps, np.asarray(pred_class_ids)[order], np.asarray(gt_class_ids),
                                      iou_threshold, matterport_quirk)
    ap, precisions, recalls = voc_ap(pred_match, len(gt_class_ids))
    return ap, precisions, recalls, overlaps


def matterport_map50(gt: COCO, records: Sequence[dict], image_ids: Sequence[int] | None = None,
                     min_score: float = 0.0) -> dict:
    """Mean over images of matterport's per-image mask AP at IoU 0.5.

    Args:
      records: COCO results with ``segmentation`` (checked by :func:`check_results`).
      image_ids: images to average over (default: all of the ground truth's).
      min_score: detections scoring below this are left out first.
    Returns:
      {"mAP50": mean with the quirk (matterport's number), "mAP50_without_quirk",
       "images": images averaged, "images_without_gt": images left out, "min_score"}.
      The means are None when no image has ground truth.
    """
    image_ids = list(gt.imgs) if image_ids is None else list(image_ids)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        if r["score"] >= min_score:
            by_image[r["image_id"]].append(r)
    aps, fixed_aps, without_gt = [], [], 0
    for image_id in image_ids:
        gt_anns = [a for a in gt.imgToAnns.get(image_id, []) if not a["iscrowd"]]
        if not gt_anns:
            without_gt += 1
            continue
        preds = by_image.get(image_id, [])
        overlaps, pred_classes = _image_overlaps(gt, image_id, gt_anns, preds)
        gt_classes = np.array([a["category_id"] for a in gt_anns])
        for quirk, out in ((True, aps), (False, fixed_aps)):
            _, pred_match = match_predictions(overlaps, pred_classes, gt_classes, 0.5, quirk)
            out.append(voc_ap(pred_match, len(gt_anns))[0])
    return {"mAP50": float(np.mean(aps)) if aps else None,
            "mAP50_without_quirk": float(np.mean(fixed_aps)) if fixed_aps else None,
            "images": len(aps), "images_without_gt": without_gt, "min_score": float(min_score)}


def _image_overlaps(gt: COCO, image_id: int, gt_anns: list[dict], preds: list[dict]):
    """Mask IoU [P, G] with predictions in matterport's score order, and their class ids [P]."""
    order = score_order(np.array([p["score"] for p in preds], dtype=np.float64))
    preds = [preds[k] for k in order]
    image = gt.imgs[image_id]
    pred_rles = [to_rle(p["segmentation"], image["height"], image["width"]) for p in preds]
    gt_rles = [gt.annToRLE(a) for a in gt_anns]
    if pred_rles:
        overlaps = np.asarray(mask_utils.iou(pred_rles, gt_rles, [0] * len(gt_rles)), dtype=np.float64)
    else:
        overlaps = np.zeros((0, len(gt_rles)))
    return overlaps.reshape(len(preds), len(gt_anns)), np.array([p["category_id"] for p in preds])
