"""Build one COCO annotation (a dict) from one validated DeepFashion2 item.

Input: a :class:`df2coco.reader.Item` and the image size. Output: the COCO
fields (without ``id``, which the converter assigns in split order) plus any
OUT_OF_IMAGE / NO_POLYGON problem. Coordinates outside the image rectangle
``[0, width] x [0, height]`` are clipped: polygons are intersected with it,
the box corners and labeled landmarks are clamped to it. Coordinates at most
``NOISE_PX`` (1 px) outside are annotation noise (real DeepFashion2 files have
polygon vertices down to -0.78 px): they are clipped the same way but not
reported as a problem, only counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from df2coco import geometry as G
from df2coco import problems as P
from df2coco import report as R
from df2coco.categories import CATEGORY_BY_ID, NUM_LANDMARKS
from df2coco.reader import Item
from df2coco.report import Problem

AREA_MODES = ("mask", "bbox")  # "mask": union of the polygons; "bbox": w * h (official converter)


@dataclass(frozen=True)
class AnnotationOptions:
    """How annotations are written.

    Attributes:
      area_mode: ``"mask"`` (area = pixels in the union of the polygons) or
        ``"bbox"`` (area = bbox width x height, the official converter's value).
      keypoints: write ``keypoints`` (294 x 3) and ``num_keypoints`` (False: landmarks
        are neither checked nor written).
      verify_images: decode every image fully (slow), so that a truncated or corrupt
        file is an ``unreadable_image`` problem; otherwise only its header is read.
    """

    area_mode: str = "mask"
    keypoints: bool = True
    verify_images: bool = False


NOISE_PX = 1.0  # coordinates at most this far outside the image are annotation noise, not a problem


@dataclass
class _Clipping:
    """What clipping an item to the image changed.

    Attributes:
      parts: what was clipped, e.g. ``["2 polygon(s)", "bbox"]``.
      overshoot: the farthest any clipped coordinate lay outside the image, pixels.
      lost_polygons: polygons that lay entirely outside and were dropped.
    """

    parts: list[str] = field(default_factory=list)
    overshoot: float = 0
    lost_polygons: int = 0

    def add(self, part: str, overshoot: float) -> None:
        self.parts.append(part)
        self.overshoot = max(self.overshoot, overshoot)

    @property
    def is_noise(self) -> bool:
        """Only coordinates within ``NOISE_PX`` of the image were clipped, and no polygon was lost."""
        return self.overshoot <= NOISE_PX and not self.lost_polygons


def build_annotation(item: Item, image_id: int, pair_id: int | None, width: int, height: int,
                     options: AnnotationOptions, file: str) -> tuple[dict | None, list[Problem], bool]:
    """COCO annotation for one item, or None if nothing of it lies inside the image.

    Args:
      item: a validated item (category known, at least one polygon).
      image_id: the image's id (the file number).
      pair_id: the image-level pair_id (copied onto the annotation, as the official converter does).
      width, height: image size in pixels.
      options: area mode and keypoints switch.
      file: the annotation file path, for problem records.
    Returns:
      ``(annotation, problems, clipped_noise)``. Keys of the annotation in order:
      image_id, category_id, bbox ``[x, y, w, h]`` (pixels), area (pixels), iscrowd,
      segmentation (list of flat polygons), keypoints + num_keypoints (if enabled),
      style, pair_id, scale, occlusion, zoom_in, viewpoint. ``clipped_noise`` is
      True when coordinates were clipped that lay at most ``NOISE_PX`` outside the
      image: that is annotation noise, repaired silently (not an OUT_OF_IMAGE problem).
    """
    clipping = _Clipping()
    polygons = _clip_polygons(item.polygons, width, height, clipping)
    if not polygons:
        detail = f"all polygons lie outside the {width}x{height} image"
        return None, [Problem(file, item.key, P.OUT_OF_IMAGE, R.SKIPPED_ITEM, detail)], False
    box = item.bounding_box if item.bounding_box is not None else G.polygons_extent(item.polygons)
    if G.box_outside(box, width, height):
        clipping.add("bbox", max(G.overshoot(box[0::2], width), G.overshoot(box[1::2], height)))
        box = G.clip_box(box, width, height)
    x1, y1, x2, y2 = box
    bbox = [x1, y1, x2 - x1, y2 - y1]
    if options.area_mode == "mask":
        area = G.union_area(polygons, width, height)
    else:
        area = bbox[2] * bbox[3]
    ann = {"image_id": image_id, "category_id": item.category_id, "bbox": bbox, "area": area,
           "iscrowd": 0, "segmentation": polygons}
    if options.keypoints:
        landmarks = _clip_landmarks(item.landmarks, width, height, clipping)
        ann["keypoints"], ann["num_keypoints"] = _keypoints(item.category_id, landmarks)
    attrs = item.attributes
    ann.update(style=attrs["style"], pair_id=pair_id, scale=attrs["scale"], occlusion=attrs["occlusion"],
               zoom_in=attrs["zoom_in"], viewpoint=attrs["viewpoint"])
    if not clipping.parts:
        return ann, [], False
    if clipping.is_noise:
        return ann, [], True
    lost = f" ({clipping.lost_polygons} entirely outside, dropped)" if clipping.lost_polygons else ""
    detail = (f"{', '.join(clipping.parts)}{lost} outside the {width}x{height} image "
              f"by up to {clipping.overshoot:.4g} px")
    return ann, [Problem(file, item.key, P.OUT_OF_IMAGE, R.CLIPPED, detail)], False


def _clip_polygons(polygons: list[list], width: int, height: int, clipping: _Clipping) -> list[list]:
    """Polygons intersected with the image; polygons entirely outside are dropped."""
    out, n_clipped, reach = [], 0, 0
    for poly in polygons:
        if G.polygon_outside(poly, width, height):
            n_clipped += 1
            reach = max(reach, G.overshoot(poly[0::2], width), G.overshoot(poly[1::2], height))
            poly = G.clip_polygon(poly, width, height)
            if not poly:
                clipping.lost_polygons += 1
                continue
        out.append(poly)
    if n_clipped:
        clipping.add(f"{n_clipped} polygon(s)", reach)
    return out


def _clip_landmarks(landmarks: list | None, width: int, height: int, clipping: _Clipping) -> list | None:
    """Landmarks with every point outside the image rectangle clamped onto its border (types kept)."""
    if landmarks is None:
        return None
    xs, ys = landmarks[0::3], landmarks[1::3]
    if min(xs) >= 0 and min(ys) >= 0 and max(xs) <= width and max(ys) <= height:
        return landmarks
    out, n_clipped = list(landmarks), 0
    for i in range(0, len(out), 3):
        x, y = out[i], out[i + 1]
        if 0 <= x <= width and 0 <= y <= height:
            continue
        n_clipped += 1
        out[i], out[i + 1] = G.clamp(x, 0, width), G.clamp(y, 0, height)
    clipping.add(f"{n_clipped} landmark(s)", max(G.overshoot(xs, width), G.overshoot(ys, height)))
    return out


def _keypoints(category_id: int, landmarks: list | None) -> tuple[list, int]:
    """The 294 x 3 COCO keypoint list with the category's slice filled, and num_keypoints.

    Returns:
      ``(keypoints, num_keypoints)``: keypoints is a flat list of 882 numbers
      ``[x, y, v, ...]`` (0 outside the category's slice and for unlabeled points);
      num_keypoints counts the points with v > 0 (visible or occluded).
    """
    keypoints = [0] * (3 * NUM_LANDMARKS)
    if landmarks is None:
        return keypoints, 0
    start = 3 * CATEGORY_BY_ID[category_id].landmark_start
    keypoints[start:start + len(landmarks)] = landmarks
    return keypoints, sum(1 for v in landmarks[2::3] if v > 0)
