"""matterport's ``mrcnn.visualize`` module path: its matplotlib display functions, and the CLI's OpenCV drawing.

matterport's names take its parameters and draw what it draws (figure sizes, axis limits, colours, line
styles, captions, the order of random draws), so a notebook shows the same pictures. matplotlib is imported
inside them only: the CLI never needs it, and without it they stop with a one-line error naming
``pip install matplotlib``.

``draw_box`` is matterport's ``draw_box(image, box, color)``. The CLI's OpenCV drawing, which returns arrays
instead of plotting (``draw_instances``, ``cutout_rgba``, its ``draw_box(image, box, color, line_width)``),
lives in :mod:`mrcnn.io.overlay`; its other names are re-exported here.

Boxes are pixel (y1, x1, y2, x2), (y2, x2) exclusive; masks [H, W, N]; colours RGB floats in [0, 1].
"""
from __future__ import annotations

import colorsys
import itertools
import random

import numpy as np

from mrcnn import utils
from mrcnn.eval.matterport_ap import score_order
# The CLI's OpenCV drawing, re-exported for notebooks that want fseg's overlays next to matterport's displays.
from mrcnn.io.overlay import (MASK_ALPHA, DrawStyle, blend_mask, caption_for, class_color,  # noqa: F401
                              cutout_rgba, draw_instances, draw_label, draw_mask_outline, text_color_for)
from mrcnn.ops.masks import mask_outlines

GT_COLOR = (0, 1, 0, 0.8)     # display_differences: ground truth in green
PRED_COLOR = (1, 0, 0, 1)     # ... and predictions in red
DEFAULT_DIFFERENCES_TITLE = "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"


