"""matterport's ground-truth API for scripts and notebooks: ``load_image_gt`` and ``data_generator``.

    image, image_meta, class_ids, bbox, mask = load_image_gt(dataset, config, image_id, use_mini_mask=False)
    inputs, outputs = next(data_generator(dataset, config, shuffle=True, batch_size=2))

``load_image_gt`` is matterport's NumPy path, step for step (``resize_image`` / ``resize_mask`` with
scikit-image, the augmenter, ``extract_bboxes``, ``minimize_mask``, ``compose_image_meta``): what its
inspect notebooks draw. Training itself reads the tf.data pipeline (:mod:`mrcnn.data.pipeline`), which
resizes in TensorFlow and rasterises polygons at the target size, so its pixels may differ slightly.
``data_generator`` yields matterport's seven training inputs as NumPy arrays, taken from that pipeline,
for users who drive training themselves.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from mrcnn.data.augmentation import augment_image_and_masks, is_augmenter
from mrcnn.ops.image_meta import compose_image_meta
from mrcnn.ops.masks import extract_bboxes, minimize_mask
from mrcnn.ops.resize import resize_image, resize_mask

# matterport's training inputs, in the order of its model's inputs.
MATTERPORT_TRAINING_INPUTS = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
                              "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None, use_mini_mask=False):
    """One image and its ground truth, resized and padded as the model sees it (matterport's).

    Args:
      dataset: a prepared ``mrcnn.data.Dataset``.
      config: the model config (image size and resize mode, MINI_MASK_SHAPE).
      augment: matterport's old flag: a left-right flip half of the time.
      augmentation: an imgaug-style augmenter (see mrcnn.data.augmentation) or None.
      use_mini_mask: return the masks cropped to their boxes and resized to MINI_MASK_SHAPE.
    Returns:
      image: [H, W, 3] uint8, the molded size (resized and padded). image_meta: [12 + NUM_CLASSES]
      float64. class_ids: [N] int32. bbox: [N, (y1, x1, y2, x2)] int32 pixels, (y2, x2) exclusive.
      mask: [H, W, N] bool, or [mini_h, mini_w, N] with ``use_mini_mask``. Instances whose mask is
      empty after resizing or augmenting are dropped.
    """
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    original_shape = image.shape
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE, max_dim=config.IMAGE_MAX_DIM,
        mode=config.IMAGE_RESIZE_MODE)
    mask = resize_mask(mask, scale, padding, crop)
    if augment and np.random.randint(0, 2):
        image, mask = np.fliplr(image), np.fliplr(mask)
    if augmentation is not None:
        if not is_augmenter(augmentation):
            raise TypeError("augmentation must be an imgaug-style augmenter (with to_deterministic())")
        image, mask = augment_image_and_masks(augmentation, image, mask.astype(bool))
    present = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, present], np.asarray(class_ids)[present]
    bbox = extract_bboxes(mask)
    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    dataset.active_class_ids(image_id))
    return image, image_meta, class_ids.astype(np.int32), bbox, mask


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None, random_rois=0, batch_size=1,
                   detection_targets=False, no_augmentation_sources=None, seed=None) -> Iterator:
    """Endless batches ``(inputs, outputs)`` in matterport's format, for a training loop of your own.

    ``inputs`` are matterport's seven arrays (``MATTERPORT_TRAINING_INPUTS``: images minus MEAN_PIXEL,
    image_meta, rpn_match [B, A, 1], rpn_bbox, gt_class_ids, gt_boxes in pixels, gt_masks) and
    ``outputs`` is ``[]``, as matterport yields them. ``augment`` (matterport's flip flag) or
    ``augmentation`` choose the augmentation; without either there is none.

    For the inspect_data notebook, as matterport's: ``random_rois=N`` adds N random ROIs per image around
    its ground truth ([B, N, 4] pixels, :func:`mrcnn.data.roi_inspection.generate_random_rois`), and
    ``detection_targets=True`` also the ROIs chosen from them ([B, T, 4]) to ``inputs`` and their targets
    to ``outputs``: class ids [B, T, 1], deltas [B, T, NUM_CLASSES, 4], masks [B, T, mh, mw, NUM_CLASSES]
    (:func:`~mrcnn.data.roi_inspection.build_detection_targets`). The model itself trains on RPN proposals.
    """
    from mrcnn.data.augmentation import Augmentation
    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.data.roi_inspection import build_detection_targets, generate_random_rois

    chosen = augmentation if augmentation is not None else (
        Augmentation(scale_range=(1.0, 1.0), brightness=0.0, contrast_range=(1.0, 1.0)) if augment else None)
    batches = build_training_dataset(dataset, config, shuffle=shuffle, augment=chosen, seed=seed,
                                     no_augmentation_sources=no_augmentation_sources, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    for batch in batches:
        inputs = [np.asarray(batch[name]) for name in MATTERPORT_TRAINING_INPUTS]
        outputs = []
        if random_rois:
            images, class_ids, boxes, masks = inputs[0], inputs[4], inputs[5], inputs[6]
            rpn_rois = np.stack([generate_random_rois(images.shape[1:], random_rois, class_ids[b][class_ids[b] > 0],
                                                      boxes[b][class_ids[b] > 0], rng) for b in range(len(images))])
            inputs.append(rpn_rois)
            if detection_targets:
                per_image = [build_detection_targets(rpn_rois[b], class_ids[b], boxes[b], masks[b], config,
                                                     seed=int(rng.integers(2**31))) for b in range(len(images))]
                rois, target_ids, bbox, mask = (np.stack(parts) for parts in zip(*per_image))
                inputs.append(rois)
                outputs = [target_ids[..., np.newaxis], bbox, mask]
        yield inputs, outputs
