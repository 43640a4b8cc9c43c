"""Image molding, masks and unmolding: hand cases and parity with matterport's outputs."""
from __future__ import annotations

import numpy as np
import pytest

from mrcnn.ops.box_frames import norm_boxes
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.masks import expand_mask, minimize_mask, paste_masks, unmold_mask
from mrcnn.ops.resize import mold_image, resize_image, resize_mask, unmold_image
from mrcnn.ops.unmold import unmold_detections

MEAN_PIXEL = [123.7, 116.8, 103.9]


def _image(height, width, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def test_square_mode_scales_long_side_to_max_dim_and_centres():
    # scale = max(1, 512/300) = 1.71 would make the long side 683 > 512, so scale = 512/400 = 1.28.
    image, window, scale, padding, crop = resize_image(_image(300, 400), 512, 512, 0, "square")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert scale == 1.28 and crop is None
    assert window == (64, 0, 448, 512)
    assert padding == [(64, 64), (0, 0), (0, 0)]
    assert not image[:64].any() and not image[448:].any()


def test_square_mode_never_scales_down_below_min_dim_rule():
    image, window, scale, padding, _ = resize_image(_image(20, 30), 16, 64, 0, "square")
    assert scale == 1 and window == (22, 17, 42, 47) and image.shape == (64, 64, 3)


def test_pad64_mode():
    image, window, scale, padding, _ = resize_image(_image(100, 130), 64, 1024, 0, "pad64")
    assert scale == 1 and image.shape == (128, 192, 3)
    assert padding == [(14, 14), (31, 31), (0, 0)] and window == (14, 31, 114, 161)
    with pytest.raises(ValueError, match="multiple of 64"):
        resize_image(_image(10, 10), 50, None, 0, "pad64")


def test_crop_mode_and_none_mode():
    source = _image(80, 100)
    image, window, scale, _, crop = resize_image(source, 64, None, 0, "crop")
    assert image.shape == (64, 64, 3) and window == (0, 0, 64, 64) and scale == 1
    y, x, h, w = crop
    np.testing.assert_array_equal(image, source[y:y + h, x:x + w])
    same, window, scale, padding, crop = resize_image(source, 64, 512, 0, "none")
    assert same is source and window == (0, 0, 80, 100) and scale == 1 and crop is None
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize_image(source, 64, 512, 0, "stretch")


def test_min_scale_forces_upscaling():
    image, window, scale, _, _ = resize_image(_image(40, 40), None, 256, 2, "square")
    assert scale == 2 and window == (88, 88, 168, 168)


def test_resize_mask_follows_resize_image():
    image, window, scale, padding, _ = resize_image(_image(30, 40), 64, 64, 0, "square")
    mask = np.zeros((30, 40, 1), bool)
    mask[10:20, 10:30] = True
    out = resize_mask(mask, scale, padding)
    assert out.shape == (64, 64, 1) and out.dtype == bool
    ys, xs = np.where(out[..., 0])
    # scale 64/40 = 1.6 -> 48x64, top padding 8. Nearest-neighbour zoom maps output row r to input
    # row round(r * 29/47): rows 10..19 -> 16..31; columns 10..29 -> round(c * 39/63) -> 16..47.
    assert scale == 1.6 and padding[0] == (8, 8)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (8 + 16, 8 + 32, 16, 48)


def test_minimize_then_expand_mask_recovers_a_rectangle():
    mask = np.zeros((50, 60, 1), bool)
    mask[10:40, 5:55] = True
    bbox = np.array([[10, 5, 40, 55]])
    mini = minimize_mask(bbox, mask, (56, 56))
    assert mini.shape == (56, 56, 1) and mini.all()
    np.testing.assert_array_equal(expand_mask(bbox, mini, (50, 60, 3)), mask)


def test_minimize_mask_rejects_empty_box():
    with pytest.raises(ValueError, match="zero-area"):
        minimize_mask(np.array([[5, 5, 5, 9]]), np.ones((10, 10, 1), bool), (8, 8))


def test_mold_unmold_round_trip():
    image = _image(8, 9)
    molded = mold_image(image, MEAN_PIXEL)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], image[0, 0] - np.array(MEAN_PIXEL), rtol=1e-6)
    np.testing.assert_array_equal(unmold_image(molded + 1e-3, MEAN_PIXEL), image)


def test_unmold_mask_fills_box_only():
    full = unmold_mask(np.ones((28, 28), np.float32), (5, 6, 15, 26), (20, 30))
    expected = np.zeros((20, 30), bool)
    expected[5:15, 6:26] = True
    np.testing.assert_array_equal(full, expected)
    half = np.zeros((28, 28), np.float32)
    half[:, 14:] = 0.9
    full = unmold_mask(half, (0, 0, 10, 28), (10, 28))
    assert not full[:, :13].any() and full[:, 15:].all()


