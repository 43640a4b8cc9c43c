"""ROI heads: the per-ROI branches beside the box head (the mask head, and any head you add).

A head is one object that says everything it adds to the model, so adding one touches
one place: subclass :class:`RoiHead`, register it, and name it in the config::

    from mrcnn.registry import ROI_HEADS

    @ROI_HEADS.register("my_head")
    class MyHead(RoiHead):
        name, loss_name = "my_head", "my_head_loss"
        instance_fields = (InstanceField("my_value"),)
        ...

    class MyConfig(Config):
        ROI_HEADS = ["mask", "my_head"]

What the model does with each head named in ``config.ROI_HEADS``:

    data        the dataset's ``load_instance_fields`` gives the head's ``instance_fields``;
                the training model gets them as inputs ``input_gt_<field>`` [B, G, ...]
    targets     ``roi_targets(positive_rois, matched_gt, gt)`` for each image's positive ROIs
                (inside ``DetectionTargetLayer``); training output ``target_<name>`` [B, T, ...]
    training    ``build_training(...)`` -> training output ``<output_name>`` [B, T, ...]
    loss        ``loss(targets, predictions, target_class_ids)`` times LOSS_WEIGHTS[loss_name]
                (default 1.0), logged under ``loss_name``
    inference   ``build_inference(..., detection_class_ids)`` -> inference output ``<output_name>`` [B, D, ...]
    detect()    ``unmold(...)`` per image -> result key ``<result_key>``
    weights     layers listed in ``class_specific_layers`` are left out when loading a file of
                another class count
    layers      named layer groups ("heads", "4+", ...) train the layers matching ``layer_pattern``

The mask head (:mod:`mrcnn.modeling.mask_head`) is matterport's and always present.
"""
from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from mrcnn.modeling.box_head import CLASS_SPECIFIC_LAYERS
from mrcnn.ops.instance_fields import InstanceField
from mrcnn.registry import ROI_HEADS


class RoiHead:
    """Base class of the per-ROI heads; see the module docstring for how the model uses each part.

    Shapes: B images, T = TRAIN_ROIS_PER_IMAGE sampled ROIs (positives first), D =
    DETECTION_MAX_INSTANCES detections, ROIs and boxes (y1, x1, y2, x2) normalized to the molded image.
    """

    name: str = ""
    loss_name: str = ""
    output_name: str = ""  # defaults to ``name``
    result_key: str = ""  # defaults to ``name``
    instance_fields: tuple[InstanceField, ...] = ()
    class_specific_layers: tuple[str, ...] = ()
    layer_pattern: str = ""  # regex of the head's layer names; defaults to "<name>_.*"

    def __init__(self, config):
        if not self.name or not self.loss_name:
            raise TypeError(f"{type(self).__name__} must set the class attributes name and loss_name")
        self.config = config
        self.output_name = self.output_name or self.name
        self.result_key = self.result_key or self.name
        self.layer_pattern = self.layer_pattern or rf"{self.name}\_.*"

    # ------------------------------------------------------------ training
    def target_spec(self) -> tf.TensorSpec:
        """Shape and dtype of one ROI's target (e.g. ``TensorSpec([28, 28], tf.float32)``)."""
        raise NotImplementedError

    def roi_targets(self, positive_rois, matched_gt, gt: Mapping[str, tf.Tensor]):
        """Targets of one image's positive ROIs (pure TensorFlow, runs inside ``tf.map_fn``).

        Args:
          positive_rois: [P, (y1, x1, y2, x2)] float32, normalized.
          matched_gt: [P] int64, the ground-truth row each ROI matched.
          gt: the image's instances (crowds and padding removed): "class_ids" [I] int32,
            "boxes" [I, 4] normalized, "masks" [I, h, w] bool, and each instance field [I, ...].
        Returns:
          [P, *target_spec().shape] tensor of target_spec().dtype.
        """
        raise NotImplementedError

    def build_training(self, feature_maps, rois, image_meta, target_class_ids):
        """The head's layers on the sampled ROIs of the training graph.

        Args:
          feature_maps: [P2, P3, P4, P5] Keras tensors [B, h, w, TOP_DOWN_PYRAMID_SIZE].
          rois: [B, T, 4] Keras tensor. image_meta: [B, META] Keras tensor.
          target_class_ids: [B, T] int32 Keras tensor, > 0 for positive ROIs.
        Returns:
          Keras tensor [B, T, ...], the training output ``output_name``.
        """
        raise NotImplementedError

    def loss(self, targets, predictions, target_class_ids):
        """float32 scalar from ``target_<name>`` [B, T, ...], ``output_name`` [B, T, ...], [B, T] class ids.

        Must be 0.0 (and keep finite gradients) when there is no positive ROI.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ inference
    def build_inference(self, feature_maps, detection_boxes, image_meta, detection_class_ids):
        """The head's layers on the detections of the inference graph.

        Args:
          feature_maps: as in build_training. detection_boxes: [B, D, 4] Keras tensor, zero-padded.
          detection_class_ids: [B, D] int32 Keras tensor, the predicted class, 0 in padding rows. Most
            of the D rows are padding on real images: a head can run on the real rows only
            (``mrcnn.layers.glue.GatherPositiveRois`` / ``ScatterPositiveRois``, as the mask head does).
        Returns:
          Keras tensor [B, D, ...], the inference output ``output_name``.
        """
        raise NotImplementedError

    def unmold(self, predictions, class_ids, boxes, image_shape) -> Any:
        """One image's result for ``detect()``.

        Args:
          predictions: [n, ...] NumPy rows of the kept detections (``output_name`` of this image).
          class_ids: [n] int32. boxes: [n, (y1, x1, y2, x2)] int32 pixels of the original image.
          image_shape: (H, W, C) of the original image.
        """
        return predictions

    # ------------------------------------------------------------ export (mrcnn.export.serving)
    def export_outputs(self, predictions, class_ids, boxes, image_hw) -> dict:
        """:meth:`unmold` in TensorFlow, for exported models: this head's serving outputs of one image.

        Args:
          predictions: [n, ...] tensor, the ``output_name`` rows of the kept detections.
          class_ids: [n] int32. boxes: [n, (y1, x1, y2, x2)] int32 pixels of the image. image_hw: [2] int32.
        Returns:
          {output key: [n, ...] tensor}, one row per detection, as :meth:`export_output_specs` describes
          them (the signatures pad the rows to DETECTION_MAX_INSTANCES). The default, {}, leaves the head
          out of exported models.
        """
        return {}

    def export_output_specs(self) -> dict:
        """{output key: ``tf.TensorSpec`` of one detection's row} of :meth:`export_outputs`."""
        return {}


def build_roi_heads(config) -> list[RoiHead]:
    """The heads named in ``config.ROI_HEADS``, in order, built for ``config``."""
    return [ROI_HEADS.get(name)(config) for name in config.ROI_HEADS]


def instance_fields(heads) -> list[InstanceField]:
    """Every head's instance fields, in head order; a name used twice must have one spec."""
    fields: dict[str, InstanceField] = {}
    for head in heads:
        for field in head.instance_fields:
            if fields.setdefault(field.name, field) != field:
                raise ValueError(f"instance field {field.name!r} is declared differently by two heads")
    return list(fields.values())


def class_specific_layers(heads) -> list[str]:
    """Layer names of the box head and the ROI heads whose shapes depend on NUM_CLASSES."""
    return list(CLASS_SPECIFIC_LAYERS) + [name for head in heads for name in head.class_specific_layers]
