"""mrcnn.utils: matterport's utils API, checked on small cases whose expected numbers are worked out by hand.

Every expected value below comes from matterport's definitions (written out in the comments), not from
running its code: boxes are (y1, x1, y2, x2) with y2/x2 exclusive, IoU = intersection / union of the
pixel areas, AP is VOC all-point over cumulative precision/recall with the #1692 matching quirk.
"""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import mrcnn.data
from mrcnn import utils
from mrcnn.ops import anchors, box_frames, masks, resize

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the module itself
def test_dataset_is_the_one_dataset_class():
    assert utils.Dataset is mrcnn.data.Dataset

    class Shapes(utils.Dataset):
        pass

    assert issubclass(Shapes, mrcnn.data.Dataset)


def test_rules_that_exist_below_are_reexported_not_copied():
    assert utils.extract_bboxes is masks.extract_bboxes
    assert utils.minimize_mask is masks.minimize_mask
    assert utils.expand_mask is masks.expand_mask
    assert utils.unmold_mask is masks.unmold_mask
    assert utils.resize_image is resize.resize_image
    assert utils.resize_mask is resize.resize_mask
    assert utils.generate_pyramid_anchors is anchors.generate_pyramid_anchors
    assert utils.norm_boxes is box_frames.norm_boxes and utils.denorm_boxes is box_frames.denorm_boxes


def test_importing_utils_and_visualize_loads_neither_tensorflow_nor_matplotlib():
    code = ("import sys, mrcnn.utils, mrcnn.visualize\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- masks and boxes
def test_extract_bboxes_by_hand():
    mask = np.zeros((6, 8, 3), dtype=bool)
    mask[2:5, 1:6, 0] = True   # rows 2..4, columns 1..5 -> (2, 1, 5, 6): y2, x2 one past the last pixel
    mask[0, 0, 1] = True       # one pixel -> (0, 0, 1, 1)
    # instance 2 is empty -> all zeros
    boxes = utils.extract_bboxes(mask)
    assert boxes.dtype == np.int32
    assert boxes.tolist() == [[2, 1, 5, 6], [0, 0, 1, 1], [0, 0, 0, 0]]


def test_compute_overlaps_masks_by_hand():
    a = np.zeros((4, 4, 1)); a[:2, :2] = 1          # 4 pixels, top-left
    b = np.zeros((4, 4, 1)); b[0, :] = 1            # 4 pixels, top row; shares 2 with a
    empty = np.zeros((4, 4, 1))
    soft = np.zeros((4, 4, 1)); soft[:2, :2] = 0.6; soft[2:, 2:] = 0.4  # > 0.5 counts: same pixels as a
    overlaps = utils.compute_overlaps_masks(np.concatenate([a, empty], -1), np.concatenate([b, empty, soft], -1))
    assert overlaps.dtype == np.float32
    # a-b: 2 / (4 + 4 - 2) = 1/3; a-empty: 0 / 4 = 0; a-soft: 4 / 4 = 1
    # empty-b: 0 / 4 = 0; empty-empty: 0 / 0 = NaN (matterport divides as is); empty-soft: 0
    assert overlaps[0].tolist() == pytest.approx([1 / 3, 0.0, 1.0])
    assert overlaps[1, 0] == 0 and np.isnan(overlaps[1, 1]) and overlaps[1, 2] == 0
    no_masks = utils.compute_overlaps_masks(a, np.zeros((4, 4, 0)))
    assert no_masks.shape == (1, 0)


def test_compute_iou_and_overlaps_by_hand():
    boxes1 = np.array([[0, 0, 10, 10], [0, 0, 10, 5]])
    boxes2 = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]])
    overlaps = utils.compute_overlaps(boxes1, boxes2)
    assert overlaps.dtype == np.float64 and overlaps.shape == (2, 3)
    # (0,0,10,10) vs (5,5,15,15): 5 x 5 = 25 shared of 100 + 100 - 25 = 175 -> 1/7
    # (0,0,10,5) vs (5,5,15,15): no column in common -> 0; vs (0,0,10,10): 50 / 100 = 0.5
    assert overlaps == pytest.approx(np.array([[1 / 7, 1.0, 0.0], [0.0, 0.5, 0.0]]))
    areas = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    assert utils.compute_iou(boxes1[0], boxes2, 100, areas).tolist() == pytest.approx([1 / 7, 1.0, 0.0])


NMS_BOXES = np.array([[0, 0, 10, 10],     # 0: score 0.9
                      [1, 1, 11, 11],     # 1: score 0.8, IoU with 0 = 81 / 119 = 0.68
                      [20, 20, 30, 30],   # 2: score 0.7, overlaps nothing
                      [0, 0, 10, 5]])     # 3: score 0.95, IoU with 0 = 50 / 100 = 0.5, with 1 = 36 / 114
