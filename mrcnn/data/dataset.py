"""The ``Dataset`` base class: matterport's API for listing images, classes and masks.

Subclass it (see :mod:`mrcnn.data.coco` for a full example), then::

    dataset = MyDataset()
    dataset.load_my_data(...)        # calls add_class / add_image
    dataset.prepare()                # builds the id maps below
    image = dataset.load_image(i)    # [H, W, 3] uint8 RGB
    masks, class_ids = dataset.load_mask(i)

Ids. Every class and image has a *source* (a string such as ``"coco"``) and
an id inside that source. ``prepare`` numbers them again: internal class ids
are 0..num_classes-1 in the order the classes were added, with 0 = background
("BG", source ``""``); internal image ids are 0..num_images-1. The model and
the input pipeline see only internal ids; ``map_source_class_id("coco.3")``
and ``get_source_class_id(internal_id, "coco")`` convert between the two.

Extra ROI heads (``mrcnn.modeling.roi_heads``) train on per-instance ground truth beyond
masks (``mrcnn.ops.instance_fields``); a dataset provides it by overriding
:meth:`Dataset.load_instance_fields`.

This module imports NumPy and Pillow (through ``mrcnn.io.images``) only.
"""
from __future__ import annotations

import logging

import numpy as np

from mrcnn.io.images import read_image_rgb
from mrcnn.ops.masks import resize_mask_nearest

log = logging.getLogger(__name__)

BACKGROUND = {"source": "", "id": 0, "name": "BG"}


class DatasetError(Exception):
    """Bad dataset input (not COCO, classes that differ from the config, ...); the message is one line."""


def clean_class_name(name: str) -> str:
    """A display name: the text before the first comma, stripped ("person, human" -> "person")."""
    return ",".join(name.split(",")[:1]).strip()


class Dataset:
    """Images and classes from one or more sources, with matterport's methods and attributes.

    After :meth:`prepare`: ``num_classes``, ``class_ids`` [num_classes] int,
    ``class_names``, ``num_images``, ``image_ids`` [num_images] int, ``sources``,
    ``source_class_ids`` ({source: [internal class ids]}, background included).
    """

    def __init__(self, class_map=None):
        self._image_ids: list[int] = []
        self.image_info: list[dict] = []
        self.class_info: list[dict] = [dict(BACKGROUND)]
        self.source_class_ids: dict[str, list[int]] = {}
        self.class_map = class_map

    # ------------------------------------------------------------ building
    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Register a class; a (source, class_id) pair added twice is kept once."""
        if "." in source:
            raise ValueError(f"source names cannot contain a dot: {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id, path, **kwargs) -> None:
        """Register an image. ``path`` is the file :meth:`load_image` reads; extra keys are kept."""
        self.image_info.append({"id": image_id, "source": source, "path": path, **kwargs})

    def prepare(self, class_map=None) -> None:
        """Number classes and images and build the lookup tables. Call after adding everything."""
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_class_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": class_id for info, class_id in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": image_id for info, image_id in zip(self.image_info, self._image_ids)}
        self.sources = sorted({info["source"] for info in self.class_info})
        self.source_class_ids = {}
        for source in self.sources:
            # Background (source "") belongs to every source.
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source]

    # ------------------------------------------------------------ lookups
    @property
    def image_ids(self) -> np.ndarray:
        """[num_images] int, the internal image ids 0..num_images-1."""
        return self._image_ids

    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of ``"<source>.<id>"`` (e.g. ``"coco.12"``). Raises KeyError if unknown."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The id that ``source`` uses for internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"class {class_id} ({info['name']}) comes from source {info['source']!r}, not {source!r}")
        return info["id"]

    def source_image_link(self, image_id: int):
        """The path (or URL) of an image."""
        return self.image_info[image_id]["path"]

    def image_reference(self, image_id: int) -> str:
        """Something that identifies the image for a human (a path or URL); "" if unknown."""
        return ""

    def active_class_ids(self, image_id: int) -> np.ndarray:
        """[num_classes] int32 0/1 flags: the classes of the image's source (matterport's image_meta field)."""
        flags = np.zeros(self.num_classes, dtype=np.int32)
        source = self.image_info[image_id]["source"]
        flags[self.source_class_ids.get(source, [0])] = 1
        return flags

    # ------------------------------------------------------------ loading
    def load_image(self, image_id: int) -> np.ndarray:
        """The image as [H, W, 3] uint8 RGB (grayscale expanded, alpha composited, EXIF applied).

        Raises ``mrcnn.io.images.ImageReadError`` (one line, names the file) if it cannot be read.
        """
        return read_image_rgb(self.image_info[image_id]["path"], apply_exif=False)

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks of an image. Override in a subclass.

        Returns:
          masks: [H, W, N] bool, one channel per instance.
          class_ids: [N] int32 internal class ids; negative = crowd region.
          The base class has no masks: it warns and returns [0, 0, 0] and [0] arrays (as matterport does).
        """
        log.warning("Dataset.load_mask is not overridden; image %s has no instances", image_id)
        return np.empty((0, 0, 0), dtype=bool), np.empty((0,), dtype=np.int32)

    def load_mask_resized(self, image_id: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks resized to (height, width); used by the input pipeline.

        The base version resizes :meth:`load_mask` by nearest neighbour (pixel
        centres). Subclasses that know the shapes (polygons) can rasterise at the
        target size directly, which is faster and smoother (see ``CocoDataset``).
        Returns:
          masks: [height, width, N] bool. class_ids: [N] int32.
        """
        masks, class_ids = self.load_mask(image_id)
        if masks.shape[-1] == 0 or masks.shape[0] == 0:
            return np.zeros((height, width, len(class_ids)), dtype=bool), class_ids.astype(np.int32)
        return resize_mask_nearest(masks, height, width), class_ids.astype(np.int32)

    def load_instance_fields(self, image_id: int, fields) -> dict[str, np.ndarray]:
        """Per-instance ground truth beyond masks, for extra ROI heads. Override in a subclass.

        Args:
          fields: the ``InstanceField`` specs asked for (``mrcnn.ops.instance_fields``).
        Returns:
          {field name: [N, *field.shape] array}, one row per instance of :meth:`load_mask`, same order;
          "points" fields as (x, y, visibility) rows in pixels of the image file.
        Raises:
          DatasetError: the dataset does not provide a field (the base class provides none).
        """
        if fields:
            raise DatasetError(f"{type(self).__name__} provides no instance fields, but "
                               f"{', '.join(f.name for f in fields)} were asked for (override load_instance_fields)")
        return {}

    def load_instances_resized(self, image_id: int, height: int, width: int, fields=()):
        """Masks at (height, width), class ids and instance fields, rows aligned; used by the input pipeline.

        Returns:
          masks: [height, width, N] bool. class_ids: [N] int32. values: {field name: [N, ...]}.
        Raises:
          DatasetError: a field has another number of rows than the masks.
        """
        masks, class_ids = self.load_mask_resized(image_id, height, width)
        values = self.load_instance_fields(image_id, fields) if fields else {}
        for name, value in values.items():
            if len(value) != len(class_ids):
                raise DatasetError(f"{self.image_reference(image_id) or image_id}: instance field {name!r} has "
                                   f"{len(value)} rows but there are {len(class_ids)} instances")
        return masks, class_ids, values
