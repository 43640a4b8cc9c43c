"""Landmark (keypoint) evaluation: COCO's keypoint AP with DeepFashion2's per-landmark OKS sigmas.

DeepFashion2 scores landmarks the way COCO scores human keypoints: a detection matches a garment
of its category by object keypoint similarity (OKS) instead of IoU,

    OKS = mean over the garment's labelled landmarks k of exp(-d_k^2 / (2 * area * (2 sigma_k)^2)),

with d_k the distance between the predicted and the annotated landmark (pixels), area the ground
truth's ``area`` and sigma_k the landmark's constant; AP over OKS 0.50:0.95, up to 20 detections
per image, areas all / medium / large (pycocotools' keypoint parameters). Labelled = visibility
> 0: occluded landmarks (v = 1) count. A ground truth without labelled landmarks is ignored
(``num_keypoints`` 0); its OKS, used only to let a detection match it instead of counting as a
false positive, measures how far the predicted points fall outside its box doubled on each side.

Only the detection's category's slice of the 294 landmarks is scored (DeepFashion2's
``evaluation.md``: "for trousers the 169th to 182th"): ground-truth landmarks outside the slice
are never labelled, and with ``slices`` the unlabelled-ground-truth case reads the slice too.

:data:`DEEPFASHION2_OKS_SIGMAS` are the 294 constants DeepFashion2's evaluation code hard-codes
(``deepfashion2_api/PythonAPI/pycocotools/cocoeval.py`` of switchablenorms/DeepFashion2, taken as
numbers); :func:`object_keypoint_similarity` is ours, and ``tests/test_keypoint_eval.py`` checks
that the scores equal pycocotools' ``COCOeval(iouType="keypoints")`` with the same sigmas.
NumPy only.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from mrcnn.eval.results import EvaluationError

# DeepFashion2's OKS sigma of each landmark, in the order of its 294-landmark table, by category.
DEEPFASHION2_OKS_SIGMAS = np.array([
    # short sleeve top (25)
    0.012, 0.0158, 0.0169, 0.0165, 0.0169, 0.0158, 0.0298, 0.0329, 0.0321, 0.0323, 0.034, 0.0388, 0.0452,
    0.0574, 0.0492, 0.0352, 0.0492, 0.0574, 0.0452, 0.0388, 0.034, 0.0323, 0.0321, 0.0329, 0.0298,
    # long sleeve top (33)
    0.0194, 0.017, 0.0185, 0.0193, 0.0185, 0.017, 0.0286, 0.0471, 0.0547, 0.0526, 0.043, 0.0392, 0.0513,
    0.0566, 0.0509, 0.0564, 0.0542, 0.0604, 0.0599, 0.052, 0.0599, 0.0604, 0.0542, 0.0564, 0.0509, 0.0566,
    0.0513, 0.0392, 0.043, 0.0526, 0.0547, 0.0471, 0.0286,
    # short sleeve outwear (31)
    0.0074, 0.0085, 0.0165, 0.0248, 0.0165, 0.0085, 0.0156, 0.0231, 0.0296, 0.0137, 0.0195, 0.025, 0.0347,
    0.038, 0.0257, 0.037, 0.0257, 0.038, 0.0347, 0.025, 0.0195, 0.0137, 0.0296, 0.0231, 0.0156, 0.0248,
    0.0469, 0.0632, 0.037, 0.0469, 0.0632,
    # long sleeve outwear (39)
    0.0137, 0.0153, 0.0243, 0.0377, 0.0243, 0.0153, 0.0203, 0.0366, 0.0467, 0.0433, 0.0393, 0.0329, 0.0418,
    0.0477, 0.0399, 0.0331, 0.042, 0.0492, 0.0436, 0.0478, 0.0436, 0.0492, 0.042, 0.0331, 0.0399, 0.0477,
    0.0418, 0.0329, 0.0393, 0.0433, 0.0467, 0.0366, 0.0203, 0.0377, 0.0645, 0.0573, 0.0478, 0.0645, 0.0573,
    # vest (15)
    0.0352, 0.0158, 0.021, 0.0214, 0.021, 0.0158, 0.0196, 0.05, 0.0489, 0.0404, 0.0401, 0.0404, 0.0489, 0.05,
    0.0196,
    # sling (15)
    0.0276, 0.0548, 0.0283, 0.0204, 0.0283, 0.0548, 0.0369, 0.0726, 0.0677, 0.064, 0.0251, 0.064, 0.0677,
    0.0726, 0.0369,
    # shorts (10)
    0.0308, 0.0216, 0.0308, 0.0506, 0.0494, 0.0463, 0.0477, 0.0463, 0.0494, 0.0506,
    # trousers (14)
    0.0275, 0.0202, 0.0275, 0.0651, 0.0451, 0.035, 0.028, 0.0392, 0.0362, 0.0392, 0.028, 0.035, 0.0451,
    0.0651,
    # skirt (8)
    0.0253, 0.0195, 0.0253, 0.0513, 0.0543, 0.0415, 0.0543, 0.0513,
    # short sleeve dress (29)
    0.0153, 0.023, 0.0167, 0.0145, 0.0167, 0.023, 0.0332, 0.0391, 0.0391, 0.0396, 0.044, 0.0452, 0.0498,
    0.0514, 0.0585, 0.0655, 0.0635, 0.0602, 0.0635, 0.0655, 0.0585, 0.0514, 0.0498, 0.0452, 0.044, 0.0396,
    0.0391, 0.0391, 0.0332,
    # long sleeve dress (37)
    0.0121, 0.0134, 0.0158, 0.0162, 0.0158, 0.0134, 0.0246, 0.0406, 0.047, 0.0404, 0.0463, 0.0466, 0.0435,
    0.0499, 0.0455, 0.044, 0.0411, 0.049, 0.0576, 0.0685, 0.0618, 0.0483, 0.0618, 0.0685, 0.0576, 0.049,
    0.0411, 0.044, 0.0486, 0.0499, 0.0435, 0.0466, 0.0463, 0.0404, 0.047, 0.0406, 0.0246,
    # vest dress (19)
    0.0116, 0.0167, 0.016, 0.018, 0.016, 0.0167, 0.0196, 0.0385, 0.0421, 0.0497, 0.0562, 0.0528, 0.0428,
    0.0528, 0.0562, 0.0497, 0.0421, 0.0385, 0.0196,
    # sling dress (19)
    0.0244, 0.0297, 0.0244, 0.0208, 0.0244, 0.0297, 0.0173, 0.0616, 0.0659, 0.0712, 0.0707, 0.0685, 0.0339,
    0.0685, 0.0707, 0.0712, 0.0659, 0.0616, 0.0173,
])
assert DEEPFASHION2_OKS_SIGMAS.shape == (294,)

# COCOeval.stats of iouType "keypoints", in its order: (name, OKS, area range, max detections per image).
KEYPOINT_STATS = (
    ("AP", "0.50:0.95", "all", 20), ("AP50", "0.50", "all", 20), ("AP75", "0.75", "all", 20),
    ("APm", "0.50:0.95", "medium", 20), ("APl", "0.50:0.95", "large", 20),
    ("AR", "0.50:0.95", "all", 20), ("AR50", "0.50", "all", 20), ("AR75", "0.75", "all", 20),
    ("ARm", "0.50:0.95", "medium", 20), ("ARl", "0.50:0.95", "large", 20),
)
KEYPOINT_STAT_NAMES = tuple(s[0] for s in KEYPOINT_STATS)
# The numbers given per attribute value (area "all" only).
KEYPOINT_SPLIT_STAT_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75")


def object_keypoint_similarity(dt_keypoints, gt_keypoints, gt_areas, gt_boxes, sigmas) -> np.ndarray:
    """OKS of every detection with every ground truth (see the module docstring).

    Args:
      dt_keypoints: [D, K, (x, y, v)] predicted landmarks (v is not read).
      gt_keypoints: [G, K, (x, y, v)] annotated landmarks, v > 0 = labelled.
      gt_areas: [G] the ground truths' ``area``. gt_boxes: [G, (x, y, w, h)] their ``bbox``.
      sigmas: [K] OKS constants.
    Returns:
      [D, G] float64 in [0, 1].
    """
    dt = np.asarray(dt_keypoints, np.float64).reshape(len(dt_keypoints), -1, 3)
    gt = np.asarray(gt_keypoints, np.float64).reshape(len(gt_keypoints), -1, 3)
    boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    labelled = gt[:, :, 2] > 0  # [G, K]
    has_labels = labelled.any(axis=1)  # [G]
    dx = dt[:, None, :, 0] - gt[None, :, :, 0]  # [D, G, K]
    dy = dt[:, None, :, 1] - gt[None, :, :, 1]
    # Without labels: distance of each predicted point outside the box grown by its size on every side.
    x0, y0 = boxes[:, 0] - boxes[:, 2], boxes[:, 1] - boxes[:, 3]
    x1, y1 = boxes[:, 0] + 2 * boxes[:, 2], boxes[:, 1] + 2 * boxes[:, 3]
    px, py = dt[:, None, :, 0], dt[:, None, :, 1]
    out_x = np.maximum(0, x0[None, :, None] - px) + np.maximum(0, px - x1[None, :, None])
    out_y = np.maximum(0, y0[None, :, None] - py) + np.maximum(0, py - y1[None, :, None])
    dx = np.where(has_labels[None, :, None], dx, out_x)
    dy = np.where(has_labels[None, :, None], dy, out_y)
    variances = (2 * np.asarray(sigmas, np.float64)) ** 2
    areas = np.asarray(gt_areas, np.float64)[None, :, None] + np.spacing(1)
    similarity = np.exp(-(dx ** 2 + dy ** 2) / variances / areas / 2)  # [D, G, K]
    scored = np.where(has_labels[:, None], labelled, True)  # [G, K]: labelled points, else all
    return (similarity * scored[None]).sum(axis=2) / scored.sum(axis=1)[None]


def compute_oks(evaluator, image_id, category_id, slices: Mapping[int, np.ndarray] | None = None):
    """COCOeval's ``computeOks`` for one image and category with :func:`object_keypoint_similarity`.

    Detections in descending score order (stable), at most ``maxDets[-1]``, as COCOeval; with
    ``slices`` only the category's landmarks are compared. Returns [D, G] or [] (none of either).
    """
    params = evaluator.params
    gts = evaluator._gts[image_id, category_id]
    dts = evaluator._dts[image_id, category_id]
    if not gts or not dts:
        return []
    order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:params.maxDets[-1]]
    dt = np.array([np.asarray(dts[i]["keypoints"], np.float64).reshape(-1, 3) for i in order])
    gt = np.array([np.asarray(g["keypoints"], np.float64).reshape(-1, 3) for g in gts])
    sigmas = np.asarray(params.kpt_oks_sigmas, np.float64)
    own = None if slices is None else slices.get(category_id)
    if own is not None:
        dt, gt, sigmas = dt[:, own], gt[:, own], sigmas[own]
    return object_keypoint_similarity(dt, gt, [g["area"] for g in gts], [g["bbox"] for g in gts], sigmas)


def category_slices(counts: Sequence[int], category_ids: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """{category id: indices of its landmarks}: class c (1-based) owns the next ``counts[c - 1]`` landmarks.

    category_ids: the category id of each class id (index 0 = background); default: class id itself.
    """
    slices, start = {}, 0
    for class_id, count in enumerate(counts, start=1):
        category = class_id if category_ids is None else int(category_ids[class_id])
        slices[category] = np.arange(start, start + int(count))
        start += int(count)
    return slices


def keypoint_count(records: Sequence[dict], source: str = "results") -> int:
    """Landmarks per record (K) when the records carry ``keypoints``, else 0.

    Raises EvaluationError when only some records have them, or a list is not K triples of finite numbers.
    """
    with_points = [r for r in records if "keypoints" in r]
    if not with_points:
        return 0
    if len(with_points) != len(records):
        raise EvaluationError(f"{source}: some records have 'keypoints' and some do not")
    lengths = {len(r["keypoints"]) if isinstance(r["keypoints"], list) else -1 for r in records}
    if len(lengths) != 1 or min(lengths) <= 0 or min(lengths) % 3:
        raise EvaluationError(f"{source}: 'keypoints' must be lists of x, y, v triples of one length, "
                              f"got lengths {sorted(lengths)[:5]}")
    for k, r in enumerate(records):
        try:
            finite = np.isfinite(np.asarray(r["keypoints"], np.float64)).all()
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise EvaluationError(f"{source}: record {k}: keypoints must be finite numbers")
    return lengths.pop() // 3


def check_gt_keypoints(gt, image_ids, count: int) -> None:
    """Raise EvaluationError unless every annotation of these images has ``count`` keypoint triples;
    sets ``num_keypoints`` (labelled points, which COCOeval reads) where it is missing."""
    for image_id in image_ids:
        for ann in gt.imgToAnns.get(image_id, []):
            points = ann.get("keypoints")
            if points is None or len(points) != 3 * count:
                raise EvaluationError(f"ground-truth annotation {ann['id']} (image {image_id}) has no "
                                      f"{3 * count} keypoint values, so landmarks cannot be scored")
            if "num_keypoints" not in ann:
                ann["num_keypoints"] = int(np.count_nonzero(np.asarray(points, np.float64)[2::3] > 0))
