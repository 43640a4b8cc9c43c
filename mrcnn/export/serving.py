"""The exported graph: ``MaskRCNN.detect`` as TensorFlow functions of one image, and the two signatures.

Per image, in ``detect``'s order and with its numbers (each step is the TensorFlow twin of the
NumPy step ``detect`` runs, kept equal by ``tests/test_export_twins.py``):

    decode       bytes -> [H, W, 3] uint8 RGB                     mrcnn.export.decode (serving_default only)
    resize, pad  by the config's IMAGE_RESIZE_MODE                mrcnn.ops.resize.resize_image_graph
    mold         minus MEAN_PIXEL                                 mrcnn.ops.resize.mold_image_graph
    image_meta   original / molded shape, window, scale           mrcnn.ops.image_meta.compose_image_meta_graph
    anchors      for the molded shape                             mrcnn.ops.anchors.get_anchors_graph
    network      MaskRCNN.keras_model (inference mode)            mrcnn.modeling.inference
    unmold       boxes -> original pixels, zero-area rows dropped mrcnn.ops.unmold.unmold_boxes_graph
    heads        each ROI head's rows of the kept detections      RoiHead.export_outputs (unmold's TF twin)
    masks        pasted into the image                            mrcnn.ops.masks.paste_masks_graph (detect_image)

Signatures (``SIGNATURES``; N = the export's DETECTION_MAX_INSTANCES):

    serving_default(images: [B] string, encoded JPEG/PNG of any sizes), one image at a time:
        num_detections    [B] int32           valid rows of each image; the rest are zero padding
        detection_boxes   [B, N, 4] float32   (y1, x1, y2, x2) / (H, W, H, W) of the original image;
                                              times (H, W, H, W) and rounded = detect()'s rois
        detection_classes [B, N] int32        class ids (1..NUM_CLASSES-1, index into the class names)
        detection_scores  [B, N] float32
        detection_masks   [B, N, 28, 28] float32 box-relative mask probabilities of the detected class
        image_shape       [B, 2] int32        (H, W) of each decoded image
    detect_image(image: [1, H, W, 3] uint8 RGB): the same keys for its one image, with N =
        num_detections (no padding), plus
        detection_masks_image [1, N, H, W] uint8  0/1 masks pasted into the image (detect()'s masks)

The per-detection outputs of the ROI heads come from each head's ``export_outputs`` (``detection_masks``
from the mask head). With the landmark head in ROI_HEADS both signatures also return (TF Object Detection
API's keypoint convention; K = NUM_LANDMARKS, zero outside each detection's category slice):
        detection_keypoints       [B, N, K, 2] float32  (y, x) / (H, W) of the original image
        detection_keypoint_scores [B, N, K] float32     3x3 probability mass at each heatmap's peak
    (detect()'s "landmarks" [N, K, (x, y, score)] in pixels, via mrcnn.ops.keypoint_targets.class_landmarks_graph).
An extra head without ``export_outputs`` is left out of exports.
"""
from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mrcnn.export.decode import decode_image_graph
from mrcnn.modeling.inference import output_names
from mrcnn.ops.anchors import get_anchors_graph
from mrcnn.ops.image_meta import compose_image_meta_graph
from mrcnn.ops.masks import paste_masks_graph
from mrcnn.ops.resize import mold_image_graph, resize_image_graph
from mrcnn.ops.unmold import unmold_boxes_graph

SERVING_DEFAULT, DETECT_IMAGE = "serving_default", "detect_image"
SIGNATURES = (SERVING_DEFAULT, DETECT_IMAGE)
BYTES_INPUT, IMAGE_INPUT = "images", "image"
OUTPUT_KEYS = ("num_detections", "detection_boxes", "detection_classes", "detection_scores", "detection_masks",
               "image_shape")  # every export's; the ROI heads add theirs (RoiHead.export_outputs)
PER_IMAGE_KEYS = ("num_detections", "image_shape")  # the others have one row per detection
MASKS_KEY, PASTED_MASKS_KEY = "detection_masks", "detection_masks_image"


