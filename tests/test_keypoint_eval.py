"""Landmark AP: our OKS and keypoint evaluation equal pycocotools' COCOeval(iouType="keypoints")."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.eval.coco_eval import evaluate
from mrcnn.eval.keypoint_eval import (DEEPFASHION2_OKS_SIGMAS, KEYPOINT_STAT_NAMES, category_slices,
                                      object_keypoint_similarity)
from mrcnn.eval.results import EvaluationError, ground_truth_from_dict, landmark_instance_scores, quiet

COUNTS = [25, 33, 31, 39, 15, 15, 10, 14, 8, 29, 37, 19, 19]  # DeepFashion2's slices
SLICES = category_slices(COUNTS)


def test_the_sigmas_are_294_values_symmetric_within_each_slice():
    """A transcription check: the published sigmas repeat in mirrored runs (left/right landmarks alike)."""
    assert DEEPFASHION2_OKS_SIGMAS.shape == (294,) and (DEEPFASHION2_OKS_SIGMAS > 0).all()
    runs = {5: [(1, 6), (6, 15)], 7: [(0, 3), (3, 10)], 8: [(0, 3), (3, 14)], 9: [(0, 3), (3, 8)],
            1: [(1, 6), (6, 25)], 13: [(1, 6), (6, 19)]}  # vest, shorts, trousers, skirt, short sleeve top, ...
    for category, spans in runs.items():
        sigmas = DEEPFASHION2_OKS_SIGMAS[SLICES[category]]
        for start, stop in spans:
            np.testing.assert_array_equal(sigmas[start:stop], sigmas[start:stop][::-1], err_msg=f"{category}")


def test_oks_by_hand():
    gt = np.zeros((1, 3, 3))
    gt[0, 0] = (10, 10, 2)
    gt[0, 1] = (20, 10, 1)  # occluded: counts
    dt = np.array([[[13, 14, 1], [20, 10, 1], [99, 99, 1]]], float)  # the third is unlabelled: not read
    sigmas = np.array([0.05, 0.1, 0.2])
    oks = object_keypoint_similarity(dt, gt, [400.0], [[0, 0, 20, 20]], sigmas)
    expected = (math.exp(-25 / (0.1 ** 2) / 400 / 2) + 1.0) / 2
    assert oks.shape == (1, 1) and oks[0, 0] == pytest.approx(expected, rel=1e-9)


def hand_made_case(seed=0, unlabelled_rate=0.1):
    """Ground truth with DeepFashion2's 294-landmark layout and detections near (and far from) it."""
    rng = np.random.default_rng(seed)
    images, annotations, records = [], [], []
    for image_id in range(1, 7):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 300, "height": 300})
        for _ in range(rng.integers(1, 4)):
            category = int(rng.choice([1, 4, 8, 9]))
            x, y = rng.uniform(0, 150, size=2)
            w, h = rng.uniform(40, 150, size=2)
            points = np.zeros((294, 3))
            own = SLICES[category]
            points[own, 0] = rng.uniform(x, x + w, size=len(own))
            points[own, 1] = rng.uniform(y, y + h, size=len(own))
            points[own, 2] = rng.choice([0, 1, 2], size=len(own), p=[0.2, 0.3, 0.5])
            if rng.random() < unlabelled_rate:
                points[own, 2] = 0  # no labelled landmark: ignored
            points[points[:, 2] == 0, :2] = 0
            ann_id = len(annotations) + 1
            area = float(w * h * rng.uniform(0.5, 1.0))
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0,
                                "bbox": [x, y, w, h], "area": area, "keypoints": points.reshape(-1).tolist(),
                                "num_keypoints": int((points[:, 2] > 0).sum())})
            for _ in range(rng.integers(1, 3)):  # detections of varying quality; some of another category
                noise = rng.choice([1.0, 4.0, 12.0, 40.0])
                guess = np.zeros((294, 3))
                det_category = category if rng.random() < 0.85 else int(rng.choice([1, 4, 8, 9]))
                mine = SLICES[det_category]
                guess[mine, :2] = points[mine, :2] + rng.normal(0, noise, size=(len(mine), 2))
                guess[mine, 2] = 1
                records.append({"image_id": image_id, "category_id": det_category, "score": float(rng.random()),
                                "bbox": [x + rng.normal(0, 3), y, w, h], "keypoints": guess.reshape(-1).tolist()})
    categories = [{"id": i, "name": f"c{i}"} for i in range(1, 14)]
    return {"images": images, "annotations": annotations, "categories": categories}, records


