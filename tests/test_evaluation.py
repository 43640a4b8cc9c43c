"""mrcnn.eval.coco_eval: COCO metrics against pycocotools called directly, attribute splits, matterport's mAP@0.5.

The oracle for every COCO number is pycocotools itself (``COCO.loadRes`` + ``COCOeval``), run
here independently of the module. matterport's AP values are worked out by hand in the comments.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.eval import coco_eval as ev
from mrcnn.eval import matterport_ap as mp
from mrcnn.eval import results as res

H, W = 60, 80  # every test image is 60 x 80 pixels


# ------------------------------------------------------------------ a hand-made ground truth
def rect(x1, y1, x2, y2):
    """A rectangle as one COCO polygon [[x1, y1, x2, y1, x2, y2, x1, y2]]."""
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def rle_of(polygons):
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, H, W))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


# (id, image, category, x1, y1, x2, y2, scale, occlusion, iscrowd)
GARMENTS = [
    (1, 1, 1, 5, 5, 35, 30, 1, 1, 0),      # A
    (2, 1, 2, 40, 10, 75, 55, 2, 2, 0),    # B
    (3, 2, 1, 10, 10, 50, 50, 3, 1, 0),    # C
    (4, 2, 3, 55, 5, 78, 25, 2, None, 0),  # D: occlusion unknown
    (5, 3, 2, 0, 0, 60, 40, 1, 3, 0),      # E
    (6, 3, 1, 62, 42, 79, 59, 2, 1, 1),    # F: a crowd region
    (7, 4, 3, 20, 20, 40, 40, 2, 2, 0),    # G
]
SOURCES = {1: "user", 2: "shop", 3: "user", 4: None}


def make_gt_dict() -> dict:
    images = [{"id": i, "file_name": f"{i:06d}.jpg", "width": W, "height": H, "source": s, "pair_id": 1}
              for i, s in SOURCES.items()]
    anns = []
    for ann_id, image_id, cat, x1, y1, x2, y2, scale, occlusion, crowd in GARMENTS:
        seg = rect(x1, y1, x2, y2)
        anns.append({"id": ann_id, "image_id": image_id, "category_id": cat, "segmentation": seg,
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(mask_utils.area(rle_of(seg))),
                     "iscrowd": crowd, "scale": scale, "occlusion": occlusion, "zoom_in": 1, "viewpoint": 2,
                     "keypoints": [0] * 30})
    cats = [{"id": 1, "name": "top"}, {"id": 2, "name": "trousers"}, {"id": 3, "name": "skirt"}]
    return {"images": images, "annotations": anns, "categories": cats}


def gt_object(gt_dict=None) -> COCO:
    return res.ground_truth_from_dict(copy.deepcopy(gt_dict or make_gt_dict()))


def detection(image_id, cat, x1, y1, x2, y2, score):
    return {"image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score,
            "segmentation": rle_of(rect(x1, y1, x2, y2))}


def perfect_results() -> list[dict]:
    return [detection(i, c, x1, y1, x2, y2, 1.0) for _, i, c, x1, y1, x2, y2, _, _, crowd in GARMENTS if not crowd]


def results_with_errors() -> list[dict]:
    return [
        detection(1, 1, 5, 5, 35, 30, 0.95),     # A exact
        detection(1, 2, 40, 10, 75, 55, 0.85),   # B exact
        detection(2, 1, 18, 10, 58, 50, 0.9),    # C shifted 8 px right (IoU 0.667)
        detection(2, 1, 55, 5, 78, 25, 0.7),     # D with the wrong class
        #                                          E not detected
        detection(2, 2, 0, 45, 20, 59, 0.3),     # a false positive
        detection(4, 3, 22, 22, 42, 42, 0.8),    # G shifted 2 px (IoU 0.68)
    ]


def pycocotools_stats(gt_dict, records, iou_type, img_ids=None, cat_ids=None, area_rng=None):
    """COCOeval.stats computed by pycocotools directly (the reference for every COCO number)."""
    gt = COCO()
    gt.dataset = copy.deepcopy(gt_dict)
    gt.createIndex()
    records = copy.deepcopy(records)
    if iou_type == "segm":  # so that loadRes takes mask areas (see the module docstring)
        for r in records:
            r.pop("bbox", None)
    dt = gt.loadRes(records)
    evaluator = COCOeval(gt, dt, iou_type)
    if img_ids is not None:
        evaluator.params.imgIds = img_ids
    if cat_ids is not None:
        evaluator.params.catIds = cat_ids
    if area_rng is not None:
        for ann in dt.dataset["annotations"]:
            ann["area"] = 1.0
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [area_rng], ["all"]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [None if v == -1 else v for v in evaluator.stats]


def as_list(stats: dict) -> list:
    return [stats[name] for name in ev.STAT_NAMES]


def split_list(stats: dict) -> list:
    """A split's numbers: AP, AP50, AP75, AR1, AR10, AR100 (COCOeval.stats indices 0, 1, 2, 6, 7, 8)."""
    assert list(stats) == list(ev.SPLIT_STAT_NAMES)
    return [stats[name] for name in ev.SPLIT_STAT_NAMES]