def test_unmold_detections_maps_window_to_original_pixels():
    # Original 300x400 -> molded 512x512 with window (64, 0, 448, 512).
    window = np.array([64, 0, 448, 512])
    win_norm = norm_boxes(window, (512, 512))
    extent = win_norm[2] - win_norm[0]
    # Normalized to the original image: y1 = 100/299, y2 = 99/299 -> pixels y1 = 100, y2 = 99 + 1 = 100.
    zero_area = [win_norm[0] + extent * 100 / 299, 0.5, win_norm[0] + extent * 99 / 299, 0.6]
    detections = np.zeros((5, 6), np.float32)
    detections[0] = list(win_norm) + [3, 0.9]  # the whole image
    detections[1] = zero_area + [2, 0.8]  # collapses to zero height: dropped
    detections[2] = list(win_norm) + [1, 0.7]
    masks = np.zeros((5, 28, 28, 4), np.float32)
    masks[0, :, :, 3] = 1.0  # class-specific channel is used
    masks[2, :, :, 3] = 1.0  # wrong channel for class 1: empty mask
    boxes, class_ids, scores, full = unmold_detections(detections, masks, (300, 400, 3), (512, 512, 3), window)
    np.testing.assert_array_equal(boxes, [[0, 0, 300, 400], [0, 0, 300, 400]])
    assert boxes.dtype == np.int32 and class_ids.dtype == np.int32 and scores.dtype == np.float32
    assert class_ids.tolist() == [3, 1]
    np.testing.assert_allclose(scores, [0.9, 0.7])
    assert full.shape == (300, 400, 2) and full.dtype == bool
    assert full[..., 0].all() and not full[..., 1].any()


def test_unmold_detections_empty():
    boxes, class_ids, scores, masks = unmold_detections(
        np.zeros((3, 6), np.float32), np.zeros((3, 28, 28, 2), np.float32), (30, 40, 3), (64, 64, 3), (12, 0, 52, 64))
    assert boxes.shape == (0, 4) and class_ids.shape == (0,) and scores.shape == (0,)
    assert masks.shape == (30, 40, 0)


# ---- parity with matterport's own outputs (../shared/reference/matterport_ref/r512) ----

@pytest.fixture(scope="module")
def refs(reference_dir):
    folder = reference_dir / "matterport_ref" / "r512"
    return [dict(np.load(folder / f"ref{i}.npz")) for i in range(3)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_parity_molded_image_window_and_meta(refs, index):
    ref = refs[index]
    image, window, scale, _, _ = resize_image(ref["image"], 512, 512, 0, "square")
    molded = mold_image(image, MEAN_PIXEL)
    meta = compose_image_meta(0, ref["image"].shape, molded.shape, window, scale, np.zeros(14, np.int32))
    np.testing.assert_array_equal(window, ref["window"])
    np.testing.assert_allclose(molded, ref["molded_image"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(meta, ref["image_meta"], rtol=1e-7)


def _mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def test_parity_unmold_detections(refs):
    ref = refs[0]
    boxes, class_ids, scores, masks = unmold_detections(
        ref["raw_detections"], ref["mrcnn_mask_raw"], ref["image"].shape, ref["molded_image"].shape, ref["window"])
    assert boxes.shape == ref["rois"].shape
    np.testing.assert_array_equal(class_ids, ref["class_ids"])
    assert np.abs(boxes - ref["rois"]).max() <= 1
    np.testing.assert_allclose(scores, ref["scores"], rtol=0, atol=1e-4)
    assert masks.shape == ref["masks"].shape
    ious = [_mask_iou(masks[..., i], ref["masks"][..., i]) for i in range(masks.shape[-1])]
    assert min(ious) >= 0.98


@pytest.mark.parametrize("kind", ["uniform", "sigmoid", "min_at_least_half", "exact_halves"])
def test_paste_masks_equals_one_skimage_resize_per_mask(kind):
    """The grouped matrix resize gives exactly the pixels of matterport's per-mask unmold_mask."""
    rng = np.random.default_rng(["uniform", "sigmoid", "min_at_least_half", "exact_halves"].index(kind))
    for _ in range(15):
        height, width = (int(v) for v in rng.integers(2, 400, 2))
        n = int(rng.integers(0, 10))
        y1, x1 = rng.integers(0, height - 1, n), rng.integers(0, width - 1, n)
        y2 = np.array([rng.integers(a + 1, height + 1) for a in y1], dtype=np.int64)
        x2 = np.array([rng.integers(a + 1, width + 1) for a in x1], dtype=np.int64)
        boxes = np.stack([y1, x1, y2, x2], axis=1).reshape(-1, 4)
        masks = {"uniform": lambda: rng.random((n, 28, 28)),
                 "sigmoid": lambda: 1 / (1 + np.exp(-rng.normal(0, 3, (n, 28, 28)))),
                 "min_at_least_half": lambda: 0.5 + 0.5 * rng.random((n, 28, 28)),  # skimage's clip decides
                 "exact_halves": lambda: np.round(rng.random((n, 28, 28)) * 4) / 8}[kind]().astype(np.float32)
        pasted = paste_masks(masks, boxes, (height, width, 3))
        assert pasted.shape == (height, width, n) and pasted.dtype == bool
        for i in range(n):
            np.testing.assert_array_equal(pasted[..., i], unmold_mask(masks[i], boxes[i], (height, width)))


def test_paste_masks_groups_many_sizes_under_the_budget(monkeypatch):
    import mrcnn.ops.masks as masks_module

    monkeypatch.setattr(masks_module, "PASTE_GROUP_ELEMENTS", 2000)  # forces many small groups
    rng = np.random.default_rng(7)
    boxes = np.array([[0, 0, 1, 1], [3, 4, 60, 50], [10, 10, 12, 90], [0, 0, 100, 100], [50, 20, 51, 21]])
    masks = rng.random((5, 28, 28)).astype(np.float32)
    pasted = paste_masks(masks, boxes, (100, 100))
    for i in range(5):
        np.testing.assert_array_equal(pasted[..., i], unmold_mask(masks[i], boxes[i], (100, 100)))