NMS_SCORES = np.array([0.9, 0.8, 0.7, 0.95])


def test_non_max_suppression_by_hand():
    # Threshold 0.5: box 3 first; box 0 survives it (0.5 is not *above* 0.5) and removes box 1 (0.68); box 2 stays.
    kept = utils.non_max_suppression(NMS_BOXES, NMS_SCORES, 0.5)
    assert kept.dtype == np.int32 and kept.tolist() == [3, 0, 2]
    # Threshold 0.49: box 3 now removes box 0; box 1 (IoU 0.32 with box 3) stays, then box 2.
    assert utils.non_max_suppression(NMS_BOXES, NMS_SCORES, 0.49).tolist() == [3, 1, 2]
    with pytest.raises(ValueError):
        utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5)


def test_apply_box_deltas_and_box_refinement_by_hand():
    box = np.array([[0, 0, 10, 20]])
    # h 10, w 20, centre (5, 10); dy 0.1 -> centre y 6; dx -0.2 -> centre x 6; h x 2 -> 20; w x 1 -> 20
    deltas = np.array([[0.1, -0.2, np.log(2.0), 0.0]])
    moved = utils.apply_box_deltas(box, deltas)
    assert moved.dtype == np.float32
    assert moved == pytest.approx(np.array([[-4, -4, 16, 16]]), abs=1e-5)
    assert utils.box_refinement(box, moved) == pytest.approx(deltas.astype(np.float32), abs=1e-6)


