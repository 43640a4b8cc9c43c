"""mrcnn.visualize: overlays (fills, outlines, boxes, labels) and RGBA cut-outs, checked pixel by pixel."""
from __future__ import annotations

import numpy as np
import pytest

from mrcnn.visualize import (
    DrawStyle,
    class_color,
    cutout_rgba,
    draw_instances,
    text_color_for,
)

NAMES = ["BG", "shirt", "trousers", "skirt"]
GRAY = 100


def gray_image(h=100, w=120):
    return np.full((h, w, 3), GRAY, dtype=np.uint8)


def rect_mask(h, w, y1, x1, y2, x2):
    mask = np.zeros((h, w), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def blended(base, color, alpha=0.45):
    """The expected fill: base * (1 - alpha) + color * alpha, rounded."""
    return [int(np.round(base * (1 - alpha) + c * alpha)) for c in color]


def test_class_colors_are_fixed_distinct_and_valid():
    colors = [class_color(i) for i in range(1, 14)]
    assert colors == [class_color(i) for i in range(1, 14)]
    assert len(set(colors)) == 13
    assert all(0 <= v <= 255 for c in colors for v in c)


def test_label_text_contrasts_with_its_fill():
    assert text_color_for((255, 255, 255)) == (0, 0, 0)
    assert text_color_for((255, 255, 0)) == (0, 0, 0)
    assert text_color_for((0, 0, 0)) == (255, 255, 255)
    assert text_color_for((0, 0, 200)) == (255, 255, 255)


def test_text_and_lines_grow_with_the_image():
    small, large = DrawStyle.for_image(256, 256), DrawStyle.for_image(3000, 4000)
    assert large.font_scale > 2 * small.font_scale
    assert large.line_width > small.line_width
    assert small.font_scale >= 0.4 and small.line_width >= 1


def test_no_detections_returns_an_unchanged_copy():
    image = gray_image()
    out = draw_instances(image, np.zeros((0, 4), np.int32), np.zeros((100, 120, 0), bool),
                         np.zeros(0, np.int32), NAMES, np.zeros(0, np.float32))
    assert out is not image and np.array_equal(out, image)


def test_mask_fill_outline_and_untouched_background():
    image = gray_image()
    mask = rect_mask(100, 120, 40, 30, 90, 100)
    out = draw_instances(image, np.array([[40, 30, 90, 100]]), mask[:, :, None], np.array([2]), NAMES,
                         show_bbox=False, captions=[""])
    color = class_color(2)
    assert out[65, 65].tolist() == blended(GRAY, color)  # inside the mask, away from edges
    outline, fill = out[40, 65].astype(int), np.array(blended(GRAY, color))
    # top edge of the mask: its (anti-aliased) outline, much nearer the class colour than the fill is
    assert np.abs(outline - color).max() <= 12 < np.abs(fill - color).max()
    assert out[10, 110].tolist() == [GRAY] * 3  # far outside: untouched
    assert np.array_equal(image, gray_image())  # the input is not modified


def test_box_edges_follow_exclusive_coordinates():
    image = gray_image()
    box = np.array([[20, 30, 60, 80]])  # rows 20..59, columns 30..79
    out = draw_instances(image, box, np.zeros((100, 120, 1), bool), np.array([1]), NAMES,
                         show_mask=False, captions=[""])
    color = list(class_color(1))
    assert out[40, 79].tolist() == color and out[40, 30].tolist() == color
    assert out[59, 50].tolist() == color and out[20, 50].tolist() == color
    assert out[40, 80].tolist() == [GRAY] * 3 and out[60, 50].tolist() == [GRAY] * 3
    assert out[40, 55].tolist() == [GRAY] * 3  # inside the box, no mask: untouched


def test_label_sits_above_the_box_in_a_filled_box_with_contrasting_text():
    image = gray_image(200, 300)
    out = draw_instances(image, np.array([[120, 40, 190, 200]]), np.zeros((200, 300, 1), bool),
                         np.array([3]), NAMES, np.array([0.87]), show_mask=False)
    color, text = class_color(3), text_color_for(class_color(3))
    is_fill = np.all(out == color, axis=2)
    is_fill[120:] = False  # the box outline itself has the colour too
    rows, cols = np.nonzero(is_fill)
    assert rows.max() == 119 and cols.min() == 40  # the label ends just above the box, at its left edge
    assert 10 <= rows.max() - rows.min() <= 40 and cols.max() - cols.min() > 40
    label = out[rows.min():120, cols.min():cols.max() + 1]
    fill_share = np.all(label == color, axis=2).mean()
    assert 0.5 < fill_share < 0.98  # mostly the label fill, with text drawn on it
    assert np.all(label == text, axis=2).any()
    assert np.all(out[: rows.min()] == GRAY)  # nothing above the label


def test_label_moves_inside_when_the_box_touches_the_top_edge():
    image = gray_image(200, 300)
    out = draw_instances(image, np.array([[0, 40, 190, 200]]), np.zeros((200, 300, 1), bool),
                         np.array([1]), NAMES, np.array([0.5]), show_mask=False)
    assert out[3, 45].tolist() == list(class_color(1))  # label fill just inside the box top


def test_label_is_shifted_left_to_stay_in_the_image():
    image = gray_image(200, 300)
    out = draw_instances(image, np.array([[100, 290, 150, 300]]), np.zeros((200, 300, 1), bool),
                         np.array([2]), NAMES, np.array([0.99]), show_mask=False)
    fill = np.all(out[:100] == class_color(2), axis=2)  # the label sits above the box (rows < 100)
    rows, cols = np.nonzero(fill)
    assert cols.max() == 299  # it ends at the image's right edge instead of running off it
    assert cols.min() < 290 - 30  # so it starts left of the box, by about the width of its text
    assert fill[rows.min():rows.max() + 1, 299].all()  # its last column is padding, not cut-off text


def test_the_most_confident_detection_is_drawn_on_top():
    image = gray_image()
    a = rect_mask(100, 120, 20, 20, 80, 80)
    b = rect_mask(100, 120, 40, 40, 95, 110)
    masks = np.dstack([a, b])
    boxes = np.array([[20, 20, 80, 80], [40, 40, 95, 110]])
    out = draw_instances(image, boxes, masks, np.array([1, 2]), NAMES, np.array([0.9, 0.3]),
                         show_bbox=False, captions=["", ""])
    # Ascending score: class 2 (0.3) is painted first, class 1 (0.9) over it.
    under = blended(GRAY, class_color(2))
    expected = [int(np.round(under[c] * 0.55 + class_color(1)[c] * 0.45)) for c in range(3)]
    other_way = blended(GRAY, class_color(1))
    wrong = [int(np.round(other_way[c] * 0.55 + class_color(2)[c] * 0.45)) for c in range(3)]
    assert expected != wrong
    assert out[60, 60].tolist() == expected


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        draw_instances(gray_image(), np.array([[0, 0, 5, 5]]), np.zeros((50, 50, 1), bool), np.array([1]), NAMES)


def test_cutout_is_the_box_with_the_mask_as_alpha():
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    mask = np.zeros((50, 60), bool)
    mask[12:18, 25:30] = True
    crop = cutout_rgba(image, mask, (10, 20, 20, 35))
    assert crop.shape == (10, 15, 4) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[:, :, :3], image[10:20, 20:35])
    assert crop[2, 5, 3] == 255 and crop[0, 0, 3] == 0
    assert int(crop[:, :, 3].sum()) == 255 * 6 * 5


def test_cutout_clips_the_box_and_rejects_empty_ones():
    image = np.zeros((20, 20, 3), np.uint8)
    mask = np.ones((20, 20), bool)
    assert cutout_rgba(image, mask, (-5, 15, 10, 40)).shape == (10, 5, 4)
    with pytest.raises(ValueError, match="empty"):
        cutout_rgba(image, mask, (5, 5, 5, 9))