# ------------------------------------------------------------------ COCO metrics
def test_ground_truth_as_results_scores_one():
    metrics = ev.evaluate(gt_object(), perfect_results())
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 1.0 and metrics[iou_type]["AP50"] == 1.0
        assert metrics[iou_type]["AR100"] == 1.0
        assert metrics[iou_type]["APl"] is None  # no garment above 96^2 px: pycocotools' -1
    assert metrics["matterport"]["mAP50"] == 1.0
    assert metrics["instances"] == 6 and metrics["detections"] == 6 and metrics["images"] == 4


# A false-positive triangle: its box is 40 x 40 = 1600 px ("medium"), its mask about 800 px ("small"),
# so APs / APm of masks depend on taking the mask's area, as pycocotools does for mask-only results.
TRIANGLE = {"image_id": 4, "category_id": 2, "bbox": [40, 10, 40, 40], "score": 0.99,
            "segmentation": rle_of([[40, 10, 80, 50, 40, 50]])}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_known_errors_give_exactly_what_pycocotools_gives(iou_type):
    records = results_with_errors() + [TRIANGLE]
    metrics = ev.evaluate(gt_object(), records)
    expected = pycocotools_stats(make_gt_dict(), records, iou_type)
    assert as_list(metrics[iou_type]) == pytest.approx(expected, abs=1e-12)
    assert 0.2 < metrics[iou_type]["AP"] < 0.8  # the errors do cost AP


def test_per_category_ap_equals_pycocotools_on_that_category_alone():
    records = results_with_errors()
    metrics = ev.evaluate(gt_object(), records)
    rows = {row["id"]: row for row in metrics["per_category"]}
    assert [rows[c]["instances"] for c in (1, 2, 3)] == [2, 2, 2]  # the crowd region F is not an instance
    for cat in (1, 2, 3):
        for iou_type in ("bbox", "segm"):
            expected = pycocotools_stats(make_gt_dict(), records, iou_type, cat_ids=[cat])
            got = rows[cat][iou_type]
            assert [got["AP"], got["AP50"], got["AP75"]] == pytest.approx(expected[:3], abs=1e-12)


def test_limit_to_some_images_equals_pycocotools_img_ids():
    records = results_with_errors()
    metrics = ev.evaluate(gt_object(), records, image_ids=[2, 4])
    assert metrics["images"] == 2 and metrics["instances"] == 3 and metrics["detections"] == 4
    expected = pycocotools_stats(make_gt_dict(), records, "segm", img_ids=[2, 4])
    assert as_list(metrics["segm"]) == pytest.approx(expected, abs=1e-12)


def test_no_detections_give_zero_not_a_crash():
    metrics = ev.evaluate(gt_object(), [])
    assert metrics["bbox"]["AP"] == 0.0 and metrics["segm"]["AP"] == 0.0
    assert metrics["matterport"]["mAP50"] == 0.0


def test_polygon_and_box_only_results():
    polygons = [{**r, "segmentation": rect(*_corners(r["bbox"]))} for r in results_with_errors()]
    assert ev.evaluate(gt_object(), polygons)["segm"] == ev.evaluate(gt_object(), results_with_errors())["segm"]
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results_with_errors()]
    metrics = ev.evaluate(gt_object(), boxes_only)
    assert metrics["segm"] is None and metrics["matterport"] is None
    assert as_list(metrics["bbox"]) == pytest.approx(pycocotools_stats(make_gt_dict(), boxes_only, "bbox"))


def _corners(bbox):
    x, y, w, h = bbox
    return x, y, x + w, y + h


