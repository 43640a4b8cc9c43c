"""``CocoDataset``: a COCO instances file (such as ``fseg convert``'s output) as a ``Dataset``.

    dataset = CocoDataset()
    dataset.load_coco("train.json", "train/image", class_names=config.CLASS_NAMES)
    dataset.prepare()
    masks, class_ids = dataset.load_mask(0)   # [H, W, N] bool, [N] int32

Masks. A DeepFashion2 item has several polygons that overlap on purpose (the
outline, then the sleeves or legs again); the item's mask is their **union**
(pycocotools ``frPyObjects`` then ``merge``), never an even-odd fill.
Polygons with fewer than 3 points are ignored and an odd trailing coordinate
is dropped; an annotation left with nothing, or whose mask is empty, gives no
instance. RLE segmentations (crowd regions) are supported too.

Crowd annotations (``iscrowd`` = 1) get **negative** class ids, as in
matterport: the model never trains on them as objects and never counts the
anchors and proposals that overlap them as background.

Classes. With ``class_names`` (the config's ``CLASS_NAMES``, background
first), every category of the file must match one name and every name one
category, otherwise :class:`~mrcnn.data.dataset.DatasetError` lists both. Names
match ignoring case and ``_``/``-`` versus spaces; ``class_aliases`` (the config's
``CLASS_ALIASES``, e.g. DeepFashion2's two naming schemes: "short sleeve top" in
the dataset, "short_sleeved_shirt" in the official COCO files) adds other spellings
of a class, and a category's ``df2_name`` field (written by ``fseg convert``) is
accepted as well. The internal class id of a category is
the position of its name in ``class_names``. Without ``class_names`` the
classes are the file's categories in id order.

Instance fields. Annotation keys named in ``annotation_fields`` (e.g. ``keypoints``)
are kept and returned by :meth:`CocoDataset.load_instance_fields` for extra ROI heads.

Bad input: a file that is not COCO raises ``DatasetError`` (one line).
Images missing on disk are skipped (or raise, with ``skip_missing=False``),
logged once as a summary, and listed in ``problems``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NoReturn

import numpy as np
import pycocotools.mask as mask_utils

from mrcnn.data.dataset import Dataset, DatasetError
from mrcnn.io.files import read_json
from mrcnn.ops.masks import resize_mask_nearest

log = logging.getLogger(__name__)

SOURCE = "coco"
MIN_POLYGON_COORDS = 6  # 3 points; pycocotools reads a 4-number list as a box, not a polygon
_PROBLEMS_LOGGED = 5  # examples named in the warning that summarises skipped images


class CocoDataset(Dataset):
    """A COCO instances JSON plus its image folder.

    After :meth:`load_coco`: ``problems`` (one line per skipped image or
    annotation), ``num_missing_images``, ``num_empty_images`` (images with no
    usable instance, kept or skipped) and ``num_skipped_annotations``.
    Each ``image_info`` entry holds ``width``, ``height`` (pixels, from the
    file) and ``annotations`` (dicts with ``category_id`` = the *internal*
    class id, ``iscrowd``, ``segmentation``).
    """

    def __init__(self, class_map=None):
        super().__init__(class_map)
        self.problems: list[str] = []
        self.num_missing_images = 0
        self.num_empty_images = 0
        self.num_skipped_annotations = 0

    def load_coco(self, annotations_path, images_dir, *, class_names=None, class_aliases=None,
                  skip_missing: bool = True, skip_empty: bool = False, annotation_fields=()) -> None:
        """Add the classes and images of a COCO file.

        Args:
          annotations_path: COCO instances JSON.
          images_dir: folder that ``file_name`` is relative to.
          class_names: the config's CLASS_NAMES (background first) to check the
            categories against, or None to take the file's categories.
          class_aliases: the config's CLASS_ALIASES, {class name: [other spellings]}.
          skip_missing: skip images that are not on disk (True) or raise DatasetError.
          skip_empty: skip images with no usable instance (True) or keep them as
            background-only training images (False).
          annotation_fields: annotation keys to keep for :meth:`load_instance_fields`.
        Raises:
          DatasetError: not a COCO file, categories that differ from
            ``class_names``, an annotation of an unknown image or category, or a
            missing image with ``skip_missing=False``.
        """
        path = Path(annotations_path)
        coco = _read_coco(path)
        category_to_class = self._add_classes(coco["categories"], class_names, class_aliases, path)
        annotations = _group_annotations(coco["annotations"], category_to_class, path, tuple(annotation_fields))
        present = _files_in(Path(images_dir))
        missing = []
        for image in coco["images"]:
            image_id, file_name = _image_fields(image, path)
            image_path = os.path.join(images_dir, file_name)
            if not _exists(file_name, image_path, present):
                missing.append(image_path)
                annotations.pop(image_id, None)
                continue
            anns = self._usable(annotations.pop(image_id, []), image_path)
            if not any(a["iscrowd"] == 0 for a in anns):
                self.num_empty_images += 1
                if skip_empty:
                    self.problems.append(f"{image_path}: no instances, skipped")
                    continue
            self.add_image(SOURCE, image_id, image_path, width=int(image["width"]),
                           height=int(image["height"]), annotations=anns)
        if annotations:
            some = next(iter(annotations))
            raise DatasetError(f"{path}: {len(annotations)} images referenced by annotations are not listed "
                               f"in 'images' (e.g. image_id {some})")
        self._report_missing(missing, skip_missing, images_dir)

    # ------------------------------------------------------------ loading
    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks at the image's size (from the file).

        Returns:
          masks: [H, W, N] bool, each the union of its annotation's polygons.
          class_ids: [N] int32 internal class ids, negative for crowd regions.
        """
        info = self.image_info[image_id]
        return self.load_mask_resized(image_id, info["height"], info["width"])

    def load_mask_resized(self, image_id: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks rasterised directly at (height, width).

        Polygon vertices are scaled by (height / H, width / W) before rasterising
        (the pixel-edge frame: pixel i spans [i, i + 1)), which matches a
        half-pixel-centre image resize. RLE masks are resized by nearest neighbour.
        Instances whose mask is empty at this size are left out.
        Returns:
          masks: [height, width, N] bool. class_ids: [N] int32 (negative = crowd).
        """
        masks, class_ids, _ = self._rasterize(image_id, height, width)
        return masks, class_ids

    def _rasterize(self, image_id: int, height: int, width: int):
        """(masks [height, width, N] bool, class_ids [N] int32, rows [N]: the annotation index of each)."""
        info = self.image_info[image_id]
        scale = (height / info["height"], width / info["width"])
        rles, class_ids, rows = [], [], []
        for row, ann in enumerate(info["annotations"]):
            rle = _to_rle(ann["segmentation"], (height, width), scale)
            if rle is not None:
                rles.append(rle)
                class_ids.append(-ann["category_id"] if ann["iscrowd"] else ann["category_id"])
                rows.append(row)
        if not rles:
            return np.zeros((height, width, 0), dtype=bool), np.zeros((0,), dtype=np.int32), np.zeros(0, int)
        masks = mask_utils.decode(rles).astype(bool)  # [height, width, N]
        nonempty = masks.any(axis=(0, 1))
        return (np.ascontiguousarray(masks[:, :, nonempty]), np.array(class_ids, dtype=np.int32)[nonempty],
                np.array(rows)[nonempty])

    def load_instance_fields(self, image_id: int, fields) -> dict[str, np.ndarray]:
        """The kept annotation keys (``annotation_fields`` of load_coco) as arrays, one row per instance.

        A missing value (null or absent key) gives a row of zeros (for points: unlabelled).
        """
        annotations = self.image_info[image_id]["annotations"]
        values = {}
        for field in fields:
            rows = []
            for ann in annotations:
                if field.name not in ann:
                    raise DatasetError(f"instance field {field.name!r} was not kept: pass "
                                       f"annotation_fields=[{field.name!r}] to load_coco")
                raw = ann[field.name]
                rows.append(np.zeros(field.shape) if raw is None else _field_array(raw, field, ann))
            values[field.name] = np.asarray(rows, dtype=field.dtype).reshape((-1, *field.shape))
        return values

    def check_instance_fields(self, fields) -> None:
        """Raise DatasetError (one line, naming the annotation) for a kept field value that is not a list of the
        field's size, so that a bad file fails before training rather than in the input pipeline's first batch.
        (Its numbers are checked as each image loads: a pass over every value of a split would take minutes.)"""
        for info in self.image_info:
            for ann in info.get("annotations", ()):
                for field in fields:
                    raw = ann.get(field.name)
                    if raw is not None and not (isinstance(raw, list) and len(raw) == int(np.prod(field.shape))):
                        _raise_bad_field(raw, field, ann)

    def load_instances_resized(self, image_id: int, height: int, width: int, fields=()):
        """Masks, class ids and fields of the instances whose mask is not empty at (height, width)."""
        masks, class_ids, rows = self._rasterize(image_id, height, width)
        values = {name: value[rows] for name, value in self.load_instance_fields(image_id, fields).items()}
        return masks, class_ids, values

    def image_reference(self, image_id: int) -> str:
        return str(self.image_info[image_id]["path"])

    # ------------------------------------------------------------ helpers
    def _add_classes(self, categories: list, class_names, class_aliases, path: Path) -> dict[int, int]:
        """Add the classes; return {file category id: internal class id}."""
        by_id = {}
        for category in categories:
            if not isinstance(category, dict) or "id" not in category or "name" not in category:
                raise DatasetError(f"{path}: not a COCO file (a category lacks 'id' or 'name')")
            by_id[category["id"]] = category
        ordered = [by_id[k] for k in sorted(by_id)]
        if class_names is None:
            for category in ordered:
                self.add_class(SOURCE, category["id"], category["name"])
            return {c["id"]: i + 1 for i, c in enumerate(ordered)}
        wanted = list(class_names)[1:]  # index 0 is background
        match = match_categories(ordered, wanted, class_aliases)
        if match is None:
            raise DatasetError(
                f"{path}: categories differ from the config's CLASS_NAMES: file has "
                f"[{', '.join(c['name'] for c in ordered)}]; config has [{', '.join(wanted)}]")
        for index, category_id in enumerate(match):
            self.add_class(SOURCE, category_id, wanted[index])
        return {category_id: index + 1 for index, category_id in enumerate(match)}

    def _usable(self, annotations: list[dict], image_path: str) -> list[dict]:
        """The annotations that can give a mask; the others are counted in ``problems``."""
        usable = []
        for ann in annotations:
            if _has_shape(ann["segmentation"]):
                usable.append(ann)
            else:
                self.num_skipped_annotations += 1
                self.problems.append(f"{image_path}: annotation {ann['id']} has no usable segmentation, skipped")
        return usable

    def _report_missing(self, missing: list[str], skip_missing: bool, images_dir) -> None:
        if not missing:
            return
        if not skip_missing:
            raise DatasetError(f"{len(missing)} images listed in the annotations are missing from {images_dir} "
                               f"(first: {missing[0]})")
        self.num_missing_images = len(missing)
        self.problems.extend(f"{p}: image file missing, skipped" for p in missing)
        log.warning("%d images missing from %s were skipped (e.g. %s)", len(missing), images_dir,
                    ", ".join(missing[:_PROBLEMS_LOGGED]))


# ---------------------------------------------------------------- file reading
def _read_coco(path: Path) -> dict:
    """The parsed file, checked to be a COCO instances file. Raises DatasetError (one line)."""
    coco = read_json(path, DatasetError, "COCO annotation file")
    if not isinstance(coco, dict):
        raise DatasetError(f"{path}: not a COCO file (the top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DatasetError(f"{path}: not a COCO instances file (no '{key}' list)")
    return coco


def _image_fields(image, path: Path) -> tuple[int, str]:
    if not isinstance(image, dict) or not all(k in image for k in ("id", "file_name", "width", "height")):
        raise DatasetError(f"{path}: not a COCO file (an image lacks id, file_name, width or height)")
    return image["id"], image["file_name"]


def _group_annotations(annotations: list, category_to_class: dict[int, int], path: Path,
                       keep: tuple[str, ...] = ()) -> dict[int, list]:
    """{image id: [trimmed annotation]} with internal class ids; large fields are dropped unless in ``keep``."""
    grouped: dict[int, list] = {}
    for ann in annotations:
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise DatasetError(f"{path}: not a COCO file (an annotation lacks image_id or category_id)")
        if ann["category_id"] not in category_to_class:
            raise DatasetError(f"{path}: annotation {ann.get('id')} has category_id {ann['category_id']}, "
                               f"which is not in 'categories'")
        grouped.setdefault(ann["image_id"], []).append({
            "id": ann.get("id"), "category_id": category_to_class[ann["category_id"]],
            "iscrowd": int(ann.get("iscrowd", 0)), "segmentation": ann.get("segmentation"),
            **{key: ann.get(key) for key in keep}})
    return grouped


def _field_array(raw, field, ann: dict) -> np.ndarray:
    """``raw`` as a ``field.shape`` array if it is a flat list of that many finite numbers, else DatasetError."""
    try:
        values = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        _raise_bad_field(raw, field, ann)
    if values.shape != (int(np.prod(field.shape)),) or not np.isfinite(values).all():
        _raise_bad_field(raw, field, ann)
    return values.reshape(field.shape)


def _raise_bad_field(raw, field, ann: dict) -> NoReturn:
    got = f"{len(raw)} values" if isinstance(raw, list) else f"a {type(raw).__name__}"
    raise DatasetError(f"annotation {ann.get('id')}: '{field.name}' has {got}; it needs "
                       f"{int(np.prod(field.shape))} finite numbers ({' x '.join(map(str, field.shape))})")


def _files_in(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries}
    except FileNotFoundError:
        raise DatasetError(f"image folder not found: {folder}") from None
    except NotADirectoryError:
        raise DatasetError(f"image folder is not a folder: {folder}") from None


def _exists(file_name: str, image_path: str, present: set[str]) -> bool:
    if "/" in file_name or os.sep in file_name:
        return os.path.isfile(image_path)
    return file_name in present


# ---------------------------------------------------------------- categories
def _normalize(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _name_keys(category: dict) -> set[str]:
    """Every spelling a category answers to (normalised): its name and its ``df2_name``."""
    names = {_normalize(category["name"])}
    if category.get("df2_name"):
        names.add(_normalize(category["df2_name"]))
    return names


def match_categories(categories: list[dict], wanted: list[str], aliases=None) -> list[int] | None:
    """File category id for each wanted name (in order), or None unless it is a one-to-one match.

    ``aliases``: {wanted name: [other spellings]} (the config's CLASS_ALIASES).
    """
    if len(categories) != len(wanted):
        return None
    aliases = {_normalize(k): {_normalize(a) for a in v} for k, v in (aliases or {}).items()}
    keys = [(c["id"], _name_keys(c)) for c in categories]
    match = []
    for name in wanted:
        spellings = {_normalize(name)} | aliases.get(_normalize(name), set())
        found = [cid for cid, names in keys if names & spellings]
        if len(found) != 1 or found[0] in match:
            return None
        match.append(found[0])
    return match


# ---------------------------------------------------------------- rasterising
def _has_shape(segmentation) -> bool:
    if isinstance(segmentation, dict):
        return "counts" in segmentation and "size" in segmentation
    if isinstance(segmentation, list):
        return any(_polygon_coords(p) for p in segmentation)
    return False


def _polygon_coords(polygon) -> list[float] | None:
    """A flat [x1, y1, x2, y2, ...] list with an even length >= 6, or None."""
    if not isinstance(polygon, (list, tuple)):
        return None
    count = len(polygon) - len(polygon) % 2
    if count < MIN_POLYGON_COORDS:
        return None
    return [float(v) for v in polygon[:count]]


def _to_rle(segmentation, target_hw: tuple[int, int], scale: tuple[float, float]) -> dict | None:
    """One annotation's mask at target_hw as a pycocotools RLE, or None if it has no shape.

    scale: (sy, sx) applied to polygon vertices; RLE masks of another size are resized instead.
    """
    height, width = target_hw
    if isinstance(segmentation, list):
        scale_xy = np.array([scale[1], scale[0]])  # polygons are (x, y) pairs
        polygons = []
        for polygon in segmentation:
            coords = _polygon_coords(polygon)
            if coords:
                polygons.append((np.reshape(coords, (-1, 2)) * scale_xy).ravel().tolist())
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation:
        rle_height, rle_width = segmentation["size"]
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, rle_height, rle_width)
        else:
            counts = segmentation["counts"]
            rle = {"size": [rle_height, rle_width], "counts": counts.encode() if isinstance(counts, str) else counts}
        if (rle_height, rle_width) == (height, width):
            return rle
        mask = mask_utils.decode([rle])  # [H, W, 1] uint8
        return mask_utils.encode(np.asfortranarray(resize_mask_nearest(mask, height, width)))[0]
    return None
