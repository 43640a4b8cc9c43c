"""The tf.data input pipeline that feeds Mask R-CNN training: matterport's seven training inputs.

    train = build_training_dataset(dataset, config, seed=0)      # shuffled, augmented, repeated
    val = build_validation_dataset(val_dataset, config)          # one pass, no augmentation
    for inputs in train.take(1):
        inputs["input_image"]                                    # [B, S, S, 3] float32

Every element is a dict of batched tensors (B = config.BATCH_SIZE, S = the
molded image side, A = anchors, G = MAX_GT_INSTANCES, T = RPN_TRAIN_ANCHORS_PER_IMAGE):

    input_image         [B, S, S, 3]   float32  RGB minus MEAN_PIXEL (padding = -MEAN_PIXEL)
    input_image_meta    [B, 12 + C]    float32  see mrcnn.image_meta (window = image inside the canvas)
    input_rpn_match     [B, A, 1]      int32    1 positive, -1 negative, 0 neutral anchor
    input_rpn_bbox      [B, T, 4]      float32  (dy, dx, log dh, log dw) / RPN_BBOX_STD_DEV of positives
    input_gt_class_ids  [B, G]         int32    internal class ids; 0 = padding, negative = crowd
    input_gt_boxes      [B, G, 4]      float32  (y1, x1, y2, x2) pixels of the molded image, (y2, x2)
                                                exclusive; integer values (matterport uses int32); 0 = padding
    input_gt_masks      [B, m, m, G]   bool     mini masks (m = MINI_MASK_SHAPE) cropped to each box,
                        [B, S, S, G]            or full canvas masks when USE_MINI_MASK is False

Per image, in order (all in TensorFlow except mask rasterisation):
  1. read the file and decode it with ``tf.io`` (JPEG/PNG/BMP/GIF/WebP, no EXIF rotation), or call
     ``dataset.load_image`` when a subclass overrides it;
  2. choose the scale as ``resize_image`` does (IMAGE_RESIZE_MODE "square" or "crop"), times a random
     scale-jitter factor when augmenting; resize bilinearly (half-pixel centres) and truncate like matterport;
  3. rasterise the masks directly at the resized size with ``dataset.load_mask_resized`` (pycocotools,
     in ``tf.numpy_function``, so many images decode in parallel);
  4. augment: horizontal flip of image and masks together, brightness and contrast of the image;
  5. centre-pad to S x S, or crop at a random offset when the image is larger (scale jitter, "crop" mode);
  6. boxes from the masks (matterport's ``extract_bboxes``: y2/x2 exclusive); instances whose mask
     vanished are dropped; at most MAX_GT_INSTANCES kept (a random subset when augmenting);
  7. mini masks (crop to the box, bilinear resize, > 0.5) and RPN targets
     (``mrcnn.targets.build_rpn_targets``, float64 anchors as matterport's).

Randomness is stateless and keyed by (seed, element number), so a seed gives the same batches
on every run whatever the parallelism. Images of the dataset's source get active_class_ids 1.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mrcnn.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.dataset import Dataset, DatasetError
from mrcnn.targets import build_rpn_targets

log = logging.getLogger(__name__)

SUPPORTED_RESIZE_MODES = ("square", "crop")
MASK_THRESHOLD = 0.5  # mini mask pixels above this are set (np.around in matterport: 0.5 -> False)
_NUM_RANDOM_STREAMS = 7  # flip, scale, brightness, contrast, crop offset, instance subset, RPN sampling


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training image (masks and boxes follow the image).

    Attributes:
      flip_probability: chance of a left-right flip.
      scale_range: (low, high) factor multiplied into the resize scale; > 1 zooms in (the
        image is then cropped at a random offset), < 1 zooms out (more padding).
      brightness: maximum shift of the pixel values, as a fraction of 255.
      contrast_range: (low, high) factor applied around the image's mean value.
    """

    flip_probability: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.25)
    brightness: float = 0.1
    contrast_range: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self):
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("scale_range", "contrast_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")
        if not 0.0 <= self.brightness <= 1.0:
            raise ValueError(f"brightness must be in [0, 1] (a fraction of 255), got {self.brightness}")


NO_AUGMENTATION = Augmentation(flip_probability=0.0, scale_range=(1.0, 1.0), brightness=0.0,
                               contrast_range=(1.0, 1.0))


