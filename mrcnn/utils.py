"""matterport's ``mrcnn.utils`` module path: its helpers, with its names, parameters, defaults and numbers.

Scripts and notebooks written for matterport (``from mrcnn import utils``) run on these.
Most rules already live in one place below this module and are only re-exported here:

    Dataset                                   mrcnn.data.dataset (the same class as ``mrcnn.data.Dataset``)
    extract_bboxes, minimize_mask,
    expand_mask, unmold_mask                  mrcnn.ops.masks
    resize_image, resize_mask                 mrcnn.ops.resize
    generate_pyramid_anchors                  mrcnn.ops.anchors (``generate_anchors`` adds several scales)
    norm_boxes, denorm_boxes                  mrcnn.ops.box_frames
    compute_overlaps_masks                    mrcnn.eval.matterport_ap (its threshold, float32, NaN for 0 / 0)
    box_refinement_graph                      mrcnn.ops.boxes.box_refinement (TensorFlow)

``compute_matches`` and ``compute_ap`` add matterport's zero-padding trim and score sort to
the matching of :mod:`mrcnn.eval.matterport_ap`, including the quirk of matterport issue #1692
(a ground truth matched to the highest-scoring prediction can be matched again; AP can exceed 1).

NumPy box helpers. ``compute_iou``, ``compute_overlaps``, ``non_max_suppression``,
``apply_box_deltas`` and ``box_refinement`` are NumPy twins of the graph rules of
:mod:`mrcnn.ops.boxes` (``box_iou``, ``apply_box_deltas``, ``box_refinement``), not calls into
them, for two reasons: matterport's NumPy versions have their own numbers (int boxes give float64
IoU; float64 deltas are applied in float64 and stored in float32), which TensorFlow's float32
kernels would not reproduce bit for bit; and ``import mrcnn.utils`` (and so ``mrcnn.visualize``)
must not load TensorFlow. ``tests/test_utils_matterport.py`` keeps each twin equal to its graph rule.

NumPy, SciPy, scikit-image and pycocotools at import time; TensorFlow only inside
``box_refinement_graph`` and ``batch_slice``.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

import numpy as np
import skimage.transform

from mrcnn.data.dataset import Dataset
from mrcnn.eval.matterport_ap import match_predictions, score_order, voc_ap
from mrcnn.eval.matterport_ap import matterport_mask_overlaps as compute_overlaps_masks
from mrcnn.io.files import atomic_write
from mrcnn.ops.anchors import generate_level_anchors, generate_pyramid_anchors
from mrcnn.ops.box_frames import denorm_boxes, norm_boxes
from mrcnn.ops.masks import expand_mask, extract_bboxes, minimize_mask, unmold_mask
from mrcnn.ops.resize import resize_image, resize_mask

# matterport's utils names, plus COCO_MODEL_PAGE and DownloadError.
__all__ = [
    "COCO_MODEL_PAGE", "COCO_MODEL_URL", "Dataset", "DownloadError", "apply_box_deltas", "batch_slice",
    "box_refinement", "box_refinement_graph", "compute_ap", "compute_ap_range", "compute_iou",
    "compute_matches", "compute_overlaps", "compute_overlaps_masks", "compute_recall", "denorm_boxes",
    "download_trained_weights", "expand_mask", "extract_bboxes", "generate_anchors", "generate_pyramid_anchors",
    "minimize_mask", "mold_mask", "non_max_suppression", "norm_boxes", "resize", "resize_image", "resize_mask",
    "trim_zeros", "unmold_mask",
]

# matterport's released COCO weights (81 classes, ResNet-101), and the page that lists them.
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
COCO_MODEL_PAGE = "https://github.com/matterport/Mask_RCNN/releases/tag/v2.0"
DOWNLOAD_TIMEOUT_S = 30  # seconds without a byte from the server before the download gives up
DOWNLOAD_CHUNK_BYTES = 1 << 20


class DownloadError(OSError):
    """A download failed (no network, HTTP error, connection cut); the message is one line."""


class _Truncated(Exception):
    """The server closed the connection before sending every byte it announced."""


# ---------------------------------------------------------------- boxes (NumPy twins of mrcnn.ops.boxes)
def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of several boxes; the areas are passed in so callers compute them once.

    Args:
      box: [(y1, x1, y2, x2)] pixels (or any frame shared with ``boxes``).
      boxes: [N, (y1, x1, y2, x2)]. box_area: scalar. boxes_area: [N].
    Returns:
      [N] IoU in the inputs' float type (float64 for integer boxes); NaN where both areas are 0.
    """
    overlap_h = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0)
    overlap_w = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0)
    intersection = overlap_w * overlap_h
    return intersection / (box_area + boxes_area - intersection)