# ------------------------------------------------------------------ attribute splits
def test_splits_add_up_to_the_instances():
    gt = gt_object()
    expected = {"scale": {1: 2, 2: 3, 3: 1}, "occlusion": {1: 2, 2: 2, 3: 1, None: 1},
                "zoom_in": {1: 6}, "source": {"shop": 2, "user": 3, None: 1}}
    for attribute, counts in expected.items():
        splits = ev.attribute_splits(gt, attribute, sorted(gt.imgs))
        assert {s.value: s.instances for s in splits} == counts
        assert [s.value for s in splits][-1] == list(counts)[-1]  # None ("unknown") comes last
        table = ev.metrics_by_attribute(gt, {}, attribute, sorted(gt.imgs))
        assert sum(row["instances"] for row in table["values"]) == table["instances"] == 6


def test_split_ignore_rule_on_a_hand_computed_case():
    """One image, A (scale 1) and B (scale 2, here of A's category) detected exactly, and a false
    positive scoring highest.

    Whole set: FP, A, B -> precision 0, 1/2, 2/3 -> AP 2/3. Split scale 1: FP, A, (B ignored) ->
    precision 1/2 at recall 1 -> AP 1/2. Split scale 2 likewise 1/2 (A is ignored, not a false
    positive; otherwise it would be 1/3).
    """
    gt_dict = make_gt_dict()
    gt_dict["images"] = gt_dict["images"][:1]
    gt_dict["annotations"] = gt_dict["annotations"][:2]
    gt_dict["annotations"][1]["category_id"] = 1  # one category, so that AP is over one ranked list
    records = [detection(1, 1, 5, 5, 35, 30, 0.9), detection(1, 1, 40, 10, 75, 55, 0.8),
               detection(1, 1, 0, 40, 30, 59, 0.95)]
    metrics = ev.evaluate(gt_object(gt_dict), records, by=["scale"])
    assert metrics["bbox"]["AP"] == pytest.approx(2 / 3)
    rows = metrics["by"]["scale"]["values"]
    assert [(r["value"], r["label"], r["instances"]) for r in rows] == [(1, "small", 1), (2, "moderate", 1)]
    for row in rows:
        assert row["bbox"]["AP"] == pytest.approx(0.5) and row["segm"]["AP50"] == pytest.approx(0.5)


def test_split_equals_a_hand_built_evaluation_without_the_other_garments():
    """Split scale 2 with the other garments detected exactly (or not at all): same as deleting
    those garments and their detections and running pycocotools on what is left."""
    records = [detection(1, 1, 5, 5, 35, 30, 0.95), detection(2, 1, 10, 10, 50, 50, 0.6),  # A, C (other values)
               detection(1, 2, 40, 10, 75, 55, 0.85), detection(2, 1, 55, 5, 78, 25, 0.7),  # B exact, D wrong class
               detection(4, 3, 22, 22, 42, 42, 0.8), detection(2, 2, 0, 45, 20, 59, 0.3)]  # G shifted, FP
    metrics = ev.evaluate(gt_object(), records, by=["scale"])
    row = next(r for r in metrics["by"]["scale"]["values"] if r["value"] == 2)
    reduced = make_gt_dict()
    reduced["annotations"] = [a for a in reduced["annotations"] if a["scale"] == 2 or a["iscrowd"]]
    for iou_type in ("bbox", "segm"):
        expected = pycocotools_stats(reduced, records[2:], iou_type)
        assert split_list(row[iou_type]) == pytest.approx([expected[k] for k in (0, 1, 2, 6, 7, 8)], abs=1e-12)


@pytest.mark.parametrize("attribute", ["scale", "occlusion"])
def test_every_split_equals_pycocotools_with_the_others_outside_the_area_range(attribute):
    """pycocotools' own ignore mechanism as the oracle: garments of other values get an area
    outside the evaluated range, every detection an area inside it."""
    records = results_with_errors()
    metrics = ev.evaluate(gt_object(), records, by=[attribute])
    for row in metrics["by"][attribute]["values"]:
        gt_dict = make_gt_dict()
        for ann in gt_dict["annotations"]:
            ann["area"] = 1.0 if ann[attribute] == row["value"] else 1e12
        for iou_type in ("bbox", "segm"):
            expected = pycocotools_stats(gt_dict, records, iou_type, area_rng=[0, 10])
            assert list(row[iou_type]) == list(ev.SPLIT_STAT_NAMES)  # AP, AP50, AP75, AR1, AR10, AR100
            for k, name in zip((0, 1, 2, 6, 7, 8), ev.SPLIT_STAT_NAMES):
                assert row[iou_type][name] == pytest.approx(expected[k], abs=1e-12), (row["value"], iou_type, name)


