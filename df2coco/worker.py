"""Convert one image (its header and its annotation file) to serialized COCO records.

This is the per-image work that the converter runs in worker processes. It
returns JSON *strings* (encoded with the C encoder of :mod:`json`) so that the
parent process only has to concatenate them; annotation ids are not known here
and are added by the parent (see :func:`df2coco.writer.with_id`).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field

from df2coco import problems as P
from df2coco import report as R
from df2coco.annotation import AnnotationOptions, build_annotation
from df2coco.categories import CATEGORY_BY_ID
from df2coco.imagesize import ImageSizeError, read_image_size, verify_image
from df2coco.reader import read_annotation
from df2coco.report import Problem


@dataclass(frozen=True)
class ImageTask:
    """One image of the split to convert.

    Attributes:
      image_id: the file number (``000042.jpg`` -> 42).
      image_path: path of the image file, or None if there is none.
      anno_path: path of the annotation JSON, or None (test split, or file missing).
      expect_annos: True if the split has annotations (then a missing file is a problem).
    """

    image_id: int
    image_path: str | None
    anno_path: str | None
    expect_annos: bool


@dataclass
class ImageResult:
    """What one image contributes to the output.

    Attributes:
      image_json: the COCO ``images`` record as compact JSON, or None if the image is skipped.
      annotation_jsons: compact JSON of each annotation, in item-number order, without ``id``.
      problems: every problem found in this image's files.
      noise_clipped: items clipped for coordinates at most 1 px outside the image
        (annotation noise: repaired, counted, but not problems).
    """

    image_json: str | None
    annotation_jsons: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    noise_clipped: int = 0


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def encode_annotation(ann: dict) -> str:
    """Compact JSON of one annotation dict, with ``keypoints`` and ``num_keypoints`` moved last.

    The 882-value keypoint list is all zeros outside the category's slice; those
    runs of zeros are pasted in as cached text, and only the slice goes through
    the JSON encoder (this is most of the per-annotation encoding time otherwise).
    """
    if "keypoints" not in ann:
        return _DUMPS(ann)
    rest = {k: v for k, v in ann.items() if k not in ("keypoints", "num_keypoints")}
    category = CATEGORY_BY_ID[ann["category_id"]]
    start, stop = 3 * category.landmark_start, 3 * (category.landmark_start + category.num_landmarks)
    keypoints = ann["keypoints"]
    middle = _DUMPS(keypoints[start:stop])[1:-1]
    before, after = _zeros(start), _zeros(len(keypoints) - stop)
    text = ",".join(part for part in (before, middle, after) if part)
    return f'{_DUMPS(rest)[:-1]},"keypoints":[{text}],"num_keypoints":{ann["num_keypoints"]}}}'


@functools.lru_cache(maxsize=None)
def _zeros(count: int) -> str:
    return ",".join("0" * count)


def convert_image(task: ImageTask, options: AnnotationOptions) -> ImageResult:
    """Read one image's header and annotation file and build its COCO records."""
    if task.image_path is None:
        detail = "annotation file has no image file (.jpg, .jpeg or .png) with the same number"
        return ImageResult(None, problems=[Problem(task.anno_path, None, P.MISSING_IMAGE, R.SKIPPED_IMAGE, detail)])
    try:
        width, height = read_image_size(task.image_path)
        if options.verify_images:
            verify_image(task.image_path)
    except ImageSizeError as exc:
        problem = Problem(task.image_path, None, P.UNREADABLE_IMAGE, R.SKIPPED_IMAGE, str(exc)[:200])
        return ImageResult(None, problems=[problem])
    image = {"id": task.image_id, "file_name": os.path.basename(task.image_path), "width": width, "height": height}
    if not task.expect_annos:
        return ImageResult(_DUMPS(image))
    if task.anno_path is None:
        detail = "image has no annotation file with the same number"
        return ImageResult(None, problems=[Problem(task.image_path, None, P.UNREADABLE_FILE, R.SKIPPED_IMAGE, detail)])
    parsed, problems = read_annotation(task.anno_path, landmarks=options.keypoints)
    if parsed is None:
        return ImageResult(None, problems=problems)
    image["source"], image["pair_id"] = parsed.source, parsed.pair_id
    annotations, noise_clipped = [], 0
    for item in parsed.items:
        ann, item_problems, clipped_noise = build_annotation(item, task.image_id, parsed.pair_id, width, height,
                                                             options, task.anno_path)
        problems.extend(item_problems)
        noise_clipped += clipped_noise
        if ann is not None:
            annotations.append(encode_annotation(ann))
    return ImageResult(_DUMPS(image), annotations, problems, noise_clipped)


def convert_chunk(tasks: list[ImageTask], options: AnnotationOptions) -> list[ImageResult]:
    """:func:`convert_image` over a chunk of tasks (the unit of work sent to a worker process)."""
    return [convert_image(task, options) for task in tasks]

