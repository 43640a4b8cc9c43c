"""Round trip of the converter's output through pycocotools: load, rasterise, evaluate."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from df2coco.convert import convert_split
from df2coco.synthetic import generate_split

# pycocotools 2.0.11 calls a NumPy 2 deprecated __array__ path in mask.decode (annToMask)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A small generated split with quirks, converted with mask areas (the default)."""
    root = tmp_path_factory.mktemp("cocoapi")
    generate_split(root / "split", 40, seed=3, quirk_rate=0.3, min_side=96, max_side=200, workers=1)
    convert_split(root / "split", root / "out.json", workers=1)
    return root / "out.json"


def load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_loads_and_every_annotation_rasterises_to_its_area(converted):
    coco = load(converted)
    assert len(coco.getCatIds()) == 13
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) > 40
    for ann in anns:
        mask = coco.annToMask(ann)
        img = coco.imgs[ann["image_id"]]
        assert mask.shape == (img["height"], img["width"])
        assert int(mask.sum()) == ann["area"] > 0  # area = pixels of the union of the polygons


def test_boxes_and_polygons_lie_inside_their_image(converted):
    coco = load(converted)
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
        for poly in ann["segmentation"]:
            assert len(poly) % 2 == 0 and len(poly) >= 6
            assert 0 <= min(poly[0::2]) and max(poly[0::2]) <= img["width"]
            assert 0 <= min(poly[1::2]) and max(poly[1::2]) <= img["height"]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ground_truth_as_detections_gives_ap_1(converted, iou_type):
    gt = load(converted)
    detections = []
    for ann in gt.dataset["annotations"]:
        det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
        if iou_type == "bbox":
            det["bbox"] = ann["bbox"]
        else:  # COCO results carry masks as RLE
            det["segmentation"] = gt.annToRLE(ann)
        detections.append(det)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert ev.stats[1] == pytest.approx(1.0)  # AP@.5


def test_keypoints_are_coco_shaped(converted):
    data = json.loads(converted.read_text())
    for ann in data["annotations"]:
        kp = np.asarray(ann["keypoints"]).reshape(294, 3)
        assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