def test_image_attribute_split_equals_pycocotools_on_those_images():
    records = results_with_errors()
    metrics = ev.evaluate(gt_object(), records, by=["source"])
    rows = metrics["by"]["source"]["values"]
    assert [(r["value"], r["images"]) for r in rows] == [("shop", 1), ("user", 2), (None, 1)]
    for row, img_ids in zip(rows, ([2], [1, 3], [4])):
        expected = pycocotools_stats(make_gt_dict(), records, "segm", img_ids=img_ids)
        assert split_list(row["segm"]) == pytest.approx([expected[k] for k in (0, 1, 2, 6, 7, 8)], abs=1e-12)


def test_unknown_attribute_is_an_error():
    with pytest.raises(res.EvaluationError, match="unknown attribute 'colour'"):
        ev.evaluate(gt_object(), [], by=["colour"])


# ------------------------------------------------------------------ matterport's compute_ap
def masks_of(*boxes):
    """[H, W, N] bool masks of (x1, y1, x2, y2) rectangles."""
    out = np.zeros((H, W, len(boxes)), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        out[y1:y2, x1:x2, k] = True
    return out


def test_mask_overlaps_by_hand():
    a = masks_of((0, 0, 10, 10))  # 100 px
    b = masks_of((5, 0, 15, 10), (20, 20, 30, 30), (0, 0, 10, 10))  # overlaps 50 / 150, 0, 1
    assert mp.mask_overlaps(a, b) == pytest.approx(np.array([[1 / 3, 0.0, 1.0]]))
    assert mp.mask_overlaps(a, masks_of()).shape == (1, 0)


def test_compute_ap_perfect_and_half():
    gt = masks_of((0, 0, 10, 10), (20, 20, 40, 40))
    ap, _, _, _ = mp.compute_ap(np.array([1, 2]), gt, np.array([2, 1]), np.array([0.8, 0.9]), gt[..., ::-1])
    assert ap == 1.0
    # one of two garments found: precision 1 up to recall 1/2, then 0 -> AP = 1/2
    ap, precisions, recalls, _ = mp.compute_ap(np.array([1, 2]), gt, np.array([1]), np.array([0.9]), gt[..., :1])
    assert ap == 0.5 and list(recalls) == [0, 0.5, 1] and list(precisions) == [1, 1, 0]


def test_the_duplicate_match_quirk():
    """One garment, two identical predictions. matterport: prediction 0 matches (gt_match = 0), and
    since only gt_match > 0 counts as taken, prediction 1 matches it again: recalls 1, 2;
    AP = 1 * 1 + (2 - 1) * 1 + (1 - 2) * 0 = 2. Without the quirk prediction 1 is a false positive: AP = 1."""
    gt = masks_of((0, 0, 10, 10))
    preds = masks_of((0, 0, 10, 10), (0, 0, 10, 10))
    args = (np.array([1]), gt, np.array([1, 1]), np.array([0.9, 0.8]), preds)
    assert mp.compute_ap(*args)[0] == 2.0
    assert mp.compute_ap(*args, matterport_quirk=False)[0] == 1.0
    # a third duplicate no longer matches: prediction 1 took it for good (gt_match = 1 > 0)
    gt_match, pred_match = mp.match_predictions(np.ones((3, 1)), np.array([1, 1, 1]), np.array([1]))
    assert list(pred_match) == [0, 0, -1] and list(gt_match) == [1]


def test_matching_passes_over_wrong_classes_and_stops_below_the_threshold():
    overlaps = np.array([[0.9, 0.6, 0.0],    # class 2: best IoU is a class-1 garment -> takes garment 1
                         [0.4, 0.3, 0.45]])  # best IoU 0.45 < 0.5 -> no match
    gt_match, pred_match = mp.match_predictions(overlaps, np.array([2, 3]), np.array([1, 2, 3]))
    assert list(pred_match) == [1, -1] and list(gt_match) == [-1, 0, -1]
    # greedy by score: prediction 0 takes garment 1 (its best); with the quirk prediction 1 takes it again
    overlaps = np.array([[0.7, 0.8], [0.1, 0.9]])
    _, quirky = mp.match_predictions(overlaps, np.array([1, 1]), np.array([1, 1]))
    _, fixed = mp.match_predictions(overlaps, np.array([1, 1]), np.array([1, 1]), matterport_quirk=False)
    assert list(quirky) == [1, 1] and list(fixed) == [1, -1]


def test_matterport_map50_is_the_mean_over_images_with_ground_truth():
    """Image 1: A and B found -> AP 1. Image 2: only C found, D missed -> AP 1/2 (see above).
    Image 3: E missed (F is a crowd region, not a garment) -> 0. Image 4: G found -> 1.
    An added image without ground truth is left out. Mean (1 + 0.5 + 0 + 1) / 4 = 0.625."""
    gt_dict = make_gt_dict()
    gt_dict["images"].append({"id": 5, "file_name": "x.jpg", "width": W, "height": H})
    found = {(1, 1), (1, 2), (2, 1), (4, 3)}  # (image, category) of A, B, C, G
    records = [r for r in perfect_results() if (r["image_id"], r["category_id"]) in found]
    records.append(detection(5, 1, 0, 0, 10, 10, 0.9))  # a detection in the image without ground truth
    result = mp.matterport_map50(gt_object(gt_dict), records)
    assert result["mAP50"] == pytest.approx(0.625)
    assert result["images"] == 4 and result["images_without_gt"] == 1
    assert mp.matterport_map50(gt_object(gt_dict), records, min_score=0.95)["mAP50"] == pytest.approx(0.625)
    assert mp.matterport_map50(gt_object(gt_dict), records, min_score=1.01)["mAP50"] == 0.0


def test_matterport_map50_equals_compute_ap_on_pixel_masks():
    records = results_with_errors()
    result = mp.matterport_map50(gt_object(), records, image_ids=[2])
    gt = masks_of((10, 10, 50, 50), (55, 5, 78, 25))
    preds = masks_of((18, 10, 58, 50), (55, 5, 78, 25), (0, 45, 20, 59))
    ap = mp.compute_ap(np.array([1, 3]), gt, np.array([1, 1, 2]), np.array([0.9, 0.7, 0.3]), preds)[0]
    # C found first (IoU 0.667), D's box has the wrong class, the false positive matches nothing:
    # precision 1 up to recall 1/2, then 0 -> AP 1/2
    assert result["mAP50"] == pytest.approx(ap) and ap == pytest.approx(0.5)


# ------------------------------------------------------------------ bad input
def test_results_that_do_not_fit_the_ground_truth_are_one_line_errors():
    gt = gt_object()
    with pytest.raises(res.EvaluationError, match="1 image ids not in the ground truth: 99"):
        ev.evaluate(gt, [detection(99, 1, 0, 0, 5, 5, 0.5)])
    with pytest.raises(res.EvaluationError, match="category ids not in the ground truth: 7"):
        ev.evaluate(gt, [detection(1, 7, 0, 0, 5, 5, 0.5)])
    mixed = results_with_errors()
    del mixed[0]["segmentation"]
    with pytest.raises(res.EvaluationError, match="some records have 'segmentation' and some do not"):
        ev.evaluate(gt, mixed)
    with pytest.raises(res.EvaluationError, match="record 0 is not a detection"):
        ev.evaluate(gt, [{"image_id": 1}])
    wrong_size = detection(1, 1, 0, 0, 5, 5, 0.5)
    wrong_size["segmentation"] = mask_utils.encode(np.zeros((10, 10, 1), np.uint8, order="F"))[0]
    with pytest.raises(res.EvaluationError, match=r"record 0: mask size \[10, 10\] differs"):
        ev.evaluate(gt, [wrong_size])


def test_ground_truth_without_a_mask_cannot_score_masks():
    gt_dict = make_gt_dict()
    gt_dict["annotations"][2]["segmentation"] = []
    with pytest.raises(res.EvaluationError, match="annotation 3 .image 2. has no usable segmentation"):
        ev.evaluate(gt_object(gt_dict), results_with_errors())
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results_with_errors()]
    assert ev.evaluate(gt_object(gt_dict), boxes_only)["bbox"]["AP"] > 0  # boxes can still be scored


def test_loading_files(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(make_gt_dict()))
    gt = res.load_ground_truth(path)
    assert len(gt.anns) == 7 and "keypoints" not in gt.anns[1]
    with pytest.raises(res.EvaluationError, match="annotation file not found"):
        res.load_ground_truth(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"images": []}')
    with pytest.raises(res.EvaluationError, match="not a COCO instances file"):
        res.load_ground_truth(tmp_path / "bad.json")
    (tmp_path / "res.json").write_text('{"a": 1}')
    with pytest.raises(res.EvaluationError, match="top level must be a list"):
        res.load_results_file(tmp_path / "res.json")