def _box_areas(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def compute_overlaps(boxes1, boxes2):
    """IoU of every pair of boxes.

    Args:
      boxes1: [N1, (y1, x1, y2, x2)]. boxes2: [N2, (y1, x1, y2, x2)], same frame.
    Returns:
      [N1, N2] float64 (values computed in the boxes' float type, as matterport's column loop does).
    """
    boxes1, boxes2 = np.asarray(boxes1), np.asarray(boxes2)
    # Each box of boxes2 against all of boxes1, broadcast over boxes2: [N2, N1].
    per_column = compute_iou(boxes2.T[:, :, None], boxes1, _box_areas(boxes2)[:, None], _box_areas(boxes1))
    return per_column.T.astype(np.float64)


def non_max_suppression(boxes, scores, threshold):
    """Greedy NMS: keep the best-scoring box, drop the others whose IoU with it is above ``threshold``, repeat.

    Args:
      boxes: [N, (y1, x1, y2, x2)], N > 0; integer boxes are cast to float32.
      scores: [N] float. threshold: IoU above which a lower-scoring box is dropped.
    Returns:
      [K] int32 indices of the kept boxes, best score first (ties in matterport's order).
    """
    boxes = np.asarray(boxes)
    if boxes.shape[0] == 0:
        raise ValueError("non_max_suppression needs at least one box")
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    areas = _box_areas(boxes)
    remaining = score_order(np.asarray(scores))
    kept = []
    while remaining.size:
        best, others = remaining[0], remaining[1:]
        kept.append(best)
        overlaps = compute_iou(boxes[best], boxes[others], areas[best], areas[others])
        remaining = others[~(overlaps > threshold)]
    return np.array(kept, dtype=np.int32)


def apply_box_deltas(boxes, deltas):
    """NumPy twin of :func:`mrcnn.ops.boxes.apply_box_deltas`.

    Args:
      boxes: [N, (y1, x1, y2, x2)], cast to float32.
      deltas: [N, (dy, dx, log dh, log dw)], already multiplied by the std dev.
    Returns:
      [N, (y1, x1, y2, x2)] float32 (each step computed in the wider of the two types, stored in float32).
    """
    boxes = np.asarray(boxes).astype(np.float32)
    deltas = np.asarray(deltas)
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = (boxes[..., 0] + 0.5 * height + deltas[..., 0] * height).astype(np.float32)
    center_x = (boxes[..., 1] + 0.5 * width + deltas[..., 1] * width).astype(np.float32)
    height = (height * np.exp(deltas[..., 2])).astype(np.float32)
    width = (width * np.exp(deltas[..., 3])).astype(np.float32)
    top = center_y - 0.5 * height
    left = center_x - 0.5 * width
    return np.stack([top, left, top + height, left + width], axis=-1)


def box_refinement(box, gt_box):
    """NumPy twin of :func:`mrcnn.ops.boxes.box_refinement`: deltas moving ``box`` onto ``gt_box``.

    Args:
      box, gt_box: [N, (y1, x1, y2, x2)], same frame, non-zero sizes; cast to float32.
    Returns:
      [N, (dy, dx, log dh, log dw)] float32, not divided by any std dev.
    """
    box = np.asarray(box).astype(np.float32)
    gt_box = np.asarray(gt_box).astype(np.float32)
    height, width = box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]
    gt_height, gt_width = gt_box[..., 2] - gt_box[..., 0], gt_box[..., 3] - gt_box[..., 1]
    dy = (gt_box[..., 0] + 0.5 * gt_height - (box[..., 0] + 0.5 * height)) / height
    dx = (gt_box[..., 1] + 0.5 * gt_width - (box[..., 1] + 0.5 * width)) / width
    return np.stack([dy, dx, np.log(gt_height / height), np.log(gt_width / width)], axis=-1)


