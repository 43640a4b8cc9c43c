"""``ExportedModel``: a loaded export behind ``MaskRCNN.detect``'s interface.

    model = ExportedModel("exports/fashion")        # ExportError if the folder is no fseg export
    results = model.detect([image])                 # one dict per image, as MaskRCNN.detect

Code written for ``MaskRCNN.detect`` (``fseg predict``'s loop, matterport-style scripts) runs an
export unchanged. Each image goes through the export's ``detect_image`` signature:

    detect_image output                       -> detect() result key
    detection_boxes [1, N, 4] normalised      -> rois [N, (y1, x1, y2, x2)] int32 pixels (boxes x (H, W, H, W))
    detection_classes [1, N] int32            -> class_ids [N] int32
    detection_scores [1, N] float32           -> scores [N] float32
    detection_masks_image [1, N, H, W] uint8  -> masks [H, W, N] bool
    detection_keypoints [1, N, K, 2] (y, x)   -> landmarks [N, K, (x, y, score)] float32 pixels
      + detection_keypoint_scores [1, N, K]      (exports with the landmark head only)
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from mrcnn.export.saved_model import ExportError, check_export_dir, read_class_names, read_export_info
from mrcnn.export.serving import DETECT_IMAGE, PASTED_MASKS_KEY


class ExportedModel:
    """An export loaded with ``tf.saved_model.load``.

    Attributes:
      export_dir: the folder.
      class_names: [NUM_CLASSES] names, index = class id ("BG" first).
      info: the export's ``fseg_export.json`` ({} if absent).
      config: what callers of ``MaskRCNN`` read: BATCH_SIZE (1), DETECTION_MIN_CONFIDENCE, NAME, class_names().
    """

    def __init__(self, export_dir: str | os.PathLike):
        import tensorflow as tf

        self.export_dir = check_export_dir(export_dir)
        self.class_names = read_class_names(self.export_dir)
        self.info = read_export_info(self.export_dir)
        try:
            loaded = tf.saved_model.load(str(self.export_dir))
        except Exception as exc:  # noqa: BLE001  (TensorFlow raises many kinds for damaged folders)
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"{self.export_dir}: cannot load the SavedModel ({first_line})") from None
        if DETECT_IMAGE not in loaded.signatures:
            raise ExportError(f"{self.export_dir}: no {DETECT_IMAGE!r} signature; not written by `fseg export`")
        self._loaded = loaded  # keeps the variables alive
        self._detect_image = loaded.signatures[DETECT_IMAGE]
        names = list(self.class_names)
        self.config = SimpleNamespace(
            BATCH_SIZE=1, IMAGES_PER_GPU=1, NAME=self.info.get("config_name", ""),
            DETECTION_MIN_CONFIDENCE=float(self.info.get("detection_min_confidence", 0.0)),
            IMAGE_RESIZE_MODE=self.info.get("image_resize_mode", "square"), class_names=lambda: names)

    def detect(self, images, verbose: int = 0) -> list[dict]:
        """Detections of each [H, W, 3] uint8 RGB image (any sizes, any count): rois, class_ids, scores, masks."""
        import tensorflow as tf

        return [self._unpack(self._detect_image(image=tf.constant(np.asarray(image, np.uint8)[None])))
                for image in images]

    @staticmethod
    def _unpack(outputs) -> dict:
        height, width = (int(v) for v in outputs["image_shape"][0])
        size = np.array([height, width, height, width], np.float64)
        boxes = outputs["detection_boxes"][0].numpy().astype(np.float64)
        result = {
            "rois": np.round(boxes * size).astype(np.int32).reshape(-1, 4),
            "class_ids": outputs["detection_classes"][0].numpy().astype(np.int32),
            "scores": outputs["detection_scores"][0].numpy().astype(np.float32),
            "masks": np.moveaxis(outputs[PASTED_MASKS_KEY][0].numpy().astype(bool), 0, -1),
        }
        if "detection_keypoints" in outputs:
            yx = outputs["detection_keypoints"][0].numpy().astype(np.float64) * size[:2]  # [N, K, (y, x)] pixels
            scores = outputs["detection_keypoint_scores"][0].numpy()[..., None]
            result["landmarks"] = np.concatenate([yx[..., ::-1], scores], axis=-1).astype(np.float32)
        return result
