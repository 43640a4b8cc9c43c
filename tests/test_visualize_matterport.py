"""mrcnn.visualize: matterport's matplotlib display functions, drawn into Agg figures and counted.

Each function runs on a small image; the checks count what matplotlib received (patches, texts, lines,
axes) and read pixels of the shown image, with the expected numbers worked out from matterport's rules.
"""
from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from mrcnn import visualize
from mrcnn.io import overlay

REPO = Path(__file__).resolve().parents[1]
NAMES = ["BG", "shirt", "trousers", "skirt"]
GRAY = 100

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
        yield
    plt.close("all")


def gray_image(height=40, width=50):
    return np.full((height, width, 3), GRAY, dtype=np.uint8)


def scene():
    """Three instances on a 40 x 50 image.

    0: a filled rectangle, rows 5..14, columns 5..19 -> box (5, 5, 15, 20), one outline.
    1: two separate squares -> box around both, two outlines.
    2: has a mask but an all-zero box: matterport skips it entirely (no box, caption, tint or outline).
    """
    masks = np.zeros((40, 50, 3), dtype=bool)
    masks[5:15, 5:20, 0] = True
    masks[20:25, 5:10, 1] = True
    masks[20:25, 30:35, 1] = True
    masks[30:35, 40:45, 2] = True
    boxes = np.array([[5, 5, 15, 20], [20, 5, 25, 35], [0, 0, 0, 0]])
    return boxes, masks, np.array([1, 3, 2]), np.array([0.9, 0.5, 0.7])


def shown_image(ax):
    return np.asarray(ax.images[-1].get_array())


# ---------------------------------------------------------------- the module
def test_draw_box_is_matterports_and_the_cli_drawing_is_still_reexported():
    assert visualize.draw_box is not overlay.draw_box
    for name in ("MASK_ALPHA", "DrawStyle", "blend_mask", "caption_for", "class_color", "cutout_rgba",
                 "draw_instances", "draw_label", "draw_mask_outline", "text_color_for"):
        assert getattr(visualize, name) is getattr(overlay, name)


def test_without_matplotlib_the_error_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError) as caught:
        visualize.plot_precision_recall(0.5, np.array([1.0, 0.5]), np.array([0.0, 1.0]))
    assert "pip install matplotlib" in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_never_loads_matplotlib():
    code = "import sys, fseg.cli, mrcnn.visualize; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- colours and pixels
def test_random_colors_spread_hues_and_follow_pythons_random():
    random.seed(7)
    first = visualize.random_colors(4)
    random.seed(7)
    assert visualize.random_colors(4) == first
    # Hues 0, 1/4, 2/4, 3/4 at full saturation and value: red, yellow-green, cyan, violet, shuffled.
    assert sorted(first) == sorted([(1.0, 0.0, 0.0), (0.5, 1.0, 0.0), (0.0, 1.0, 1.0), (0.5, 0.0, 1.0)])
    assert max(max(c) for c in visualize.random_colors(5, bright=False)) == pytest.approx(0.7)


def test_apply_mask_blends_in_place_and_truncates():
    image = gray_image(4, 4)
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.2))
    assert out is image
    # 100 * 0.5 + 0.5 * 1.0 * 255 = 177.5 -> 177; 100 * 0.5 + 0 = 50; 50 + 0.5 * 0.2 * 255 = 75.5 -> 75
    assert image[1, 1].tolist() == [177, 50, 75]
    assert image[0, 0].tolist() == [GRAY] * 3


def test_draw_box_paints_two_pixel_strips():
    image = np.zeros((12, 12, 3), dtype=np.uint8)
    out = visualize.draw_box(image, (2, 3, 8, 9), (255, 0, 0))
    assert out is image
    painted = image[..., 0] == 255
    assert painted[2:4, 3:9].all() and painted[8:10, 3:9].all()    # top from y1, bottom from y2 (outside)
    assert painted[2:8, 3:5].all() and painted[2:8, 9:11].all()    # left from x1, right from x2 (outside)
    assert not painted[4:8, 5:9].any() and not painted[9, 10]       # inside, and the uncovered corner
    # Four strips of 12 pixels (2 x 6 top and bottom, 6 x 2 left and right); only the top and left strips
    # share pixels (rows 2-3, columns 3-4), so 48 - 4 are painted.
    assert painted.sum() == 12 + 12 + 12 + 12 - 4


