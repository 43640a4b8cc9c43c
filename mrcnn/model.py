"""``MaskRCNN``: matterport's public model API on TensorFlow 2 / Keras 3.

    model = MaskRCNN(mode="inference", config=config, model_dir="logs")
    model.load_weights("mask_rcnn_coco.h5", by_name=True, exclude=[...])
    results = model.detect([image])   # one dict per image: rois, class_ids, scores, masks

The graphs live in :mod:`mrcnn.modeling` (``inference``, ``training``, the ROI heads in
``roi_heads``); image molding in :mod:`mrcnn.ops.mold`; result unmolding in
:mod:`mrcnn.ops.unmold` and each head's ``unmold``; weights I/O in :mod:`mrcnn.io.weights`;
training in :mod:`mrcnn.train`.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config_rules import validate
from mrcnn.io import weights
from mrcnn.io.imagenet import imagenet_weights_path
from mrcnn.io.weights_inspect import inspect_weights
from mrcnn.model_functions import (build_detection_targets, build_rpn_targets, compose_image_meta,  # noqa: F401
                                   compute_backbone_shapes, data_generator, generate_random_rois, load_image_gt,
                                   log, mold_image, parse_image_meta, parse_image_meta_graph, unmold_image)
from mrcnn.modeling.box_head import CLASS_SPECIFIC_LAYERS
from mrcnn.modeling.inference import build_inference_model, output_names
from mrcnn.modeling.inspection import find_ancestor, matterport_view
from mrcnn.modeling.mask_head import MaskHead
from mrcnn.modeling.precision import building_with, check_precision
from mrcnn.modeling.roi_heads import build_roi_heads, class_specific_layers
from mrcnn.ops.mold import mold_images
from mrcnn.ops.anchors import get_anchors, get_pixel_anchors
from mrcnn.ops.unmold import unmold_boxes, unmold_detections
from mrcnn.train import checkpoints, layer_groups
from mrcnn.train.losses import loss_table
from mrcnn.train.stage import run_training
from mrcnn.train.step import TrainingModel, make_optimizer

_logger = logging.getLogger(__name__)

# matterport's standard exclude list: the layers whose shapes depend on NUM_CLASSES (box and mask heads).
# ``MaskRCNN.class_specific_layers()`` adds those of extra ROI heads.
HEAD_LAYERS_BY_CLASS = [*CLASS_SPECIFIC_LAYERS, *MaskHead.class_specific_layers]


class MaskRCNN:
    """Mask R-CNN with matterport's interface.

    Attributes:
        mode: "inference" or "training".
        config: the ``mrcnn.config.Config`` the model was built from.
        model_dir: folder of training logs and checkpoints.
        keras_model: the underlying ``keras.Model``.
    """

    def __init__(self, mode: str, config, model_dir: str | os.PathLike = "logs", strategy=None,
                 precision: str | None = None):
        """``strategy``: an optional ``tf.distribute.Strategy`` to build and train under
        (MirroredStrategy for several GPUs, MultiWorkerMirroredStrategy for several machines).
        ``precision``: "float32", "bf16" or "fp16" for an inference model (see
        ``mrcnn.modeling.precision``; refused with ``PrecisionError`` where the hardware has no
        native support); None keeps Keras' global dtype policy, as matterport did."""
        if mode not in ("inference", "training"):
            raise ValueError(f"mode must be 'inference' or 'training', got {mode!r}")
        if precision is not None:
            if mode != "inference":
                raise ValueError("precision= is for inference models; for mixed-precision training set Keras' global "
                                 "dtype policy before building (keras.mixed_precision.set_global_policy)")
            check_precision(precision)
        validate(config, type(config).__name__)  # a Config subclass, as matterport users write them: checked here
        self.precision = precision
        self.mode = mode
        self.config = config
        self.roi_heads = build_roi_heads(config)
        self.model_dir = str(model_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.epoch = 0
        self.log_dir: str | None = None
        self.checkpoint_path: str | None = None
        self.set_log_dir()
        with self.strategy.scope(), (building_with(precision) if precision else contextlib.nullcontext()):
            self.keras_model = self.build(mode, config)
        # No AutoGraph: the layers are graph code already (no Python control flow on tensors), and
        # converting their map_fn bodies cost about 1 s of every process's first detect().
        self._infer = tf.function(self._infer_graph, jit_compile=False, reduce_retracing=True, autograph=False)

    # ------------------------------------------------------------------ build
    def build(self, mode: str, config):
        """Builds the Keras model of ``mode`` (see mrcnn.modeling.inference and mrcnn.modeling.training)."""
        if mode == "training":
            from mrcnn.modeling.training import build_training_model
            from mrcnn.train.losses import loss_table

            loss_table(config, self.roi_heads)  # a LOSS_WEIGHTS key of no loss fails now, not after the build
            return build_training_model(config, self.roi_heads)
        return build_inference_model(config, self.roi_heads)

    def class_specific_layers(self) -> list[str]:
        """Layers whose shapes depend on NUM_CLASSES (box head, mask head, extra heads): exclude them to
        load a file with another class count."""
        return class_specific_layers(self.roi_heads)

    def _infer_graph(self, molded_images, image_metas, anchors):
        return self.keras_model([molded_images, image_metas, anchors], training=False)

    # ---------------------------------------------------------------- weights
    def load_weights(self, filepath, by_name: bool = False, exclude=None):
        """Loads matterport-layout ``.h5`` weights; returns a ``mrcnn.io.weights.LoadReport``.

        Weights are always matched by layer name: matterport's by-order loading
        (``by_name=False``) silently breaks between training and inference saves,
        whose layer orders differ, while by-name loading is right for both. The
        argument is kept so matterport scripts run unchanged. ``exclude`` lists
        layer names to leave untouched (e.g. ``HEAD_LAYERS_BY_CLASS`` to load COCO
        weights into a model with another NUM_CLASSES).
        """
        del by_name  # always by name, see above
        try:
            report = weights.load_weights(self.keras_model, filepath, exclude=list(exclude or []), by_name=True)
        except weights.WeightsShapeError as exc:
            raise weights.WeightsShapeError(f"{filepath}: {exc}. {self._shape_advice(filepath, exc)}",
                                            exc.layers, exc.file_classes) from None
        self.set_log_dir(filepath)
        return report

    def _shape_advice(self, filepath, error) -> str:
        """How to fix a shape mismatch: another backbone, another class count, or another model."""
        backbone = inspect_weights(filepath).backbone
        if backbone != self.config.BACKBONE and not backbone.startswith("unknown"):
            return f"The file holds a {backbone} model; set BACKBONE = \"{backbone}\" in the config"
        if error.file_classes is not None and error.file_classes != self.config.NUM_CLASSES:
            return (f"The file has {error.file_classes} classes and the config {self.config.NUM_CLASSES}: set "
                    f"NUM_CLASSES = {error.file_classes}, or exclude the class-specific layers "
                    f"(exclude={self.class_specific_layers()})")
        return "The file was saved from a model with other layer sizes (compare the config with the one it was trained with)"

    def save_weights(self, filepath) -> None:
        """Writes the weights in matterport's legacy Keras-2 ``.h5`` layout."""
        weights.save_weights(self.keras_model, filepath)

    def find_last(self) -> str:
        """Path of the newest checkpoint of this config under ``model_dir``."""
        path = checkpoints.find_last(self.model_dir, self.config.NAME)
        if path is None:
            raise FileNotFoundError(f"no checkpoint of {self.config.NAME!r} under {self.model_dir}")
        return str(path)

    def set_log_dir(self, model_path=None) -> None:
        """Sets ``log_dir``, ``epoch`` and ``checkpoint_path``; continues a run when
        ``model_path`` is one of its checkpoints (matterport's naming).

        The epochs count on from a checkpoint's epoch. Training goes on in the checkpoint's own
        folder only when that is a run under ``model_dir`` and the checkpoint is its newest: a run's
        later checkpoints are never overwritten, and a run in another logs folder is left alone (a
        new run starts under ``model_dir``). A new run's folder is only named here (to the second);
        training claims it with :meth:`claim_log_dir`, which picks another name if a run already uses it.
        """
        self.epoch = 0
        self._run_start = datetime.datetime.now()
        name = checkpoints.run_name(self.config)
        parsed = checkpoints.parse_checkpoint(model_path, name) if model_path else None
        if parsed is not None:
            self.epoch = parsed.epoch
        if parsed is not None and self._continues(parsed, name):
            self.log_dir = str(parsed.log_dir)
            self._log_dir_claimed = True  # resuming: the run's own folder
        else:
            self.log_dir = str(Path(self.model_dir) / checkpoints.log_dir_name(name, self._run_start))
            self._log_dir_claimed = False
        self.checkpoint_path = checkpoints.checkpoint_path_template(self.log_dir, name)

    def _continues(self, parsed, name: str) -> bool:
        """True when training from checkpoint ``parsed`` goes on in its run's folder (see :meth:`set_log_dir`)."""
        if Path(parsed.log_dir).resolve().parent != Path(self.model_dir).resolve():
            return False
        newest = checkpoints.newest_checkpoint_in(parsed.log_dir, name)
        return newest is None or checkpoints.parse_checkpoint(newest, name).epoch <= parsed.epoch

    @property
    def log_dir_claimed(self) -> bool:
        """True once ``log_dir`` is this run's own (a resumed run's folder, or one :meth:`claim_log_dir` made)."""
        return self._log_dir_claimed

    def claim_log_dir(self) -> Path:
        """Create this run's folder (once); a new run never shares a folder with another run."""
        if not self._log_dir_claimed:
            name = checkpoints.run_name(self.config)
            self.log_dir = str(checkpoints.create_run_dir(self.model_dir, name, self._run_start))
            self.checkpoint_path = checkpoints.checkpoint_path_template(self.log_dir, name)
            self._log_dir_claimed = True
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.log_dir)

    def checkpoint_for_epoch(self, epoch: int) -> Path:
        """Path of the weights written after ``epoch`` epochs of this run."""
        return Path(self.log_dir) / checkpoints.checkpoint_file_name(checkpoints.run_name(self.config), epoch)

    # --------------------------------------------------------------- training
    def train(self, train_dataset, val_dataset, learning_rate: float, epochs: int, layers: str,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None, **pipeline_options):
        """Trains the layers of group ``layers`` until epoch ``epochs`` (matterport's API).

        Args:
            train_dataset, val_dataset: ``mrcnn.data.Dataset`` objects (``prepare()``d);
                val_dataset may be None.
            learning_rate: SGD learning rate of this stage.
            epochs: the epoch number to stop at (counting epochs of earlier stages,
                as matterport does: a second stage continues from ``self.epoch``).
            layers: "heads", "3+", "4+", "5+", "all", or a regex over layer names.
            augmentation: None (matterport's default: none), an imgaug-style augmenter (matterport's:
                ``to_deterministic()`` + ``augment_image()``), or fseg's built-in ``mrcnn.data.Augmentation``
                (``True`` = its defaults); see mrcnn.data.augmentation.
            custom_callbacks: extra ``keras.callbacks.Callback`` objects.
            no_augmentation_sources: dataset sources whose images are never augmented.
            pipeline_options: ``seed``, ``shuffle``, ``verbose`` (ours; see mrcnn.data.pipeline).
        Returns:
            the Keras ``History`` of this stage.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model built in training mode")
        return run_training(self, train_dataset, val_dataset, learning_rate, epochs, layers,
                            augmentation=augmentation, custom_callbacks=custom_callbacks,
                            no_augmentation_sources=no_augmentation_sources, **pipeline_options)

    # -------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """Resizes, pads and mean-subtracts images for the network (:func:`mrcnn.ops.mold.mold_images`).

        Args:
            images: list of [H, W, 3] RGB arrays (any size).
        Returns:
            molded_images [B, S, S, 3] float32, image_metas [B, 12 + C] float32,
            windows [B, (y1, x1, y2, x2)] int pixels of each image inside its molded image.
        """
        c = self.config
        return mold_images(images, mode=c.IMAGE_RESIZE_MODE, min_dim=c.IMAGE_MIN_DIM, max_dim=c.IMAGE_MAX_DIM,
                           min_scale=c.IMAGE_MIN_SCALE, mean_pixel=c.MEAN_PIXEL, num_classes=c.NUM_CLASSES)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """Network output of one image -> (rois, class_ids, scores, masks) in original-image pixels (matterport's)."""
        return unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window)

    def get_anchors(self, image_shape) -> np.ndarray:
        """Anchors [A, (y1, x1, y2, x2)] normalised to a molded image of ``image_shape``.

        As matterport's, it keeps the same anchors in pixels of the molded image as ``self.anchors``
        (its notebooks draw them and build RPN targets from them).
        """
        c = self.config
        settings = (tuple(image_shape[:2]), c.RPN_ANCHOR_SCALES, c.RPN_ANCHOR_RATIOS, c.BACKBONE_STRIDES,
                    c.RPN_ANCHOR_STRIDE)
        self.anchors = get_pixel_anchors(*settings)
        return get_anchors(*settings)

    def run_network(self, molded_images, image_metas) -> dict:
        """Runs the Keras model on molded inputs; returns its outputs as NumPy arrays keyed by name
        (``mrcnn.modeling.inference.output_names``: detections, mrcnn_class, ..., then extra heads')."""
        anchors = self.get_anchors(molded_images.shape[1:3])
        anchors = np.broadcast_to(anchors, (molded_images.shape[0],) + anchors.shape)
        outputs = self._infer(tf.constant(molded_images), tf.constant(image_metas), tf.constant(anchors))
        return dict(zip(output_names(self.roi_heads), (np.asarray(o) for o in outputs)))

    def detect(self, images, verbose: int = 0):
        """Detects instances in ``images`` (a list of BATCH_SIZE RGB arrays).

        Returns one dict per image:
            rois      int32 [N, (y1, x1, y2, x2)] pixels of the original image, y2/x2 exclusive
            class_ids int32 [N] in 1..NUM_CLASSES-1
            scores    float32 [N]
            masks     bool [H, W, N]
            and one key per extra ROI head (its ``result_key``), matterport callers can ignore.
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model built in inference mode")
        if len(images) != self.config.BATCH_SIZE:
            raise ValueError(f"detect() takes BATCH_SIZE={self.config.BATCH_SIZE} images, got {len(images)}")
        molded_images, image_metas, windows = self.mold_inputs(images)
        if verbose:  # matterport's printout, to stdout as its notebooks expect
            print(f"Processing {len(images)} images")
            for image in images:
                log("image", image)
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", self.get_anchors(molded_images.shape[1:3]))
        outputs = self.run_network(molded_images, image_metas)
        return [self._unmold(outputs, i, image.shape, molded_images[i].shape, windows[i])
                for i, image in enumerate(images)]

    def detect_molded(self, molded_images, image_metas, verbose: int = 0):
        """detect() on images already molded (resized, padded, mean-subtracted), as matterport's.

        Args:
            molded_images: [BATCH_SIZE, S, S, 3] float32. image_metas: [BATCH_SIZE, 12 + C] (their
                original shapes and windows say where each image lies).
        Returns: one dict per image, as detect().
        """
        if self.mode != "inference":
            raise ValueError("detect_molded() needs a model built in inference mode")
        if len(molded_images) != self.config.BATCH_SIZE:
            raise ValueError(f"detect_molded() takes BATCH_SIZE={self.config.BATCH_SIZE} images, "
                             f"got {len(molded_images)}")
        molded_images = np.asarray(molded_images, np.float32)
        outputs = self.run_network(molded_images, np.asarray(image_metas, np.float32))
        metas = parse_image_meta(np.asarray(image_metas))
        return [self._unmold(outputs, i, metas["original_image_shape"][i], molded_images[i].shape,
                             metas["window"][i]) for i in range(len(molded_images))]

    def _unmold(self, outputs, i, original_shape, molded_shape, window) -> dict:
        """Image ``i``'s result dict from the network outputs: boxes, classes, scores, each head's result."""
        rows, rois, class_ids, scores = unmold_boxes(outputs["detections"][i], original_shape, molded_shape, window)
        result = {"rois": rois, "class_ids": class_ids, "scores": scores}
        for head in self.roi_heads:
            result[head.result_key] = head.unmold(outputs[head.output_name][i][rows], class_ids, rois, original_shape)
        return result

    # ------------------------------------------------------ matterport's tools
    def run_graph(self, images, outputs, image_metas=None) -> OrderedDict:
        """Values of intermediate tensors for ``images`` (matterport's inspection helper).

        Args:
            images: BATCH_SIZE RGB images. outputs: [(name, Keras tensor of ``keras_model``)], e.g.
                ``[("proposals", model.keras_model.get_layer("ROI").output)]``.
            image_metas: optional [B, 12 + C], to override the ones molding gives.
        Returns: OrderedDict {name: NumPy array}, in the order asked.
        """
        if self.mode != "inference":
            raise ValueError("run_graph() runs an inference-mode model")
        probe = keras.Model(self.keras_model.inputs, [matterport_view(self.keras_model, tensor) for _, tensor in outputs])
        molded_images, metas, _ = self.mold_inputs(images)
        metas = metas if image_metas is None else np.asarray(image_metas, np.float32)
        anchors = self.get_anchors(molded_images.shape[1:3])
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        values = probe([molded_images, metas, anchors], training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        return OrderedDict((name, np.asarray(value)) for (name, _), value in zip(outputs, values))

    def ancestor(self, tensor, name, checked=None):
        """The tensor of layer ``name`` among ``tensor``'s inputs, or None (matterport's; see
        :func:`mrcnn.modeling.inspection.find_ancestor`: layer names, not TF op names)."""
        return find_ancestor(tensor, name, checked)

    def get_imagenet_weights(self) -> str:
        """Path of ImageNet weights for the backbone under matterport's layer names (downloaded and converted
        on first use into the Keras cache; see mrcnn.io.imagenet). Load it with ``load_weights(path, by_name=True)``."""
        return str(imagenet_weights_path(self.config.BACKBONE))

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1) -> list[str]:
        """Train the layers whose name matches ``layer_regex`` (or a group: heads, 3+, 4+, 5+, all), freeze the rest.

        Returns the names of the trainable layers (printed when ``verbose``, matterport-style).
        """
        regex = layer_groups.layer_regex(layer_regex, self.roi_heads)
        trainable = layer_groups.set_trainable(keras_model or self.keras_model, regex)
        if verbose:
            for name in trainable:
                print(f"{' ' * indent}{name:20}")
        return trainable

    def compile(self, learning_rate, momentum=None) -> TrainingModel:
        """The training model wrapped with its loss table and compiled with the config's OPTIMIZER
        (``self.training_model``; ``momentum`` is SGD's, default LEARNING_MOMENTUM).

        matterport compiled its Keras model in place; here the losses live in a ``train_step``, so the
        compiled object is a ``mrcnn.train.step.TrainingModel`` around ``keras_model`` (``fit`` it with
        batches of ``mrcnn.data.build_training_dataset``). ``train()`` does all of this itself.
        """
        if self.mode != "training":
            raise ValueError("compile() needs a model built in training mode")
        with self.strategy.scope():
            self.training_model = TrainingModel(self.keras_model, self.config,
                                                loss_table(self.config, self.roi_heads))
            self.training_model.compile(optimizer=make_optimizer(self.config, learning_rate, momentum),
                                        jit_compile=False)
        return self.training_model

    def find_trainable_layer(self, layer):
        """The layer that holds the weights of ``layer`` (a TimeDistributed wrapper's inner layer)."""
        if isinstance(layer, keras.layers.TimeDistributed):
            return self.find_trainable_layer(layer.layer)
        return layer

    def get_trainable_layers(self) -> list:
        """The top-level layers that have weights (nested models, such as rpn_model, count as one)."""
        return [layer for layer in map(self.find_trainable_layer, self.keras_model.layers) if layer.weights]
