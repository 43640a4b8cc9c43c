"""matterport's Mask R-CNN re-implemented on TensorFlow 2 / Keras 3, in visible levels.

matterport's module paths are kept at the top: ``mrcnn.model`` (``MaskRCNN``),
``mrcnn.config`` (``Config``), ``mrcnn.utils``, ``mrcnn.visualize``. Below them, each subpackage is
one level and imports only from the levels before it (``tests/test_architecture.py``
checks this):

    ops/        0  pure NumPy / TensorFlow functions: boxes, anchors, image_meta, resizing, masks,
                   targets, losses (no Keras, no config)
    registry    0  the backbone and ROI-head tables, by name (standard library)
    io/         0  files: atomic writes, images, matterport's .h5 weights, overlays (no TF at import)
    config      1  Config: matterport's settings, validation (config_rules), TOML in and out
    layers/     1  Keras layers wrapping ops: proposals, ROI Align, detection, ROI targets, glue, landmarks
    modeling/   2  trainable parts (backbones, RPN, box head, ROI heads) and the two graphs
    data/       2  Dataset API, COCO reader, tf.data pipeline, augmentation
    eval/       2  COCO AP, matterport's mAP, COCO results records (NumPy + pycocotools)
    train/      3  layer groups, loss table, train step, callbacks, stages and schedules, checkpoints
    model       4  MaskRCNN and matterport's module functions (model_functions), over all of the above
    utils       4  matterport's utils: box, mask and AP helpers, Dataset
    visualize   4  matterport's matplotlib display functions (OpenCV's drawing re-exported for notebooks)

Importing ``mrcnn`` is cheap; TensorFlow loads when a model module is imported
(``from mrcnn.model import MaskRCNN``). See docs/ARCHITECTURE.md.
"""