@pytest.mark.parametrize("unlabelled_rate, slices", [(0.1, None), (0.0, SLICES)])
def test_keypoint_ap_equals_pycocotools_with_the_same_sigmas(unlabelled_rate, slices):
    """With ground truth labelled only in its slice, scoring the slice alone changes nothing, except for
    ground truth without labels (ignored garments), which pycocotools compares with all 294 points."""
    data, records = hand_made_case(unlabelled_rate=unlabelled_rate)
    reference_gt = COCO()
    reference_gt.dataset = copy.deepcopy(data)
    with quiet():
        reference_gt.createIndex()
        reference = COCOeval(reference_gt, reference_gt.loadRes(copy.deepcopy(records)), "keypoints")
        reference.params.kpt_oks_sigmas = DEEPFASHION2_OKS_SIGMAS
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    assert 0.05 < reference.stats[0] < 0.95  # a case with matches and misses

    ours = evaluate(ground_truth_from_dict(copy.deepcopy(data)), records, keypoint_slices=slices)
    expected = {name: (None if v < 0 else float(v)) for name, v in zip(KEYPOINT_STAT_NAMES, reference.stats)}
    assert ours["keypoints"].keys() == expected.keys()
    for name, value in expected.items():
        assert ours["keypoints"][name] == pytest.approx(value, abs=1e-12), name
    trousers = next(c for c in ours["per_category"] if c["id"] == 8)
    assert trousers["keypoints"]["AP"] == pytest.approx(float(np.mean(reference.eval["precision"][:, :, 7, 0, -1])))
    # --by splits give the six all-area numbers per value; a ground truth without attributes is "unknown".
    split = evaluate(ground_truth_from_dict(copy.deepcopy(data)), records, by=["scale"])["by"]["scale"]
    assert split["values"][0]["label"] == "unknown"
    assert split["values"][0]["keypoints"]["AP"] == pytest.approx(expected["AP"], abs=1e-12)


def test_the_slice_decides_the_oks_of_a_ground_truth_without_labels():
    """Unlabelled ground truth: only the category's predicted points are compared with its box."""
    gt = np.zeros((1, 294, 3))
    dt = np.zeros((1, 294, 3))
    dt[0, SLICES[8], :2] = 50  # inside the box; the other 280 points are at (0, 0), outside it
    box = [[40, 40, 20, 20]]
    whole = object_keypoint_similarity(dt, gt, [400.0], box, DEEPFASHION2_OKS_SIGMAS)
    own = object_keypoint_similarity(dt[:, SLICES[8]], gt[:, SLICES[8]], [400.0], box,
                                     DEEPFASHION2_OKS_SIGMAS[SLICES[8]])
    assert own[0, 0] == pytest.approx(1.0) and whole[0, 0] < 0.1


def test_landmark_score_is_the_detection_score_times_the_mean_of_its_slice():
    landmarks = np.zeros((3, 6, 3), np.float32)
    landmarks[0, 2:5, 2] = (0.2, 0.4, 0.9)  # the class slice: three landmarks
    landmarks[1, 0:2, 2] = (1.0, 0.5)
    scores = landmark_instance_scores([0.9, 0.6, 0.8], landmarks)  # the third has no landmarks: 0
    np.testing.assert_allclose(scores, [0.9 * 0.5, 0.6 * 0.75, 0.0], rtol=1e-6)
    assert landmark_instance_scores(np.zeros(0), np.zeros((0, 6, 3))).shape == (0,)


def test_landmarks_are_ranked_by_landmark_score_boxes_by_score():
    """Landmark AP equals pycocotools' with each keypoint result scored by its landmark_score; box AP keeps the
    detection score."""
    data, records = hand_made_case(seed=3)
    rng = np.random.default_rng(4)
    plain = evaluate(ground_truth_from_dict(copy.deepcopy(data)), records)
    for record in records:
        record["landmark_score"] = float(rng.random())
    ours = evaluate(ground_truth_from_dict(copy.deepcopy(data)), records)
    reference_gt = COCO()
    reference_gt.dataset = copy.deepcopy(data)
    rescored = [{**r, "score": r["landmark_score"]} for r in copy.deepcopy(records)]
    with quiet():
        reference_gt.createIndex()
        reference = COCOeval(reference_gt, reference_gt.loadRes(rescored), "keypoints")
        reference.params.kpt_oks_sigmas = DEEPFASHION2_OKS_SIGMAS
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    assert ours["keypoints"]["AP"] == pytest.approx(float(reference.stats[0]), abs=1e-12)
    assert ours["keypoints"]["AP"] != pytest.approx(plain["keypoints"]["AP"], abs=1e-3)  # the order matters
    assert ours["bbox"] == plain["bbox"]


def test_a_landmark_score_that_is_not_a_number_is_refused():
    data, records = hand_made_case()
    records[2]["landmark_score"] = "high"
    with pytest.raises(EvaluationError, match="record 2: landmark_score must be a finite number"):
        evaluate(ground_truth_from_dict(copy.deepcopy(data)), records)