def test_numpy_box_twins_equal_their_graph_rules():
    """The NumPy helpers are twins of mrcnn.ops.boxes (float32 in, float32 out; exp/log may differ in the last bit)."""
    from mrcnn.ops import boxes as graph_boxes

    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 100, (64, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + rng.uniform(1, 50, (64, 2)).astype(np.float32)], axis=1)
    deltas = rng.normal(0, 0.3, (64, 4)).astype(np.float32)
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, deltas),
                               graph_boxes.apply_box_deltas(boxes, deltas).numpy(), rtol=1e-6, atol=1e-4)
    targets = utils.apply_box_deltas(boxes, deltas)
    np.testing.assert_allclose(utils.box_refinement(boxes, targets),
                               graph_boxes.box_refinement(boxes, targets).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(utils.box_refinement_graph(boxes, targets).numpy(),
                               utils.box_refinement(boxes, targets), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(utils.compute_overlaps(boxes, boxes[:9]),
                               graph_boxes.box_iou(boxes, boxes[:9]).numpy(), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- matching and AP
def half_masks():
    """8 x 8 ground truth: class 1 on the left half (32 pixels), class 2 on the right half (32 pixels)."""
    gt = np.zeros((8, 8, 2), dtype=bool)
    gt[:, :4, 0] = True
    gt[:, 4:, 1] = True
    return gt


def quirk_case():
    """Predictions given out of score order, with one row of zero padding on each side.

    Sorted by score: A (0.9, class 1) = the left half, IoU 1 with gt 0; B (0.8, class 1) = the left half
    again; C (0.7, class 2) = the top half of the right half, IoU 16 / 32 = 0.5 with gt 1.
    """
    gt = half_masks()
    gt_masks = np.concatenate([gt, np.zeros((8, 8, 1), bool)], -1)
    gt_boxes = np.concatenate([utils.extract_bboxes(gt), np.zeros((1, 4), np.int32)])
    c = np.zeros((8, 8), bool)
    c[:4, 4:] = True
    pred_masks = np.stack([c, gt[..., 0], gt[..., 0], np.zeros((8, 8), bool)], -1)  # C, A, B, padding
    pred_boxes = np.concatenate([utils.extract_bboxes(pred_masks[..., :3]), np.zeros((1, 4), np.int32)])
    return {"gt_boxes": gt_boxes, "gt_class_ids": np.array([1, 2, 0]), "gt_masks": gt_masks,
            "pred_boxes": pred_boxes, "pred_class_ids": np.array([2, 1, 1, 0]),
            "pred_scores": np.array([0.7, 0.9, 0.8, 0.0]), "pred_masks": pred_masks}


def test_compute_matches_keeps_matterports_quirk():
    gt_match, pred_match, overlaps = utils.compute_matches(**quirk_case())
    # Padding rows are dropped: 2 ground truths, 3 predictions, rows in score order A, B, C.
    assert overlaps.dtype == np.float32
    assert overlaps == pytest.approx(np.array([[1, 0], [1, 0], [0, 0.5]]))
    # A takes gt 0. matterport counts a ground truth as taken only when gt_match > 0, and A's index is 0,
    # so B takes gt 0 again (#1692). C reaches IoU 0.5 >= 0.5 with gt 1 of its class.
    assert pred_match.tolist() == [0, 0, 1]
    assert gt_match.tolist() == [1, 2]


def test_compute_matches_score_threshold_drops_low_ious():
    # score_threshold 0.6 removes C's IoU of 0.5 from the search, although iou_threshold is 0.5.
    _, pred_match, _ = utils.compute_matches(**quirk_case(), iou_threshold=0.5, score_threshold=0.6)
    assert pred_match.tolist() == [0, 0, -1]


def test_compute_ap_can_exceed_one_through_the_quirk():
    ap, precisions, recalls, overlaps = utils.compute_ap(**quirk_case())
    # Hits in score order: 1, 1, 1 -> precision 1/1, 2/2, 3/3; recall (hits / 2 gt) 0.5, 1.0, 1.5.
    # Padded: precision [0, 1, 1, 1, 0] -> non-increasing from the right [1, 1, 1, 1, 0];
    # recall [0, 0.5, 1, 1.5, 1]. Recall changes at steps 1, 2, 3, 4:
    # AP = 0.5 * 1 + 0.5 * 1 + 0.5 * 1 + (1 - 1.5) * 0 = 1.5.
    assert isinstance(ap, np.float64) and ap == pytest.approx(1.5)
    assert precisions.tolist() == [1, 1, 1, 1, 0]
    assert recalls.tolist() == [0, 0.5, 1, 1.5, 1]
    assert overlaps.shape == (3, 2)


def test_compute_ap_when_the_second_prediction_takes_a_ground_truth():
    gt = half_masks()
    # Sorted: P0 (0.9, class 2) = gt 1; P1 (0.8, class 1) = gt 0; P2 (0.7, class 1) = gt 0 again.
    # gt 0 is taken by P1 (index 1 > 0), so P2 passes it over; its next IoU is 0 < 0.5: no match.
    # Hits 1, 1, 0 -> precision 1, 1, 2/3; recall 0.5, 1, 1. Padded and made non-increasing:
    # precision [1, 1, 1, 2/3, 0], recall [0, 0.5, 1, 1, 1] -> AP = 0.5 * 1 + 0.5 * 1 = 1.0.
    pred_masks = np.stack([gt[..., 1], gt[..., 0], gt[..., 0]], -1)
    ap, precisions, _, _ = utils.compute_ap(
        utils.extract_bboxes(gt), np.array([1, 2]), gt, utils.extract_bboxes(pred_masks),
        np.array([2, 1, 1]), np.array([0.9, 0.8, 0.7]), pred_masks)
    assert ap == pytest.approx(1.0)
    assert precisions.tolist() == pytest.approx([1, 1, 1, 2 / 3, 0])


def test_compute_ap_range_averages_over_ten_thresholds(capsys):
    # At 0.50 the AP is 1.5 (above). From 0.55 to 0.95 C's IoU of 0.5 is too low: hits 1, 1, 0,
    # AP = 1.0 (as in the previous test). Mean of 1.5 and nine 1.0 = 1.05.
    assert utils.compute_ap_range(**_positional(quirk_case()), verbose=1) == pytest.approx(1.05)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 11 and printed[0].startswith("AP @0.50") and printed[-1].startswith("AP @0.50-0.95")
    assert utils.compute_ap_range(**_positional(quirk_case()), iou_thresholds=[0.5], verbose=0) == pytest.approx(1.5)


def _positional(case):
    """compute_ap_range's parameters have singular names (gt_box, ...)."""
    return {key.replace("boxes", "box").replace("ids", "id").replace("masks", "mask").replace("scores", "score"): v
            for key, v in case.items()}


def test_compute_recall_by_hand():
    gt_boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]])
    pred_boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [30, 30, 40, 40]])
    # Predictions 0 and 1 both find gt 0 (IoU 1 and 0.9); prediction 2 finds nothing; gt 1 is missed.
    recall, positive_ids = utils.compute_recall(pred_boxes, gt_boxes, 0.5)
    assert recall == 0.5 and positive_ids.tolist() == [0, 1]


def test_trim_zeros_drops_only_all_zero_rows():
    x = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]])
    assert utils.trim_zeros(x).tolist() == [[1, 0, 0, 0], [0, 0, 0, 2]]
    with pytest.raises(ValueError):
        utils.trim_zeros(np.zeros(4))