def _pyplot():
    """matplotlib.pyplot, or a one-line ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("mrcnn.visualize's display functions draw with matplotlib, which is not "
                          "installed: pip install matplotlib") from None
    return plt


def _rectangle(box, **style):
    """An unfilled matplotlib rectangle, 2 points wide, for a pixel (y1, x1, y2, x2) box."""
    from matplotlib.patches import Rectangle

    y1, x1, y2, x2 = box
    return Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, facecolor="none", **style)


def _add_outlines(ax, mask, color):
    """One unfilled polygon per outline of ``mask`` on ``ax``."""
    from matplotlib.patches import Polygon

    for vertices in mask_outlines(mask):
        ax.add_patch(Polygon(vertices, facecolor="none", edgecolor=color))


# ---------------------------------------------------------------- colours and pixels
def random_colors(N, bright=True):
    """N colours evenly spread over the hue circle, in a random order (Python's ``random``).

    Returns:
      list of N (r, g, b) float tuples in [0, 1]; full saturation, value 1.0 (or 0.7 when not bright).
    """
    value = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(index / N, 1, value) for index in range(N)]
    random.shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Tints the pixels where ``mask == 1`` towards ``color``, in place.

    Args:
      image: [H, W, 3] numeric array (written in its own dtype, so integers are truncated).
      mask: [H, W] 0/1 or bool. color: (r, g, b) in [0, 1]. alpha: weight of the colour.
    Returns:
      ``image``, each masked channel value v replaced by v * (1 - alpha) + alpha * color * 255.
    """
    inside = mask == 1
    for channel in range(3):
        plane = image[:, :, channel]
        image[:, :, channel] = np.where(inside, plane * (1 - alpha) + alpha * color[channel] * 255, plane)
    return image


def draw_box(image, box, color):
    """matterport's box drawing into an array: four 2-pixel strips, in place.

    Args:
      image: [H, W, 3] array. box: (y1, x1, y2, x2) int pixels. color: 3 values in the image's range.
    Returns:
      ``image``. Top and left strips start on the box's first row / column, bottom and right ones on
      y2 / x2, just outside the box (y2, x2 are exclusive).
    """
    y1, x1, y2, x2 = box
    strips = ((slice(y1, y1 + 2), slice(x1, x2)), (slice(y2, y2 + 2), slice(x1, x2)),
              (slice(y1, y2), slice(x1, x1 + 2)), (slice(y1, y2), slice(x2, x2 + 2)))
    for rows, cols in strips:
        image[rows, cols] = color
    return image


# ---------------------------------------------------------------- figures
def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None):
    """Shows images in a grid of ``cols`` columns (a new 14-inch-wide figure), each with a small title.

    Args:
      images: list of [H, W(, 3)] arrays (shown as uint8). titles: one string per image.
      cmap, norm, interpolation: passed to ``imshow``.
    """
    plt = _pyplot()
    titles = titles if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    plt.figure(figsize=(14, 14 * rows // cols))
    for position, (image, title) in enumerate(zip(images, titles), start=1):
        plt.subplot(rows, cols, position)
        plt.title(title, fontsize=9)
        plt.axis("off")
        plt.imshow(image.astype(np.uint8), cmap=cmap, norm=norm, interpolation=interpolation)
    plt.show()


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="", figsize=(16, 16),
                      ax=None, show_mask=True, show_bbox=True, colors=None, captions=None):
    """Draws instances on an image: tinted masks, mask outlines, dashed boxes and captions.

    Args:
      image: [H, W, 3] RGB. boxes: [N, (y1, x1, y2, x2)] pixels; an all-zero box skips its instance.
      masks: [H, W, N] 0/1. class_ids: [N] int. class_names: names by class id.
      scores: [N] float or None; a caption is "name 0.123" (only "name" when the score is None or 0).
      ax: a matplotlib Axes to draw on; without one a figure of ``figsize`` inches is made and shown.
      colors: one colour per instance (default :func:`random_colors`). captions: one string per
        instance, replacing the name/score captions.
    """
    count = boxes.shape[0]
    if not count:
        print("\n*** No instances to display *** \n")
    elif not boxes.shape[0] == masks.shape[-1] == class_ids.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes, {masks.shape[-1]} masks and {class_ids.shape[0]} class ids "
                         "do not match")
    plt = _pyplot()
    show_figure = not ax
    if show_figure:
        _, ax = plt.subplots(1, figsize=figsize)

    colors = colors if colors is not None else random_colors(count)
    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)
    masked_image = image.astype(np.uint32).copy()
    for i in range(count):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # no box: the instance was lost (cropped away)
        y1, x1 = boxes[i][:2]
        if show_bbox:
            ax.add_patch(_rectangle(boxes[i], alpha=0.7, linestyle="dashed", edgecolor=color))
        if captions:
            caption = captions[i]
        else:
            score = scores[i] if scores is not None else None
            label = class_names[class_ids[i]]
            caption = f"{label} {score:.3f}" if score else label
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        if show_mask:
            masked_image = apply_mask(masked_image, masks[:, :, i], color)
        _add_outlines(ax, masks[:, :, i], color)
    ax.imshow(masked_image.astype(np.uint8))
    if show_figure:
        plt.show()


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None, show_mask=True, show_box=True, iou_threshold=0.5,
                        score_threshold=0.5):
    """Ground truth (green) and predictions (red) on one image, matched as :func:`mrcnn.utils.compute_matches`.

    Each prediction's caption is "score / IoU": the IoU with its matched ground truth, or its best IoU
    when unmatched. Arguments as ``compute_matches`` (boxes [N, 4] pixels, masks [H, W, N]) and
    :func:`display_instances`.
    """
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    # compute_matches numbers predictions by descending score; captions follow the caller's order.
    sorted_position = np.argsort(score_order(np.asarray(pred_score)[:len(pred_match)]))
    captions = [""] * len(gt_match)
    for k, row in enumerate(sorted_position):
        matched = int(pred_match[row])
        iou = overlaps[row, matched] if matched > -1 else (overlaps[row].max() if overlaps.shape[1] else 0.0)
        captions.append(f"{pred_score[k]:.2f} / {iou:.2f}")
    display_instances(
        image, np.concatenate([gt_box, pred_box]), np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]), class_names,
        np.concatenate([np.zeros([len(gt_match)]), pred_score]), ax=ax, show_bbox=show_box, show_mask=show_mask,
        colors=[GT_COLOR] * len(gt_match) + [PRED_COLOR] * len(pred_match), captions=captions,
        title=title or DEFAULT_DIFFERENCES_TITLE)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10):
    """Shows up to ``limit`` ROIs (picked at random by NumPy when there are more) and prints their counts.

    Args:
      image: [H, W, 3]. rois: [R, (y1, x1, y2, x2)] pixels (dashed; grey for background ROIs).
      refined_rois: [R, 4] pixels, drawn solid for positive ROIs, joined to their ROI's corner.
      mask: [R, h, w] float mask per ROI (pasted into its ROI). class_ids: [R] int, 0 = background.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    masked_image = image.copy()
    ids = np.arange(rois.shape[0], dtype=np.int32)
    sampled = ids.shape[0] > limit
    if sampled:
        ids = np.random.choice(ids, limit, replace=False)
    _, ax = plt.subplots(1, figsize=(12, 12))
    plt.title(f"Showing {len(ids)} random ROIs out of {rois.shape[0]}" if sampled else f"{len(ids)} ROIs")
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    for roi_id in ids:
        color = np.random.rand(3)
        class_id = class_ids[roi_id]
        y1, x1, _, _ = rois[roi_id]
        ax.add_patch(_rectangle(rois[roi_id], linestyle="dashed", edgecolor=color if class_id else "gray"))
        if not class_id:
            continue
        ry1, rx1, _, _ = refined_rois[roi_id]
        ax.add_patch(_rectangle(refined_rois[roi_id], edgecolor=color))
        ax.add_line(Line2D([x1, rx1], [y1, ry1], color=color))
        ax.text(rx1, ry1 + 8, f"{class_names[class_id]}", color="w", size=11, backgroundcolor="none")
        pasted = utils.unmold_mask(mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
        masked_image = apply_mask(masked_image, pasted, color)
    ax.imshow(masked_image)
    positives = int(np.sum(class_ids > 0))
    print("Positive ROIs: ", positives)
    print("Negative ROIs: ", int(np.sum(class_ids == 0)))
    print(f"Positive Ratio: {positives / class_ids.shape[0]:.2f}")


def display_top_masks(image, mask, class_ids, class_names, limit=4):
    """Shows the image and, for the ``limit`` classes covering most pixels, their instances (Blues_r).

    Args:
      image: [H, W, 3]. mask: [H, W, N] 0/1. class_ids: [N] int. class_names: names by class id.
      Missing classes (fewer than ``limit``) show as empty panels titled "-".
    """
    panels = [image]
    titles = [f"H x W={image.shape[0]}x{image.shape[1]}"]
    present = np.unique(class_ids)
    areas = [np.sum(mask[:, :, np.where(class_ids == class_id)[0]]) for class_id in present]
    by_area = sorted(zip(present, areas), key=lambda pair: pair[1], reverse=True)
    top_ids = [class_id for class_id, area in by_area if area > 0]
    for rank in range(limit):
        class_id = top_ids[rank] if rank < len(top_ids) else -1
        instances = mask[:, :, np.where(class_ids == class_id)[0]]
        # Instance k of the class is painted with value k + 1 (overlaps add up).
        panels.append(np.sum(instances * np.arange(1, instances.shape[-1] + 1), -1))
        titles.append(class_names[class_id] if class_id != -1 else "-")
    display_images(panels, titles=titles, cols=limit + 1, cmap="Blues_r")


def plot_precision_recall(AP, precisions, recalls):
    """Plots precision against recall (e.g. from :func:`mrcnn.utils.compute_ap`), titled with AP@50."""
    _, ax = _pyplot().subplots(1)
    ax.set_title(f"Precision-Recall Curve. AP@50 = {AP:.3f}")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(recalls, precisions)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names, threshold=0.5):
    """A grid of IoUs, predictions (rows) x ground truths (columns), marking "match" / "wrong" above ``threshold``.

    Args:
      gt_class_ids: [G] int and pred_class_ids: [P] int (zeros, i.e. padding, are dropped).
      pred_scores: [P] float. overlaps: [P, G] IoU (from compute_ap / compute_matches).
      class_names: names by class id. threshold: IoU above which a cell is labelled.
    """
    plt = _pyplot()
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    plt.figure(figsize=(12, 10))
    plt.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues)
    plt.yticks(np.arange(len(pred_class_ids)),
               [f"{class_names[int(class_id)]} ({pred_scores[i]:.2f})" for i, class_id in enumerate(pred_class_ids)])
    plt.xticks(np.arange(len(gt_class_ids)), [class_names[int(class_id)] for class_id in gt_class_ids], rotation=90)
    half_of_max = overlaps.max() / 2.0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        verdict = ""
        if overlaps[i, j] > threshold:
            verdict = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = "white" if overlaps[i, j] > half_of_max else "black" if overlaps[i, j] > 0 else "grey"
        plt.text(j, i, f"{overlaps[i, j]:.3f}\n{verdict}", horizontalalignment="center",
                 verticalalignment="center", fontsize=9, color=color)
    plt.tight_layout()
    plt.xlabel("Ground Truth")
    plt.ylabel("Predictions")


# visibility -> (use the instance's colour?, line style, alpha) in draw_boxes
_VISIBILITY_STYLES = {0: (False, "dotted", 0.5), 1: (True, "dotted", 1), 2: (True, "solid", 1)}


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None, visibilities=None, title="",
               ax=None):
    """Draws boxes, refined boxes (solid, joined to their box), masks and captions on one image.

    Args:
      image: [H, W, 3]. boxes, refined_boxes: [N, (y1, x1, y2, x2)] pixels (at least one of them).
      masks: [H, W, N] 0/1. captions: N strings (placed on the refined box when there is one).
      visibilities: N values of 0 (grey, dotted, faint), 1 (dotted) or 2 (solid); default 1.
      ax: a matplotlib Axes to draw on (default: a new 12 x 12 inch figure).
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes")
    count = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    plt = _pyplot()
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D

    if not ax:
        _, ax = plt.subplots(1, figsize=(12, 12))

    colors = random_colors(count)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)
    masked_image = image.astype(np.uint32).copy()
    for i in range(count):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility not in _VISIBILITY_STYLES:
            raise ValueError(f"visibility must be 0, 1 or 2, got {visibility!r}")
        own_color, style, alpha = _VISIBILITY_STYLES[visibility]
        color = colors[i] if own_color else "gray"
        if boxes is not None:
            if not np.any(boxes[i]):
                continue  # no box: the instance was lost (cropped away)
            y1, x1, _, _ = boxes[i]
            ax.add_patch(_rectangle(boxes[i], alpha=alpha, linestyle=style, edgecolor=color))
        if refined_boxes is not None:  # read even when not drawn: captions go on it
            refined = refined_boxes[i].astype(np.int32)
            ry1, rx1 = refined[:2]
        if refined_boxes is not None and visibility > 0:
            ax.add_patch(_rectangle(refined, edgecolor=color))
            if boxes is not None:
                ax.add_line(Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            if refined_boxes is not None:
                y1, x1 = ry1, rx1
            ax.text(x1, y1, captions[i], size=11, verticalalignment="top", color="w", backgroundcolor="none",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 2, "edgecolor": "none"})
        if masks is not None:
            masked_image = apply_mask(masked_image, masks[:, :, i], to_rgb(color))  # "gray" too
            _add_outlines(ax, masks[:, :, i], color)
    ax.imshow(masked_image.astype(np.uint8))