@dataclass(frozen=True)
class GraphSettings:
    """The config values the exported graph needs (read once from the config, at the edge)."""

    min_dim: int
    max_dim: int
    min_scale: float
    resize_mode: str
    mean_pixel: tuple[float, ...]
    anchor_scales: tuple[float, ...]
    anchor_ratios: tuple[float, ...]
    backbone_strides: tuple[int, ...]
    anchor_stride: int
    num_classes: int
    max_detections: int

    @classmethod
    def from_config(cls, config) -> "GraphSettings":
        return cls(config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, config.IMAGE_RESIZE_MODE,
                   tuple(float(v) for v in np.asarray(config.MEAN_PIXEL)), tuple(config.RPN_ANCHOR_SCALES),
                   tuple(config.RPN_ANCHOR_RATIOS), tuple(int(s) for s in config.BACKBONE_STRIDES),
                   int(config.RPN_ANCHOR_STRIDE), int(config.NUM_CLASSES), int(config.DETECTION_MAX_INSTANCES))


def detect_one(network, settings: GraphSettings, image, names: tuple[str, ...], heads=()) -> dict:
    """``MaskRCNN.detect`` on one image, up to the pasting of the masks.

    Args:
      network: ``network(molded [1, h, w, 3], image_meta [1, META], anchors [1, A, 4])`` -> the inference
        ``keras.Model``'s outputs, named by ``names`` (``mrcnn.modeling.inference.output_names``).
      image: [H, W, 3] uint8 RGB.
      heads: the model's ROI heads (``RoiHead.export_outputs`` gives each one's outputs).
    Returns:
      dict: boxes [n, (y1, x1, y2, x2)] int32 pixels of the image, (y2, x2) exclusive;
      class_ids [n] int32; scores [n] float32; image_hw [2] int32; heads: {output key: [n, ...]} of
      every head (the mask head's ``detection_masks`` [n, mh, mw]: probabilities of each detection's class).
    """
    s = settings
    image_hw = tf.shape(image)[:2]
    resized, window, scale = resize_image_graph(image, s.min_dim, s.max_dim, s.min_scale, s.resize_mode)
    molded_hw = tf.shape(resized)[:2]
    meta = compose_image_meta_graph(0, tf.concat([image_hw, [3]], 0), tf.concat([molded_hw, [3]], 0), window,
                                    scale, tf.zeros([s.num_classes], tf.int32))
    anchors = get_anchors_graph(molded_hw, s.anchor_scales, s.anchor_ratios, s.backbone_strides, s.anchor_stride)
    outputs = network(mold_image_graph(resized, s.mean_pixel)[None], meta[None], anchors[None])
    detections = outputs[names.index("detections")][0]  # [D, 6]
    rows, boxes, class_ids, scores = unmold_boxes_graph(detections, image_hw, molded_hw, window)
    head_outputs = {}
    for head in heads:
        kept = tf.gather(outputs[names.index(head.output_name)][0], rows)  # [n, ...] of the kept detections
        head_outputs.update(head.export_outputs(kept, class_ids, boxes, image_hw))
    return {"boxes": boxes, "class_ids": class_ids, "scores": scores, "image_hw": image_hw, "heads": head_outputs}


def signature_outputs(found: dict) -> dict:
    """detect_one's result as the signatures' unbatched outputs (no padding)."""
    image_hw = found["image_hw"]
    size = tf.cast(tf.concat([image_hw, image_hw], 0), tf.float32)  # (H, W, H, W)
    return {
        "num_detections": tf.shape(found["class_ids"])[0],
        "detection_boxes": tf.cast(found["boxes"], tf.float32) / size,
        "detection_classes": found["class_ids"],
        "detection_scores": found["scores"],
        "image_shape": image_hw,
        **found["heads"],
    }