def build_training_dataset(dataset: Dataset, config, *, shuffle: bool = True, augment=True, seed: int | None = None,
                           repeat: bool = True, deterministic: bool | None = None) -> tf.data.Dataset:
    """Batches of training inputs (see the module docstring for keys, shapes and dtypes).

    Args:
      dataset: a prepared ``Dataset`` (``CocoDataset`` or a subclass of your own).
      config: the model ``Config`` (image sizes, anchors, MAX_GT_INSTANCES, BATCH_SIZE, ...).
      shuffle: reshuffle the images every epoch.
      augment: True for the default ``Augmentation()``, False for none, or an ``Augmentation``.
      seed: makes the order and every random choice reproducible; None = a fresh random seed.
      repeat: repeat forever (the training loop decides where an epoch ends).
      deterministic: keep the element order under parallel decoding; default: True when a seed is
        given (slightly slower), False otherwise.
    Returns:
      A ``tf.data.Dataset`` of dicts, batched to config.BATCH_SIZE (an incomplete last batch is dropped).
    Raises:
      DatasetError: the dataset has no images or is not prepared.
      ValueError: the config's resize mode is not "square" or "crop".
    """
    if augment is True:
        augment = Augmentation()
    elif augment is False or augment is None:
        augment = NO_AUGMENTATION
    if deterministic is None:
        deterministic = seed is not None
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 31)
    return _build(dataset, config, augment=augment, shuffle=shuffle, repeat=repeat, seed=seed,
                  deterministic=deterministic, training=True)


def build_validation_dataset(dataset: Dataset, config) -> tf.data.Dataset:
    """One deterministic pass over the images: no augmentation, no shuffle, no repeat.

    Same element structure as :func:`build_training_dataset`; an incomplete last batch is dropped
    (the model's graph needs exactly config.BATCH_SIZE images).
    """
    return _build(dataset, config, augment=NO_AUGMENTATION, shuffle=False, repeat=False, seed=0,
                  deterministic=True, training=False)