def box_refinement_graph(box, gt_box):
    """:func:`box_refinement` in TensorFlow (it is :func:`mrcnn.ops.boxes.box_refinement`). Returns [N, 4] float32."""
    from mrcnn.ops.boxes import box_refinement as box_refinement_tf

    return box_refinement_tf(box, gt_box)


# ---------------------------------------------------------------- masks, anchors, resizing
def mold_mask(mask, config):
    """matterport's placeholder (declared in its utils, never written): does nothing and returns None."""


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one feature map, for one or several scales.

    Args:
      scales: anchor side(s) in pixels, a number or a list. ratios: width / height ratios.
      shape: (height, width) of the feature map. feature_stride: pixels per feature cell.
      anchor_stride: anchors every this many cells.
    Returns:
      [h * w * len(ratios) * len(scales), (y1, x1, y2, x2)] float64 pixels, in matterport's order:
      by y, then x, then ratio, then scale (scale varies fastest).
    """
    scales = np.atleast_1d(np.asarray(scales))
    ratios = np.atleast_1d(np.asarray(ratios))
    return generate_level_anchors(np.tile(scales, len(ratios)), np.repeat(ratios, len(scales)),
                                  shape, feature_stride, anchor_stride)


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True, preserve_range=False,
           anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with matterport's defaults (bilinear, zero border, no anti-aliasing).

    The defaults give :func:`mrcnn.ops.resize.resize_bilinear`, the resize every mask and image rule uses.
    Returns float64 unless ``preserve_range`` keeps the input's range (still float64).
    """
    return skimage.transform.resize(image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
                                    preserve_range=preserve_range, anti_aliasing=anti_aliasing,
                                    anti_aliasing_sigma=anti_aliasing_sigma)


# ---------------------------------------------------------------- evaluation
def trim_zeros(x):
    """Rows of a 2-D array that are not all zero (drops zero padding). [rows, columns] -> [kept, columns]."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros takes a 2-D array, got shape {x.shape}")
    return x[np.any(x != 0, axis=1)]


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Matches predictions to ground truth on mask IoU, matterport's way.

    All-zero box rows (padding) are dropped first, with the masks and scores after them; predictions
    are sorted by descending score. Each prediction takes the free ground truth of the same class with
    the highest IoU >= iou_threshold (a ground truth matched only to prediction 0 stays free, #1692).
    ``score_threshold`` drops IoUs below it from the search (matterport's name for it); with both
    thresholds the stricter one applies.
    Args:
      gt_boxes: [G, 4] pixels, zero rows = padding. gt_class_ids: [G] int. gt_masks: [H, W, G].
      pred_boxes: [P, 4]. pred_class_ids: [P] int. pred_scores: [P] float. pred_masks: [H, W, P].
    Returns:
      gt_match: [G'] float, per ground truth the matched prediction (sorted index) or -1.
      pred_match: [P'] float, per sorted prediction the matched ground truth or -1.
      overlaps: [P', G'] mask IoU, float32 (see ``compute_overlaps_masks``), predictions sorted.
    """
    gt_count = trim_zeros(gt_boxes).shape[0]
    pred_count = trim_zeros(pred_boxes).shape[0]
    order = score_order(np.asarray(pred_scores)[:pred_count])
    overlaps = compute_overlaps_masks(np.asarray(pred_masks)[..., order], np.asarray(gt_masks)[..., :gt_count])
    # Searching only IoUs >= score_threshold, stopping below iou_threshold, is searching with the larger one.
    gt_match, pred_match = match_predictions(overlaps, np.asarray(pred_class_ids)[order], np.asarray(gt_class_ids),
                                             max(iou_threshold, score_threshold), matterport_quirk=True)
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """matterport's AP of one image at one mask-IoU threshold (VOC all-point interpolation).

    Args: as :func:`compute_matches`.
    Returns:
      mAP: float64 (can exceed 1 through the #1692 quirk).
      precisions: [P' + 2] float64, padded 0 / 0 and made non-increasing.
      recalls: [P' + 2] float64, padded 0 / 1.
      overlaps: [P', G'] mask IoU, predictions sorted by score.
    """
    gt_match, pred_match, overlaps = compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes,
                                                     pred_class_ids, pred_scores, pred_masks, iou_threshold)
    ap, precisions, recalls = voc_ap(pred_match, len(gt_match))
    return np.float64(ap), precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.50, 0.55, ..., 0.95); prints each when verbose."""
    if iou_thresholds is None or len(iou_thresholds) == 0:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for threshold in iou_thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                        iou_threshold=threshold)[0]
        if verbose:
            print(f"AP @{threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Share of ground-truth boxes that are the best match (box IoU >= ``iou``) of some prediction.

    Args:
      pred_boxes: [P, 4] pixels. gt_boxes: [G, 4] pixels (G > 0). iou: IoU threshold.
    Returns:
      recall: float, distinct ground truths found / G. positive_ids: [K] int64, predictions whose
      best IoU reaches ``iou``.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    best_iou = np.max(overlaps, axis=1)
    best_gt = np.argmax(overlaps, axis=1)
    positive_ids = np.where(best_iou >= iou)[0]
    return len(set(best_gt[positive_ids].tolist())) / np.asarray(gt_boxes).shape[0], positive_ids


# ---------------------------------------------------------------- graph helper
def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Runs a one-item function on each item of a batch and stacks the results (TensorFlow).

    Args:
      inputs: a tensor or a list of tensors, all [batch_size, ...].
      graph_fn: takes one slice of each input, returns a tensor or a list/tuple of tensors.
      batch_size: number of slices (a Python int). names: optional names of the stacked outputs.
    Returns:
      one stacked tensor [batch_size, ...], or a list of them when graph_fn returns several.
    """
    import tensorflow as tf

    inputs = inputs if isinstance(inputs, list) else [inputs]
    per_item = []
    for index in range(batch_size):
        result = graph_fn(*[tensor[index] for tensor in inputs])
        per_item.append(list(result) if isinstance(result, (tuple, list)) else [result])
    per_output = list(zip(*per_item))
    names = names if names is not None else [None] * len(per_output)
    stacked = [tf.stack(slices, axis=0, name=name) for slices, name in zip(per_output, names)]
    return stacked[0] if len(stacked) == 1 else stacked


