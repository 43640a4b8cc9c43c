"""The tf.data input pipeline that feeds Mask R-CNN training: matterport's seven training inputs
(plus one per extra ROI head's instance field).

    train = build_training_dataset(dataset, config, seed=0)      # shuffled, augmented, repeated
    val = build_validation_dataset(val_dataset, config)          # one pass, no augmentation
    for inputs in train.take(1):
        inputs["input_image"]                                    # [B, S, S, 3] float32

Every element is a dict of batched tensors (B = config.BATCH_SIZE, S = the
molded image side, A = anchors, G = MAX_GT_INSTANCES, T = RPN_TRAIN_ANCHORS_PER_IMAGE):

    input_image         [B, S, S, 3]   float32  RGB minus MEAN_PIXEL (padding = -MEAN_PIXEL)
    input_image_meta    [B, 12 + C]    float32  see mrcnn.ops.image_meta (window = image inside the canvas)
    input_rpn_match     [B, A, 1]      int32    1 positive, -1 negative, 0 neutral anchor
    input_rpn_bbox      [B, T, 4]      float32  (dy, dx, log dh, log dw) / RPN_BBOX_STD_DEV of positives
    input_gt_class_ids  [B, G]         int32    internal class ids; 0 = padding, negative = crowd
    input_gt_boxes      [B, G, 4]      float32  (y1, x1, y2, x2) pixels of the molded image, (y2, x2)
                                                exclusive; integer values (matterport uses int32); 0 = padding
    input_gt_masks      [B, m, m, G]   bool     mini masks (m = MINI_MASK_SHAPE) cropped to each box,
                        [B, S, S, G]            or full canvas masks when USE_MINI_MASK is False
    input_gt_<field>    [B, G, ...]    float32  one per instance field asked for (mrcnn.ops.instance_fields;
                                       / int32  "points" fields in pixels of the molded image); 0 = padding

Per image, in order (all in TensorFlow except mask rasterisation):
  1. decode the image with ``dataset.load_image`` (Pillow by default: JPEG/PNG/BMP/GIF/WebP, no EXIF
     rotation) in ``tf.numpy_function``; an image that cannot be read is skipped, counted and named
     (:class:`SkippedImages`), and training goes on;
  2. choose the scale as ``resize_image`` does (IMAGE_RESIZE_MODE "square" or "crop"), times a random
     scale-jitter factor when augmenting; resize bilinearly (half-pixel centres) and truncate like matterport,
     with ``tf.image.resize``, not the exact ``resize_bilinear_graph`` of inference (see :mod:`mrcnn.ops.resize`);
  3. rasterise the masks directly at the resized size and read the instance fields with
     ``dataset.load_instances_resized`` (pycocotools, in ``tf.numpy_function``, so many images
     decode in parallel); points are scaled with the image;
  4. augment (:mod:`mrcnn.data.augmentation`) with fseg's ``Augmentation``: horizontal flip of image,
     masks and points together (never while a field with ``flippable=False`` is trained, such as the
     landmark head's DeepFashion2 landmarks), brightness and contrast of the image;
  5. centre-pad to S x S, or crop at a random offset when the image is larger (scale jitter, "crop" mode);
     an imgaug-style augmenter (matterport's ``augmentation``) runs here, on the padded image and masks;
  6. boxes from the masks (matterport's ``extract_bboxes``: y2/x2 exclusive); instances whose mask
     vanished are dropped; at most MAX_GT_INSTANCES kept (a random subset when augmenting);
  7. mini masks (``mrcnn.ops.masks``) and RPN targets (``mrcnn.ops.rpn_targets``, float64 anchors
     as matterport's); the image_meta vector (``mrcnn.ops.image_meta``).

Randomness is stateless and keyed by (seed, element number), so a seed gives the same batches
on every run whatever the parallelism. Images of the dataset's source get active_class_ids 1.
"""
from __future__ import annotations

import dataclasses
import logging
import random

import numpy as np
import tensorflow as tf