# ---------------------------------------------------------------- tables
def display_table(table):
    """Shows rows of values as an HTML table in a notebook (IPython), or as padded text lines elsewhere.

    Args:
      table: iterable of rows, each an iterable of values (shown with ``str``; HTML in them is kept).
    """
    rows = [[f"{value!s:40}" for value in row] for row in table]
    try:
        from IPython.display import HTML, display
    except ImportError:
        print("\n".join(" ".join(row).rstrip() for row in rows))
        return
    display(HTML("<table>" + "".join("<tr><td>" + "</td><td>".join(row) + "</td></tr>" for row in rows) + "</table>"))


def display_weight_stats(model):
    """A table of every trainable weight of ``model.get_trainable_layers()``: name, shape, min, max, std.

    A weight whose values are all equal is flagged "dead?" (except a Conv2D's bias), one beyond
    +-1000 "Overflow?". Names are Keras 3 paths ("conv1/kernel"). Shown with :func:`display_table`.
    """
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in model.get_trainable_layers():
        for index, (values, variable) in enumerate(zip(layer.get_weights(), layer.weights)):
            name = getattr(variable, "path", None) or variable.name
            alert = ""
            if values.min() == values.max() and not (type(layer).__name__ == "Conv2D" and index == 1):
                alert += "<span style='color:red'>*** dead?</span>"
            if np.abs(values.min()) > 1000 or np.abs(values.max()) > 1000:
                alert += "<span style='color:red'>*** Overflow?</span>"
            table.append([name + alert, str(values.shape), f"{values.min():+9.4f}", f"{values.max():+10.4f}",
                          f"{values.std():+9.4f}"])
    display_table(table)