def pad_detections(outputs: dict, count: int) -> dict:
    """Per-detection outputs zero-padded to ``count`` rows (a batch needs one size)."""
    padded = dict(outputs)
    for key, value in outputs.items():
        if key not in PER_IMAGE_KEYS:
            gap = count - tf.shape(value)[0]
            padded[key] = tf.pad(value, [[0, gap]] + [[0, 0]] * (value.shape.rank - 1))
    return padded


def output_specs(heads, count: int) -> dict:
    """{key: TensorSpec} of one image's padded outputs (``count`` rows per detection output)."""
    spec = {"num_detections": tf.TensorSpec([], tf.int32), "detection_boxes": tf.TensorSpec([count, 4]),
            "detection_classes": tf.TensorSpec([count], tf.int32), "detection_scores": tf.TensorSpec([count]),
            "image_shape": tf.TensorSpec([2], tf.int32)}
    for head in heads:
        spec.update({key: tf.TensorSpec([count, *row.shape], row.dtype)
                     for key, row in head.export_output_specs().items()})
    return spec


class ServingModule(tf.Module):
    """What ``tf.saved_model.save`` writes: the model's variables, the class names and the two functions.

    The Keras model itself is not tracked (only its variables are, as Keras's own export does), so
    the SavedModel holds plain TensorFlow functions and variables, and loading it needs no Keras
    and no code of ours.
    """

    def __init__(self, model, class_names, class_names_file: str):
        """``model``: an inference-mode ``MaskRCNN`` with its weights loaded (DETECTION_MAX_INSTANCES and
        DETECTION_MIN_CONFIDENCE as the export should have them). ``class_names_file``: a text file of the
        class names, one per line, copied into the SavedModel's assets."""
        super().__init__(name="fseg_mask_rcnn")
        network = model.keras_model
        names = output_names(model.roi_heads)
        settings = GraphSettings.from_config(model.config)
        self.model_variables = [v.value for v in network.variables]  # tracked: saved with the functions
        self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string, name="class_names")
        self.class_names_file = tf.saved_model.Asset(class_names_file)
        count = settings.max_detections
        heads = tuple(model.roi_heads)

        # The network is one function, called by both signatures: its graph is stored (and loaded) once.
        run_network = tf.function(
            lambda image, meta, anchors: network([image, meta, anchors], training=False),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32),
                             tf.TensorSpec([1, model.config.IMAGE_META_SIZE], tf.float32),
                             tf.TensorSpec([1, None, 4], tf.float32)], autograph=False)

        def detect(image):
            return detect_one(run_network, settings, image, names, heads)

        def serve_one(encoded):
            return pad_detections(signature_outputs(detect(decode_image_graph(encoded))), count)

        def serve_bytes(images):
            # One image at a time (parallel_iterations=1): each image gets exactly what it gets alone,
            # in any resize mode, and memory stays that of one image.
            return tf.map_fn(serve_one, images, fn_output_signature=output_specs(heads, count),
                             parallel_iterations=1)

        def serve_image(image):
            found = detect(image[0])
            outputs = signature_outputs(found)
            pasted = paste_masks_graph(outputs[MASKS_KEY], found["boxes"], found["image_hw"])  # [n, H, W] bool
            outputs[PASTED_MASKS_KEY] = tf.cast(pasted, tf.uint8)
            return {key: value[None] for key, value in outputs.items()}  # batch of one

        # Held where tf.Module does not track them (a SimpleNamespace is not trackable): tf.saved_model.save
        # would trace tracked functions a second time and store every graph twice. The signatures reach them.
        self._untracked = types.SimpleNamespace(functions={
            SERVING_DEFAULT: tf.function(serve_bytes, autograph=False,
                                         input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)]),
            DETECT_IMAGE: tf.function(serve_image, autograph=False, input_signature=[
                tf.TensorSpec([1, None, None, 3], tf.uint8, name=IMAGE_INPUT)]),
        })

    def signatures(self) -> dict:
        """{name: concrete function} for ``tf.saved_model.save(..., signatures=...)`` (traced on the first call)."""
        return {name: function.get_concrete_function() for name, function in self._untracked.functions.items()}