# ---------------------------------------------------------------- assembly
def _build(dataset, config, *, augment, shuffle, repeat, seed, deterministic, training) -> tf.data.Dataset:
    _check_inputs(dataset, config)
    loader = _ImageLoader(dataset)
    prepare = _Preparer(config, augment, training)
    count = len(dataset.image_ids)
    ids = tf.data.Dataset.range(count)
    if shuffle:
        ids = ids.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ids = ids.repeat()
    base_seed = tf.constant(seed, tf.int64)

    def load_and_prepare(element_number, image_id):
        element_seed = tf.stack([base_seed, element_number])
        loaded = loader.load(image_id, prepare.resize_plan, element_seed)
        return prepare(image_id, loaded, loader.active_class_ids(image_id), element_seed)

    options = tf.data.Options()
    options.deterministic = deterministic
    return (ids.enumerate()
            .map(load_and_prepare, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(config.BATCH_SIZE, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options))


def _check_inputs(dataset, config) -> None:
    if not hasattr(dataset, "num_images"):
        raise DatasetError("the dataset is not prepared: call dataset.prepare() first")
    if dataset.num_images == 0:
        raise DatasetError("the dataset has no images")
    if config.IMAGE_RESIZE_MODE not in SUPPORTED_RESIZE_MODES:
        raise ValueError(f"the training pipeline needs IMAGE_RESIZE_MODE square or crop, "
                         f"not {config.IMAGE_RESIZE_MODE!r}")
    if config.IMAGE_CHANNEL_COUNT != 3:
        raise ValueError("the training pipeline reads RGB images: IMAGE_CHANNEL_COUNT must be 3")


def _random_streams(element_seed):
    """Independent stateless seeds, one per random decision: [_NUM_RANDOM_STREAMS, 2] int64."""
    return tf.random.experimental.stateless_split(element_seed, num=_NUM_RANDOM_STREAMS)


# ---------------------------------------------------------------- loading
class _ImageLoader:
    """Decodes an image and rasterises its masks at the size that ``resize_plan`` chooses."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.decode_with_tf = type(dataset).load_image is Dataset.load_image
        self.size_warned: set[int] = set()  # images whose file size differs from the annotated size
        self.paths = tf.constant([str(info["path"]) for info in dataset.image_info])
        active = np.stack([dataset.active_class_ids(i) for i in dataset.image_ids]).astype(np.float32)
        self.active = tf.constant(active)  # [num_images, num_classes]

    def active_class_ids(self, image_id):
        return tf.gather(self.active, image_id)

    def load(self, image_id, resize_plan, element_seed) -> dict:
        """Decode, choose the size, resize, rasterise.

        Returns a dict:
          image: [h, w, 3] float32 in [0, 255], resized. masks: [h, w, N] bool at the same size.
          class_ids: [N] int32. original_hw: [2] int32, the decoded file's (H, W).
          scale: float64 scalar, the resize factor (jitter included).
        """
        image = self._decode(image_id)
        original_hw = tf.shape(image)[:2]
        resized_hw, scale = resize_plan(original_hw, element_seed)
        resized = tf.image.resize(image, resized_hw, method="bilinear", antialias=False)
        resized = tf.floor(tf.clip_by_value(resized, 0.0, 255.0))  # matterport truncates to uint8
        masks, class_ids = tf.numpy_function(self._masks, [image_id, original_hw, resized_hw],
                                             [tf.bool, tf.int32], stateful=False)
        masks.set_shape([None, None, None])
        class_ids.set_shape([None])
        return {"image": resized, "masks": masks, "class_ids": class_ids, "original_hw": original_hw,
                "scale": scale}

    def _decode(self, image_id):
        if self.decode_with_tf:
            data = tf.io.read_file(tf.gather(self.paths, image_id))
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        else:
            image = tf.numpy_function(self._load_image, [image_id], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return image

    def _load_image(self, image_id):
        return np.ascontiguousarray(self.dataset.load_image(int(image_id)), dtype=np.uint8)

    def _masks(self, image_id, original_hw, resized_hw):
        image_id = int(image_id)
        info = self.dataset.image_info[image_id]
        listed = (info.get("height"), info.get("width"))
        if None not in listed and tuple(listed) != tuple(original_hw) and image_id not in self.size_warned:
            self.size_warned.add(image_id)
            log.warning("%s is %dx%d pixels but its annotations say %dx%d; masks are stretched to the image",
                        info["path"], original_hw[1], original_hw[0], listed[1], listed[0])
        masks, class_ids = self.dataset.load_mask_resized(image_id, int(resized_hw[0]), int(resized_hw[1]))
        return masks.astype(bool), class_ids.astype(np.int32)


# ---------------------------------------------------------------- per-image preparation
class _Preparer:
    """Steps 2 and 4-7 of the module docstring for one image; config values are read once here."""

    def __init__(self, config, augment: Augmentation, training: bool):
        self.augment = augment
        self.training = training  # random crop offsets and instance subsets (else centred / first ones)
        self.mode = config.IMAGE_RESIZE_MODE
        self.min_dim = float(config.IMAGE_MIN_DIM or 0)
        self.max_dim = float(config.IMAGE_MAX_DIM or 0)
        self.min_scale = float(config.IMAGE_MIN_SCALE or 0)
        self.canvas = int(config.IMAGE_SHAPE[0])
        self.max_instances = int(config.MAX_GT_INSTANCES)
        self.mini_mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else None
        self.mean_pixel = tf.constant(np.asarray(config.MEAN_PIXEL, dtype=np.float32))
        self.anchors_per_image = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)
        self.rpn_bbox_std_dev = np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float64)
        shapes = compute_backbone_shapes(config.IMAGE_SHAPE, config.BACKBONE_STRIDES)
        anchors = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                                           config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
        self.anchors = tf.constant(anchors)  # [A, (y1, x1, y2, x2)] float64 pixels, as matterport's

    def resize_plan(self, original_hw, element_seed):
        """matterport's resize_image scale times the scale jitter.

        Args:
          original_hw: [2] int32 (H, W) of the decoded image.
        Returns:
          resized_hw: [2] int32, round((H, W) * scale), at least 1. scale: float64 scalar.
        """
        height, width = tf.unstack(tf.cast(original_hw, tf.float64))
        scale = tf.constant(1.0, tf.float64)
        if self.min_dim:
            scale = tf.maximum(scale, self.min_dim / tf.minimum(height, width))
        if self.min_scale:
            scale = tf.maximum(scale, self.min_scale)
        if self.max_dim and self.mode == "square":
            longest = tf.maximum(height, width)
            scale = tf.where(tf.round(longest * scale) > self.max_dim, self.max_dim / longest, scale)
        low, high = self.augment.scale_range
        jitter = tf.random.stateless_uniform([], _random_streams(element_seed)[1], low, high, tf.float64)
        scale = scale * (jitter if low != high else low)
        resized = tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32)
        return tf.maximum(resized, 1), scale

    def __call__(self, image_id, loaded: dict, active_class_ids, element_seed) -> dict:
        """One image's training inputs (unbatched shapes of the module docstring)."""
        streams = _random_streams(element_seed)
        image, masks = self._flip(loaded["image"], loaded["masks"], streams[0])
        image = self._adjust_colors(image, streams[2], streams[3])
        image, masks, window = self._place_on_canvas(image, masks, streams[4])
        boxes, present = extract_boxes(masks)
        keep = self._choose_instances(present, streams[5])
        boxes = tf.gather(boxes, keep)
        class_ids = tf.gather(loaded["class_ids"], keep)
        masks = tf.gather(masks, keep, axis=2)
        if self.mini_mask_shape is not None:
            masks = minimize_masks(masks, boxes, self.mini_mask_shape)
        rpn_match, rpn_bbox = build_rpn_targets(
            self.anchors, class_ids, boxes, anchors_per_image=self.anchors_per_image,
            rpn_bbox_std_dev=self.rpn_bbox_std_dev, seed=streams[6])
        meta = self._image_meta(image_id, loaded["original_hw"], window, loaded["scale"], active_class_ids)
        return {
            "input_image": image - self.mean_pixel,
            "input_image_meta": meta,
            "input_rpn_match": tf.cast(rpn_match, tf.int32)[:, None],
            "input_rpn_bbox": tf.cast(rpn_bbox, tf.float32),
            "input_gt_class_ids": _pad_instances(class_ids, self.max_instances, axis=0),
            "input_gt_boxes": _pad_instances(boxes, self.max_instances, axis=0),
            "input_gt_masks": _pad_instances(masks, self.max_instances, axis=2),
        }

    def _flip(self, image, masks, seed):
        """Left-right flip of image [h, w, 3] and masks [h, w, N] together, with flip_probability."""
        probability = self.augment.flip_probability
        if probability <= 0:
            return image, masks
        flip = tf.random.stateless_uniform([], seed) < probability
        return tf.cond(flip, lambda: (tf.reverse(image, [1]), tf.reverse(masks, [1])), lambda: (image, masks))

    def _adjust_colors(self, image, brightness_seed, contrast_seed):
        """Contrast around the image mean, then a brightness shift; image [h, w, 3] float32 in [0, 255]."""
        low, high = self.augment.contrast_range
        if (low, high) != (1.0, 1.0):
            factor = tf.random.stateless_uniform([], contrast_seed, low, high)
            mean = tf.reduce_mean(image)
            image = (image - mean) * factor + mean
        if self.augment.brightness > 0:
            limit = self.augment.brightness * 255.0
            image = image + tf.random.stateless_uniform([], brightness_seed, -limit, limit)
        return tf.clip_by_value(image, 0.0, 255.0)

    def _place_on_canvas(self, image, masks, seed):
        """Centre-pad to S x S; a side longer than S is cropped (random offset in training, else centred).

        Returns:
          image [S, S, 3] float32 (padding 0), masks [S, S, N] bool,
          window [4] int32 (y1, x1, y2, x2) of the image inside the canvas, (y2, x2) exclusive.
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
        before = (side - kept) // 2
        paddings = tf.stack([before, side - kept - before], axis=1)  # [2, (before, after)]

        def place(array):
            cut = array[offset[0]:offset[0] + kept[0], offset[1]:offset[1] + kept[1]]
            return tf.pad(cut, tf.concat([paddings, [[0, 0]]], axis=0))

        image, masks = place(image), place(masks)
        image.set_shape([side, side, 3])
        masks.set_shape([side, side, None])
        window = tf.concat([before, before + kept], axis=0)
        return image, masks, window

    def _choose_instances(self, present, seed):
        """Indices [K] int32 (sorted) of at most MAX_GT_INSTANCES instances with a non-empty mask."""
        indices = tf.cast(tf.where(present)[:, 0], tf.int32)
        if self.training:
            order = tf.argsort(tf.random.stateless_uniform(tf.shape(indices), seed))
            indices = tf.sort(tf.gather(indices, order)[:self.max_instances])
        return indices[:self.max_instances]

    def _image_meta(self, image_id, original_hw, window, scale, active_class_ids):
        """[12 + NUM_CLASSES] float32, the layout of mrcnn.image_meta.compose_image_meta."""
        side = float(self.canvas)
        return tf.concat([
            tf.cast(tf.reshape(image_id, [1]), tf.float32),
            tf.cast(original_hw, tf.float32), [3.0],
            [side, side, 3.0],
            tf.cast(window, tf.float32),
            tf.cast(tf.reshape(scale, [1]), tf.float32),
            active_class_ids,
        ], axis=0)


# ---------------------------------------------------------------- tensor helpers
def extract_boxes(masks):
    """Tight boxes of instance masks (matterport's extract_bboxes, in TensorFlow).

    Args:
      masks: [H, W, N] bool.
    Returns:
      boxes: [N, (y1, x1, y2, x2)] float32 pixels, (y2, x2) exclusive (last row/column + 1);
        all zeros for an empty mask.
      present: [N] bool, True where the mask has at least one pixel.
    """
    rows = tf.reduce_any(masks, axis=1)  # [H, N]
    cols = tf.reduce_any(masks, axis=0)  # [W, N]
    present = tf.reduce_any(rows, axis=0)  # [N]

    def first_and_end(lines):
        count = tf.shape(lines)[0]
        first = tf.argmax(tf.cast(lines, tf.int32), axis=0, output_type=tf.int32)
        end = count - tf.argmax(tf.cast(tf.reverse(lines, [0]), tf.int32), axis=0, output_type=tf.int32)
        return first, end

    y1, y2 = first_and_end(rows)
    x1, x2 = first_and_end(cols)
    boxes = tf.cast(tf.stack([y1, x1, y2, x2], axis=1), tf.float32)
    return tf.where(present[:, None], boxes, 0.0), present


def minimize_masks(masks, boxes, mini_shape):
    """Each mask cropped to its box and resized to mini_shape (matterport's minimize_mask, in TensorFlow).

    Bilinear with half-pixel centres inside the box, like skimage resizing ``mask[y1:y2, x1:x2]``
    (zero beyond the box, output clipped to the input's range), then > 0.5.
    Args:
      masks: [H, W, N] bool. boxes: [N, (y1, x1, y2, x2)] float32 pixels, (y2, x2) exclusive, non-empty.
      mini_shape: (mh, mw), e.g. (56, 56).
    Returns:
      [mh, mw, N] bool.
    """
    mini_h, mini_w = (float(v) for v in mini_shape)
    # One row/column of zeros around the masks, so samples up to half a pixel outside the image
    # blend with 0 as in skimage (crop_and_resize would return its extrapolation value instead).
    per_instance = tf.pad(tf.transpose(tf.cast(masks, tf.float32), [2, 0, 1]), [[0, 0], [1, 1], [1, 1]])
    per_instance = per_instance[..., None]  # [N, H + 2, W + 2, 1]
    last = tf.cast(tf.shape(per_instance)[1:3], tf.float32) - 1.0  # padded (H + 1, W + 1)
    y1, x1, y2, x2 = tf.unstack(boxes + 1.0, axis=1)  # padded pixel frame
    # Pixel coordinates of the first and last sample centres of a half-pixel resize of the box.
    first_y = y1 + 0.5 * (y2 - y1) / mini_h - 0.5
    last_y = y1 + (mini_h - 0.5) * (y2 - y1) / mini_h - 0.5
    first_x = x1 + 0.5 * (x2 - x1) / mini_w - 0.5
    last_x = x1 + (mini_w - 0.5) * (x2 - x1) / mini_w - 0.5
    crop_boxes = tf.stack([first_y / last[0], first_x / last[1], last_y / last[0], last_x / last[1]], axis=1)
    count = tf.shape(boxes)[0]
    crops = tf.image.crop_and_resize(per_instance, crop_boxes, tf.range(count), tuple(mini_shape))  # [N, mh, mw, 1]
    mini = tf.transpose(crops[..., 0], [1, 2, 0]) > MASK_THRESHOLD  # [mh, mw, N]
    # skimage clips its output to the input's range: a box the mask fills completely stays all True.
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    filled = tf.reduce_sum(tf.cast(masks, tf.float32), axis=[0, 1]) >= area  # [N]
    return tf.logical_or(mini, filled)


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