# ---------------------------------------------------------------- weights download
def download_trained_weights(coco_model_path, verbose=1, *, url=None):
    """Downloads matterport's COCO weights (``mask_rcnn_coco.h5``, about 258 MB) to ``coco_model_path``.

    The file appears whole or not at all (written beside the target, then renamed); with
    ``verbose`` > 0 a progress bar shows on stderr. ``url`` replaces :data:`COCO_MODEL_URL`
    (a mirror, or a local server in tests).
    Raises:
      DownloadError: no network, an HTTP error or a cut connection; one line that says where to get the file.
      OSError: the target cannot be written (its folder is missing, the disk is full, ...).
    """
    url = url or COCO_MODEL_URL
    target = Path(coco_model_path)
    if verbose > 0:
        print(f"Downloading matterport's COCO weights to {target} ...")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            atomic_write(target, lambda out: _copy_with_progress(response, out, expected, verbose, target.name))
    except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError, _Truncated) as exc:
        raise DownloadError(f"cannot download {url} ({_download_problem(exc)}); get mask_rcnn_coco.h5 from "
                            f"{COCO_MODEL_PAGE} and save it as {target}") from None
    if verbose > 0:
        print(f"Saved {target}")


def _download_problem(exc: Exception) -> str:
    """A few words for why a download failed: "HTTP 404 Not Found", "[Errno 111] Connection refused", ..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    words = str(reason).strip()
    return words.splitlines()[0] if words else type(reason).__name__


def _copy_with_progress(response, out, expected_bytes, verbose, label):
    """Copies the response body into ``out`` with a tqdm bar; raises _Truncated if it ends short."""
    from tqdm import tqdm

    copied = 0
    with tqdm(total=expected_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
              disable=verbose <= 0) as bar:
        while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
            out.write(chunk)
            copied += len(chunk)
            bar.update(len(chunk))
    if expected_bytes is not None and copied != expected_bytes:
        raise _Truncated(f"the connection closed after {copied} of {expected_bytes} bytes")