# ---------------------------------------------------------------- display_instances
def test_display_instances_draws_boxes_outlines_captions_and_tints():
    boxes, masks, class_ids, scores = scene()
    _, ax = plt.subplots(1)
    colors = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)]
    visualize.display_instances(gray_image(), boxes, masks, class_ids, NAMES, scores, title="t", ax=ax,
                                colors=colors)
    # 2 dashed boxes + 1 outline (instance 0) + 2 outlines (instance 1); instance 2 skipped.
    rectangles = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    polygons = [p for p in ax.patches if isinstance(p, matplotlib.patches.Polygon)]
    assert len(rectangles) == 2 and len(polygons) == 3
    assert rectangles[0].get_xy() == (5, 5) and rectangles[0].get_width() == 15 and rectangles[0].get_height() == 10
    assert rectangles[0].get_linestyle() == "dashed"
    assert [t.get_text() for t in ax.texts] == ["shirt 0.900", "skirt 0.500"]
    assert ax.texts[0].get_position() == (5, 13)  # (x1, y1 + 8)
    assert ax.get_title() == "t" and ax.get_xlim() == (-10, 60) and ax.get_ylim() == (50, -10)
    pixels = shown_image(ax)
    assert pixels[10, 10].tolist() == [177, 50, 50]    # red tint (see apply_mask)
    assert pixels[22, 32].tolist() == [50, 50, 177]    # blue tint
    assert pixels[32, 42].tolist() == [GRAY] * 3       # instance 2 not drawn


def test_display_instances_switches_and_captions():
    boxes, masks, class_ids, _ = scene()
    _, ax = plt.subplots(1)
    visualize.display_instances(gray_image(), boxes, masks, class_ids, NAMES, show_bbox=False, show_mask=False,
                                ax=ax, captions=["a", "b", "c"])
    assert all(isinstance(p, matplotlib.patches.Polygon) for p in ax.patches) and len(ax.patches) == 3
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    assert (shown_image(ax) == GRAY).all()
    # Without scores (or a score of 0) the caption is the class name alone.
    _, ax = plt.subplots(1)
    visualize.display_instances(gray_image(), boxes[:2], masks[..., :2], class_ids[:2], NAMES,
                                scores=np.array([0.0, 0.25]), ax=ax)
    assert [t.get_text() for t in ax.texts] == ["shirt", "skirt 0.250"]


def test_display_instances_makes_its_own_figure_without_an_axes(capsys):
    boxes, masks, class_ids, scores = scene()
    visualize.display_instances(gray_image(), boxes, masks, class_ids, NAMES, scores, figsize=(4, 3))
    figure = plt.gcf()
    assert tuple(figure.get_size_inches()) == (4, 3) and len(figure.axes) == 1
    visualize.display_instances(gray_image(), np.zeros((0, 4)), np.zeros((40, 50, 0)), np.zeros(0, int), NAMES)
    assert "No instances to display" in capsys.readouterr().out
    with pytest.raises(ValueError):
        visualize.display_instances(gray_image(), boxes, masks[..., :2], class_ids, NAMES)


