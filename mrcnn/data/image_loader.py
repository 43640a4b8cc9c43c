"""Step 1-3 of the input pipeline: decode an image, rasterise its masks and read its instance fields.

An image that cannot be read (truncated or corrupt file, an error of the dataset's ``load_image``)
does not stop training: :class:`SkippedImages` collects it with a one-line reason, the pipeline drops
its element, and the training callbacks name it at the end of the epoch.
"""
from __future__ import annotations

import logging
import threading

import numpy as np
import tensorflow as tf

from mrcnn.data.dataset import Dataset
from mrcnn.ops.instance_fields import InstanceField, scale_points

log = logging.getLogger(__name__)

_UNREADABLE = np.zeros((1, 1, 3), np.uint8)  # what a failed decode returns; its element is then dropped


class SkippedImages:
    """The images the pipeline could not read, {image id: one-line reason}; shared by its threads.

    ``new()`` returns the ones not reported yet (the training callbacks name them once per epoch).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.reasons: dict[int, str] = {}
        self._reported = 0
        self.nothing_readable: str | None = None  # set, with a one-line message, when a pipeline can read no image

    def add(self, image_id: int, reason: str) -> None:
        with self._lock:
            if image_id not in self.reasons:
                self.reasons[image_id] = reason
                log.warning("skipped an unreadable image: %s", reason)

    def new(self) -> list[str]:
        with self._lock:
            reasons = list(self.reasons.values())
            fresh, self._reported = reasons[self._reported:], len(reasons)
        return fresh

    def __len__(self) -> int:
        return len(self.reasons)


class ImageLoader:
    """Decodes an image, and rasterises its masks and reads its instance fields at the size ``resize_plan`` chooses."""

    def __init__(self, dataset: Dataset, fields: tuple[InstanceField, ...], skip_sources: set, skipped: SkippedImages,
                 images_in_pipeline: int | None = None):
        self.dataset = dataset
        self.fields = fields
        self.skipped = skipped
        # A pipeline that repeats and drops unreadable images would wait forever for a batch if none can be read:
        # once all of its images failed, the next failure raises instead (``skipped.nothing_readable`` says why).
        self.images_in_pipeline = images_in_pipeline
        self.unreadable_here: set[int] = set()
        self.augment_flags = tf.constant([info["source"] not in skip_sources for info in dataset.image_info])
        self.size_warned: set[int] = set()  # images whose file size differs from the annotated size
        active = np.stack([dataset.active_class_ids(i) for i in dataset.image_ids]).astype(np.float32)
        self.active = tf.constant(active)  # [num_images, num_classes]

    def active_class_ids(self, image_id):
        return tf.gather(self.active, image_id)

    def augmentable(self, image_id):
        """bool scalar: False for images of ``no_augmentation_sources``."""
        return tf.gather(self.augment_flags, image_id)

    def load(self, image_id, resize_plan, element_seed) -> dict:
        """Decode, choose the size, resize, rasterise.

        Returns a dict:
          image: [h, w, 3] float32 in [0, 255], resized. masks: [h, w, N] bool at the same size.
          class_ids: [N] int32. fields: {name: [N, ...]} (points in pixels of the resized image).
          original_hw: [2] int32, the decoded file's (H, W). scale: float64 scalar, the resize
          factor (jitter included). readable: bool scalar, False when the image could not be read
          (then the rest is a 1 x 1 placeholder and the element is dropped).
        """
        image, readable = self._decode(image_id)
        original_hw = tf.shape(image)[:2]
        resized_hw, scale = resize_plan(original_hw, element_seed)
        resized = tf.image.resize(image, resized_hw, method="bilinear", antialias=False)
        resized = tf.floor(tf.clip_by_value(resized, 0.0, 255.0))  # matterport truncates to uint8
        out_types = [tf.bool, tf.int32] + [tf.as_dtype(f.dtype) for f in self.fields]
        masks, class_ids, *values = tf.numpy_function(self._instances, [image_id, original_hw, resized_hw, readable],
                                                      out_types, stateful=False)
        masks.set_shape([None, None, None])
        class_ids.set_shape([None])
        fields = {}
        for field, value in zip(self.fields, values):
            value.set_shape([None, *field.shape])
            if field.kind == "points":  # annotated on the image file: scale with the image
                hw_scale = tf.cast(resized_hw, tf.float32) / tf.cast(original_hw, tf.float32)
                value = scale_points(value, hw_scale[0], hw_scale[1])
            fields[field.name] = value
        return {"image": resized, "masks": masks, "class_ids": class_ids, "fields": fields,
                "original_hw": original_hw, "scale": scale, "readable": readable}

    def _decode(self, image_id):
        """([H, W, 3] uint8 image, readable bool scalar) from ``dataset.load_image`` (Pillow decodes in parallel:
        it releases the GIL)."""
        image, readable = tf.numpy_function(self._load_image, [image_id], [tf.uint8, tf.bool], stateful=True)
        image.set_shape([None, None, 3])
        readable.set_shape([])
        return image, readable

    def _load_image(self, image_id):
        image_id = int(image_id)
        try:
            image = np.ascontiguousarray(self.dataset.load_image(image_id), dtype=np.uint8)
        except Exception as exc:  # a truncated or corrupt file, a dataset's own error: skip the image
            path = self.dataset.image_info[image_id].get("path")
            return self._unreadable(image_id, str(exc) if path and str(path) in str(exc) else f"{path}: {exc}")
        if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            return self._unreadable(image_id, f"{self.dataset.image_info[image_id].get('path')}: not an RGB image "
                                              f"(shape {image.shape})")
        return image, np.bool_(True)

    def _unreadable(self, image_id: int, reason: str):
        """Record a failed image; what a failed decode returns, or an error when no image of the pipeline reads."""
        self.skipped.add(image_id, reason)
        self.unreadable_here.add(image_id)
        if self.images_in_pipeline is not None and len(self.unreadable_here) >= self.images_in_pipeline:
            self.skipped.nothing_readable = (f"none of the {self.images_in_pipeline} images of the input could be "
                                             f"read (e.g. {reason})")
            raise RuntimeError(self.skipped.nothing_readable)  # ends the tf.data iterator with an error
        return _UNREADABLE, np.bool_(False)

    def _instances(self, image_id, original_hw, resized_hw, readable):
        image_id = int(image_id)
        if not readable:  # the element will be dropped: no masks to rasterise
            empty = [np.zeros((int(resized_hw[0]), int(resized_hw[1]), 0), bool), np.zeros(0, np.int32)]
            return empty + [np.zeros((0, *f.shape), f.dtype) for f in self.fields]
        info = self.dataset.image_info[image_id]
        listed = (info.get("height"), info.get("width"))
        if None not in listed and tuple(listed) != tuple(original_hw) and image_id not in self.size_warned:
            self.size_warned.add(image_id)
            log.warning("%s is %dx%d pixels but its annotations say %dx%d; masks are stretched to the image",
                        info["path"], original_hw[1], original_hw[0], listed[1], listed[0])
        masks, class_ids, values = self.dataset.load_instances_resized(
            image_id, int(resized_hw[0]), int(resized_hw[1]), self.fields)
        arrays = [np.asarray(values[f.name], dtype=f.dtype).reshape((-1, *f.shape)) for f in self.fields]
        return [masks.astype(bool), class_ids.astype(np.int32), *arrays]