from mrcnn.data.augmentation import (NO_AUGMENTATION, adjust_colors, augment_image_and_masks,
                                     is_augmenter, random_flip, resolve, scale_jitter)
from mrcnn.data.dataset import Dataset, DatasetError
from mrcnn.data.image_loader import ImageLoader, SkippedImages
from mrcnn.ops.anchors import get_pixel_anchors
from mrcnn.ops.image_meta import compose_image_meta_graph
from mrcnn.ops.instance_fields import InstanceField, place_points
from mrcnn.ops.masks import extract_bboxes_graph, minimize_masks_graph
from mrcnn.ops.resize import centered_padding, resized_size_graph, resize_scale_graph
from mrcnn.ops.rpn_targets import build_rpn_targets

log = logging.getLogger(__name__)

SUPPORTED_RESIZE_MODES = ("square", "crop")
_NUM_RANDOM_STREAMS = 7  # flip, scale, brightness, contrast, crop offset, instance subset, RPN sampling


def build_training_dataset(dataset: Dataset, config, *, shuffle: bool = True, augment=True, seed: int | None = None,
                           repeat: bool = True, deterministic: bool | None = None,
                           instance_fields: tuple[InstanceField, ...] | list = (),
                           no_augmentation_sources=None, batch_size: int | None = None,
                           skipped: "SkippedImages | None" = None,
                           shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Batches of training inputs (see the module docstring for keys, shapes and dtypes).

    Args:
      dataset: a prepared ``Dataset`` (``CocoDataset`` or a subclass of your own).
      config: the model ``Config`` (image sizes, anchors, MAX_GT_INSTANCES, BATCH_SIZE, ...).
      shuffle: reshuffle the images every epoch.
      augment: True for the default ``Augmentation()``, False or None for none, an ``Augmentation``,
        or an imgaug-style augmenter (see mrcnn.data.augmentation).
      seed: makes the order and every random choice reproducible; None = a fresh random seed.
      repeat: repeat forever (the training loop decides where an epoch ends).
      deterministic: keep the element order under parallel decoding; default: True when a seed is
        given (slightly slower), False otherwise.
      instance_fields: extra per-instance ground truth to load (the ROI heads' ``instance_fields``).
      no_augmentation_sources: dataset sources (``image_info["source"]``) whose images are not augmented.
      batch_size: images per batch; default config.BATCH_SIZE.
      skipped: collects the images that could not be read (a fresh one is made when None).
      shard: ``(pipelines, index)``: this input pipeline reads and decodes only the image numbers
        ``index, index + pipelines, ...`` (split before decoding, so each tf.distribute worker decodes
        its own images only; see mrcnn.train.stage.training_input). tf.distribute's own sharding is
        then switched off. The random choices stay keyed by the global element number.
    Returns:
      A ``tf.data.Dataset`` of dicts, batched (an incomplete last batch is dropped).
    Raises:
      DatasetError: the dataset has no images or is not prepared.
      ValueError: the config's resize mode is not "square" or "crop".
    """
    augment = resolve(augment)
    if is_augmenter(augment) and any(f.kind == "points" for f in instance_fields):
        raise ValueError("an imgaug-style augmenter cannot move point fields; use mrcnn.data.Augmentation")
    if deterministic is None:
        deterministic = seed is not None
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 31)
    return _build(dataset, config, augment=augment, shuffle=shuffle, repeat=repeat, seed=seed,
                  deterministic=deterministic, training=True, fields=tuple(instance_fields),
                  skip_sources=set(no_augmentation_sources or ()), batch_size=batch_size,
                  skipped=SkippedImages() if skipped is None else skipped, shard=shard)


def build_validation_dataset(dataset: Dataset, config, *, instance_fields=(), skipped=None) -> tf.data.Dataset:
    """One deterministic pass over the images: no augmentation, no shuffle, no repeat.

    Same element structure as :func:`build_training_dataset`; an incomplete last batch is dropped
    (the model's graph needs exactly config.BATCH_SIZE images).
    """
    return _build(dataset, config, augment=NO_AUGMENTATION, shuffle=False, repeat=False, seed=0,
                  deterministic=True, training=False, fields=tuple(instance_fields), skip_sources=set(),
                  batch_size=None, skipped=SkippedImages() if skipped is None else skipped, shard=None)


# ---------------------------------------------------------------- assembly
def _build(dataset, config, *, augment, shuffle, repeat, seed, deterministic, training, fields, skip_sources,
           batch_size, skipped, shard) -> tf.data.Dataset:
    _check_inputs(dataset, config)
    if fields:
        _check_fields(dataset, fields)
    pipelines, index = shard or (1, 0)
    if not 0 <= index < pipelines:
        raise ValueError(f"shard index {index} is not in 0..{pipelines - 1}")
    ids = tf.data.Dataset.range(len(dataset.image_ids)).shard(pipelines, index)  # before any decoding
    count = len(range(index, len(dataset.image_ids), pipelines))
    if count == 0:
        raise DatasetError(f"input pipeline {index} of {pipelines} has no images: "
                           f"{len(dataset.image_ids)} images for {pipelines} pipelines")
    loader = ImageLoader(dataset, fields, skip_sources, skipped, images_in_pipeline=count)
    prepare = _Preparer(config, augment, training, fields)
    if shuffle:
        ids = ids.shuffle(count, seed=seed + index, reshuffle_each_iteration=True)
    if repeat:
        ids = ids.repeat()
    base_seed = tf.constant(seed, tf.int64)

    # Graph code already: AutoGraph's rewrite of this function and all it calls cost 2-4 s per pipeline.
    @tf.autograph.experimental.do_not_convert
    def load_and_prepare(local_number, image_id):
        element_seed = tf.stack([base_seed, local_number * pipelines + index])  # the global element number
        augmentable = loader.augmentable(image_id)
        loaded = loader.load(image_id, lambda hw, seed: prepare.resize_plan(hw, seed, augmentable), element_seed)
        inputs = prepare(image_id, loaded, loader.active_class_ids(image_id), element_seed, augmentable)
        return inputs, loaded["readable"]

    options = tf.data.Options()
    options.deterministic = deterministic
    if shard is not None:  # already split by image: tf.distribute must not split the batches again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return (ids.enumerate()
            .map(load_and_prepare, num_parallel_calls=tf.data.AUTOTUNE)
            .filter(lambda inputs, readable: readable)  # unreadable images are skipped (and named)
            .map(lambda inputs, readable: inputs)
            .batch(batch_size or config.BATCH_SIZE, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options))


def _check_fields(dataset, fields) -> None:
    """Ask the dataset for the heads' fields of its first images now: a dataset that cannot give them (a
    CocoDataset loaded without ``annotation_fields``) raises its DatasetError here, in one line, not in the
    first batch. The values themselves are checked as each image loads (and by
    ``CocoDataset.check_instance_fields``, which ``fseg train`` calls before training)."""
    for image_id in dataset.image_ids[:100]:
        if any(len(rows) for rows in dataset.load_instance_fields(image_id, fields).values()):
            return


def _check_inputs(dataset, config) -> None:
    if not hasattr(dataset, "num_images"):
        raise DatasetError("the dataset is not prepared: call dataset.prepare() first")
    if dataset.num_images == 0:
        raise DatasetError("the dataset has no images")
    if config.IMAGE_RESIZE_MODE not in SUPPORTED_RESIZE_MODES:
        raise ValueError(f"the training pipeline needs IMAGE_RESIZE_MODE square or crop, "
                         f"not {config.IMAGE_RESIZE_MODE!r}")
    if config.IMAGE_CHANNEL_COUNT != 3:
        raise ValueError(f"training reads 3-channel RGB images (IMAGE_CHANNEL_COUNT 3, got "
                         f"{config.IMAGE_CHANNEL_COUNT}); detect() takes other channel counts")


def _random_streams(element_seed):
    """Independent stateless seeds, one per random decision: [_NUM_RANDOM_STREAMS, 2] int64."""
    return tf.random.experimental.stateless_split(element_seed, num=_NUM_RANDOM_STREAMS)


# ---------------------------------------------------------------- per-image preparation
class _Preparer:
    """Steps 2 and 4-7 of the module docstring for one image; config values are read once here."""

    def __init__(self, config, augment, training: bool, fields: tuple[InstanceField, ...]):
        self.augmenter = augment if is_augmenter(augment) else None  # imgaug-style, run in NumPy
        self.augment = NO_AUGMENTATION if self.augmenter is not None else augment
        unflippable = [f.name for f in fields if not f.flippable]
        if unflippable and self.augment.flip_probability > 0:
            log.info("left-right flips off: the instance fields %s cannot be flipped", ", ".join(unflippable))
            self.augment = dataclasses.replace(self.augment, flip_probability=0.0)
        self.training = training  # random crop offsets and instance subsets (else centred / first ones)
        self.fields = fields
        self.mode = config.IMAGE_RESIZE_MODE
        self.min_dim, self.max_dim, self.min_scale = config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE
        self.canvas = int(config.IMAGE_SHAPE[0])
        self.max_instances = int(config.MAX_GT_INSTANCES)
        self.mini_mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else None
        self.mean_pixel = tf.constant(np.asarray(config.MEAN_PIXEL, dtype=np.float32))
        self.anchors_per_image = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)
        self.rpn_bbox_std_dev = np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float64)
        anchors = get_pixel_anchors(config.IMAGE_SHAPE, config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
        self.anchors = tf.constant(anchors)  # [A, (y1, x1, y2, x2)] float64 pixels, as matterport's

    def resize_plan(self, original_hw, element_seed, augmentable=True):
        """matterport's resize_image scale times the scale jitter (when the image may be augmented).

        Args:
          original_hw: [2] int32 (H, W) of the decoded image.
        Returns:
          resized_hw: [2] int32, round((H, W) * scale), at least 1. scale: float64 scalar.
        """
        height, width = tf.unstack(tf.cast(original_hw, tf.float64))
        scale = resize_scale_graph(height, width, self.min_dim, self.max_dim, self.min_scale, self.mode)
        scale = scale * scale_jitter(self.augment, _random_streams(element_seed)[1], augmentable)
        return resized_size_graph(original_hw, scale), scale

    def __call__(self, image_id, loaded: dict, active_class_ids, element_seed, augmentable=True) -> dict:
        """One image's training inputs (unbatched shapes of the module docstring)."""
        streams = _random_streams(element_seed)
        points = {f.name: (loaded["fields"][f.name], f.flip_map) for f in self.fields if f.kind == "points"}
        image, masks, flipped = random_flip(self.augment, loaded["image"], loaded["masks"], points, streams[0],
                                            augmentable)
        fields = {**loaded["fields"], **flipped}
        image = adjust_colors(self.augment, image, streams[2], streams[3], augmentable)
        image, masks, window, shift = self._place_on_canvas(image, masks, streams[4])
        if self.augmenter is not None:
            image, masks = self._run_augmenter(image, masks, augmentable)
        for field in self.fields:
            if field.kind == "points":
                fields[field.name] = place_points(fields[field.name], shift[0], shift[1], self.canvas, self.canvas)
        boxes, present = extract_bboxes_graph(masks)
        keep = self._choose_instances(present, streams[5])
        boxes = tf.gather(boxes, keep)
        class_ids = tf.gather(loaded["class_ids"], keep)
        masks = tf.gather(masks, keep, axis=2)
        if self.mini_mask_shape is not None:
            masks = minimize_masks_graph(masks, boxes, self.mini_mask_shape)
        rpn_match, rpn_bbox = build_rpn_targets(
            self.anchors, class_ids, boxes, anchors_per_image=self.anchors_per_image,
            rpn_bbox_std_dev=self.rpn_bbox_std_dev, seed=streams[6])
        side = float(self.canvas)
        meta = compose_image_meta_graph(image_id, [loaded["original_hw"][0], loaded["original_hw"][1], 3],
                                        [side, side, 3.0], window, loaded["scale"], active_class_ids)
        inputs = {
            "input_image": image - self.mean_pixel,
            "input_image_meta": meta,
            "input_rpn_match": tf.cast(rpn_match, tf.int32)[:, None],
            "input_rpn_bbox": tf.cast(rpn_bbox, tf.float32),
            "input_gt_class_ids": _pad_instances(class_ids, self.max_instances, axis=0),
            "input_gt_boxes": _pad_instances(boxes, self.max_instances, axis=0),
            "input_gt_masks": _pad_instances(masks, self.max_instances, axis=2),
        }
        for field in self.fields:
            inputs[field.input_name] = _pad_instances(tf.gather(fields[field.name], keep), self.max_instances, axis=0)
        return inputs

    def _place_on_canvas(self, image, masks, seed):
        """Centre-pad to S x S; a side longer than S is cropped (random offset in training, else centred).

        Returns:
          image [S, S, 3] float32 (padding 0), masks [S, S, N] bool,
          window [4] int32 (y1, x1, y2, x2) of the image inside the canvas, (y2, x2) exclusive,
          shift [2] int32 (dy, dx) that moves a pixel of the input onto the canvas.
        """
        side = self.canvas
        size = tf.shape(image)[:2]
        kept = tf.minimum(size, side)  # [2] rows, columns that fit
        excess = size - kept
        if self.training:
            fraction = tf.random.stateless_uniform([2], seed)
            offset = tf.cast(tf.floor(fraction * tf.cast(excess + 1, tf.float32)), tf.int32)
            offset = tf.minimum(offset, excess)
        else:
            offset = excess // 2
        before, after = centered_padding(kept, side)  # [2] each: rows, columns
        paddings = tf.stack([before, after], axis=1)  # [2, (before, after)]

        def place(array):
            cut = array[offset[0]:offset[0] + kept[0], offset[1]:offset[1] + kept[1]]
            return tf.pad(cut, tf.concat([paddings, [[0, 0]]], axis=0))

        image, masks = place(image), place(masks)
        image.set_shape([side, side, 3])
        masks.set_shape([side, side, None])
        window = tf.concat([before, before + kept], axis=0)
        return image, masks, window, before - offset

    def _run_augmenter(self, image, masks, augmentable):
        """The imgaug-style augmenter on the canvas image [S, S, 3] float32 and masks [S, S, N] bool (NumPy)."""
        def run(pixels, instance_masks, enabled):
            if not enabled:
                return pixels, instance_masks
            return augment_image_and_masks(self.augmenter, pixels, instance_masks)

        pixels, moved = tf.numpy_function(run, [tf.cast(image, tf.uint8), masks, augmentable], [tf.uint8, tf.bool],
                                          stateful=True)
        pixels.set_shape(image.shape)
        moved.set_shape(masks.shape)
        return tf.cast(pixels, tf.float32), moved

    def _choose_instances(self, present, seed):
        """Indices [K] int32 (sorted) of at most MAX_GT_INSTANCES instances with a non-empty mask."""
        indices = tf.cast(tf.where(present)[:, 0], tf.int32)
        if self.training:
            order = tf.argsort(tf.random.stateless_uniform(tf.shape(indices), seed))
            indices = tf.sort(tf.gather(indices, order)[:self.max_instances])
        return indices[:self.max_instances]


def _pad_instances(values, size: int, axis: int):
    """Zero-pad (False for bool) ``values`` along ``axis`` to ``size`` entries."""
    missing = size - tf.shape(values)[axis]
    paddings = [[0, 0]] * values.shape.rank
    paddings[axis] = [0, missing]
    padded = tf.pad(values, paddings)
    shape = padded.shape.as_list()
    shape[axis] = size
    padded.set_shape(shape)
    return padded