def test_display_differences_colours_and_captions():
    boxes, masks, class_ids, _ = scene()
    gt_boxes, gt_masks, gt_ids = boxes[:2], masks[..., :2], class_ids[:2]
    # Prediction 0 (score 0.6) = gt 0 exactly; prediction 1 (score 0.95) covers gt 1's left square only:
    # IoU 25 / 50 = 0.5, which score_threshold 0.5 keeps, so both match.
    pred_masks = np.stack([gt_masks[..., 0], masks[..., 1] & (np.arange(50) < 20)], -1)
    pred_boxes = np.array([[5, 5, 15, 20], [20, 5, 25, 10]])
    _, ax = plt.subplots(1)
    visualize.display_differences(gray_image(), gt_boxes, gt_ids, gt_masks, pred_boxes, np.array([1, 3]),
                                  np.array([0.6, 0.95]), pred_masks, NAMES, ax=ax)
    assert [t.get_text() for t in ax.texts] == ["", "", "0.60 / 1.00", "0.95 / 0.50"]
    edge_colors = [tuple(p.get_edgecolor()) for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert edge_colors[0] == pytest.approx((0, 1, 0, 0.7)) and edge_colors[-1] == pytest.approx((1, 0, 0, 0.7))
    assert ax.get_title().startswith("Ground Truth and Detections")


# ---------------------------------------------------------------- the other figures
def test_display_images_and_display_top_masks():
    visualize.display_images([gray_image(), gray_image()[..., 0]], titles=["one", "two"], cols=2)
    axes = plt.gcf().axes
    assert [a.get_title() for a in axes] == ["one", "two"]
    plt.close("all")
    boxes, masks, class_ids, _ = scene()
    # Areas: class 1 has 150 pixels, class 3 has 50, class 2 has 25 -> shirt, skirt, trousers, then "-".
    visualize.display_top_masks(gray_image(), masks, class_ids, NAMES, limit=4)
    axes = plt.gcf().axes
    assert [a.get_title() for a in axes] == ["H x W=40x50", "shirt", "skirt", "trousers", "-"]
    skirt = np.asarray(axes[2].images[0].get_array())
    assert skirt[22, 7] == 1 and skirt[0, 0] == 0


def test_plot_precision_recall():
    visualize.plot_precision_recall(0.8125, np.array([1, 1, 0.5, 0]), np.array([0, 0.5, 1, 1]))
    ax = plt.gcf().axes[0]
    assert ax.get_title() == "Precision-Recall Curve. AP@50 = 0.812"
    assert ax.lines[0].get_xdata().tolist() == [0, 0.5, 1, 1]


def test_plot_overlaps_labels_each_cell():
    overlaps = np.array([[0.9, 0.0], [0.2, 0.6]])
    visualize.plot_overlaps(np.array([1, 2, 0]), np.array([1, 3, 0]), np.array([0.9, 0.8]), overlaps, NAMES)
    texts = [t.get_text() for t in plt.gcf().axes[0].texts]
    # Above 0.5: (0, 0) same class -> match; (1, 1) gt trousers vs predicted skirt -> wrong.
    assert texts == ["0.900\nmatch", "0.000\n", "0.200\n", "0.600\nwrong"]


def test_draw_boxes_with_refinements_visibilities_and_masks():
    boxes, masks, _, _ = scene()
    refined = boxes[:2] + 1
    _, ax = plt.subplots(1)
    visualize.draw_boxes(gray_image(), boxes=boxes[:2], refined_boxes=refined, masks=masks[..., :2],
                         captions=["a", "b"], visibilities=[0, 2], title="boxes", ax=ax)
    # Box 0 is visibility 0: its box (grey, dotted), no refined box; box 1: box, refined box, joining line.
    rectangles = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rectangles) == 3 and len(ax.lines) == 1
    assert len([p for p in ax.patches if isinstance(p, matplotlib.patches.Polygon)]) == 3
    assert [t.get_text() for t in ax.texts] == ["a", "b"] and ax.get_title() == "boxes"
    with pytest.raises(ValueError):
        visualize.draw_boxes(gray_image())


def test_draw_rois_samples_with_numpys_random(capsys):
    rois = np.array([[2, 2, 12, 12], [20, 20, 30, 30], [5, 25, 15, 45]])
    class_ids = np.array([1, 0, 2])
    probabilities = np.ones((3, 4, 4))
    np.random.seed(0)
    visualize.draw_rois(gray_image(), rois, rois + 1, probabilities, class_ids, NAMES, limit=2)
    ax = plt.gcf().axes[0]
    assert ax.get_title() == "Showing 2 random ROIs out of 3"
    positives = sum(1 for t in ax.texts)
    assert len(ax.patches) == 2 + positives and len(ax.lines) == positives
    out = capsys.readouterr().out
    assert "Positive ROIs:  2" in out and "Negative ROIs:  1" in out and "Positive Ratio: 0.67" in out


# ---------------------------------------------------------------- tables
class _Variable:
    def __init__(self, path):
        self.path = path


class Conv2D:
    """A stand-in layer: a constant bias is normal for a Conv2D and is not flagged."""

    def __init__(self, name, kernel, bias):
        self._values = [kernel, bias]
        self.weights = [_Variable(f"{name}/kernel"), _Variable(f"{name}/bias")]

    def get_weights(self):
        return self._values


class Dense(Conv2D):
    pass


class _Model:
    def get_trainable_layers(self):
        return [Conv2D("conv1", np.arange(4.0).reshape(2, 2), np.zeros(2)),
                Dense("fc", np.full((2, 2), 3.0), np.array([0.0, 2000.0]))]


def test_display_table_prints_text_without_ipython(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    visualize.display_table([["A", "B"], [1, 2.5]])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["A", "B"] and lines[1].split() == ["1", "2.5"]


def test_display_weight_stats_flags_dead_and_overflowing_weights(monkeypatch):
    shown = []
    monkeypatch.setattr(visualize, "display_table", shown.append)
    visualize.display_weight_stats(_Model())
    (table,) = shown
    assert table[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]
    names = [row[0] for row in table[1:]]
    assert names[:2] == ["conv1/kernel", "conv1/bias"]         # Conv2D bias all zero: not flagged
    assert names[2].startswith("fc/kernel") and "dead?" in names[2]
    assert "Overflow?" in names[3] and "dead?" not in names[3]
    assert table[1][1:] == ["(2, 2)", "  +0.0000", "   +3.0000", "  +1.1180"]  # widths 9, 10, 9