# ---------------------------------------------------------------- anchors, resizing, graph helper
def test_generate_anchors_order_and_sizes_by_hand():
    # Feature map 1 x 2, stride 10: centres (0, 0) and (0, 10). Scales 4 and 8 with ratio 1: squares of side 4 and 8;
    # per centre the scales come last (fastest).
    got = utils.generate_anchors([4, 8], [1], (1, 2), 10, 1)
    assert got.tolist() == [[-2, -2, 2, 2], [-4, -4, 4, 4], [-2, 8, 2, 12], [-4, 6, 4, 14]]
    # Ratio = width / height: scale 4, ratio 4 -> h = 4 / 2 = 2, w = 4 * 2 = 8.
    assert utils.generate_anchors(4, [1, 4], (1, 1), 10, 1).tolist() == [[-2, -2, 2, 2], [-1, -4, 1, 4]]


def test_pyramid_anchors_are_the_levels_one_after_another():
    shapes = np.array([[4, 4], [2, 2]])
    pyramid = utils.generate_pyramid_anchors((8, 16), (0.5, 1, 2), shapes, (4, 8), 1)
    levels = [utils.generate_anchors(s, (0.5, 1, 2), shape, stride, 1) for s, shape, stride in
              zip((8, 16), shapes, (4, 8))]
    np.testing.assert_array_equal(pyramid, np.concatenate(levels))


def test_resize_defaults_are_the_resize_every_rule_uses():
    image = np.random.default_rng(0).uniform(0, 255, (13, 17, 3))
    np.testing.assert_array_equal(utils.resize(image, (20, 9)), resize.resize_bilinear(image, (20, 9)))
    np.testing.assert_array_equal(utils.resize(image, (20, 9), preserve_range=True),
                                  resize.resize_bilinear(image, (20, 9), preserve_range=True))


def test_mold_mask_is_matterports_empty_placeholder():
    assert utils.mold_mask(np.ones((2, 2)), None) is None


def test_batch_slice_runs_a_per_item_function_over_the_batch():
    import tensorflow as tf

    left = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    right = tf.constant([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    summed = utils.batch_slice([left, right], lambda a, b: a + b, 3)
    assert summed.numpy().tolist() == [[11, 22], [33, 44], [55, 66]]
    total, biggest = utils.batch_slice(left, lambda a: (tf.reduce_sum(a), tf.reduce_max(a)), 3, names=["t", "m"])
    assert total.numpy().tolist() == [3, 7, 11] and biggest.numpy().tolist() == [2, 4, 6]


# ---------------------------------------------------------------- download_trained_weights
class _FileServer(http.server.BaseHTTPRequestHandler):
    """Serves /weights.h5 (the payload), /short.h5 (announces more bytes than it sends), 404 elsewhere."""

    payload = bytes(range(256)) * 300  # 76,800 bytes: several read chunks are not needed, a bar still shows

    def do_GET(self):  # the name http.server calls
        if self.path == "/weights.h5":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
        elif self.path == "/short.h5":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload[:1000])
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def file_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FileServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_writes_the_file_whole_with_a_progress_bar(file_server, tmp_path, capsys):
    target = tmp_path / "mask_rcnn_coco.h5"
    assert utils.download_trained_weights(str(target), url=f"{file_server}/weights.h5") is None
    assert target.read_bytes() == _FileServer.payload
    out, err = capsys.readouterr()
    assert str(target) in out and "100%" in err
    assert [p.name for p in tmp_path.iterdir()] == ["mask_rcnn_coco.h5"]


def test_download_is_quiet_with_verbose_0(file_server, tmp_path, capsys):
    utils.download_trained_weights(tmp_path / "w.h5", verbose=0, url=f"{file_server}/weights.h5")
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("path, words", [("/missing.h5", "HTTP 404"), ("/short.h5", "1000 of 76800 bytes")])
def test_a_failed_download_leaves_nothing_behind(file_server, tmp_path, path, words):
    target = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(utils.DownloadError) as caught:
        utils.download_trained_weights(target, verbose=0, url=file_server + path)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_download_without_a_server_says_where_to_get_the_file(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(utils.DownloadError) as caught:
        utils.download_trained_weights(target, verbose=0, url=f"http://127.0.0.1:{port}/x.h5")
    message = str(caught.value)
    assert "\n" not in message and "refused" in message.lower()
    assert utils.COCO_MODEL_PAGE in message and str(target) in message
    assert not target.exists()


def test_offline_download_of_matterports_file(tmp_path, monkeypatch):
    """No network (as on this machine): the default URL is matterport's release, the error is one line."""
    asked = []

    def no_network(url, timeout):
        asked.append(url)
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    target = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(utils.DownloadError) as caught:
        utils.download_trained_weights(str(target), verbose=0)
    assert asked == ["https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"]
    assert str(caught.value) == (
        "cannot download https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5 "
        "([Errno -3] Temporary failure in name resolution); get mask_rcnn_coco.h5 from "
        f"https://github.com/matterport/Mask_RCNN/releases/tag/v2.0 and save it as {target}")
    assert isinstance(caught.value, OSError) and not target.exists()
