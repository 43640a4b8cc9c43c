"""Level 0: pure functions of NumPy arrays or TensorFlow tensors: no Keras, no config, no files.

    boxes, box_frames   box math and the pixel/normalized frames (the conventions every box follows)
    anchors             anchors over the FPN levels
    image_meta          the image_meta vector: its layout, built and parsed
    resize, masks       resizing and molding images, masks and mini masks, mask thresholds
    mold                photos -> network inputs (resize, mean pixel, image_meta; the network's checks)
    unmold              network outputs -> detections in the original image
    sampling            matching and sampling shared by the targets
    rpn_targets         RPN anchor targets (run in the input pipeline)
    roi_targets         second-stage targets: ROI sampling, box deltas, each head's targets
    losses              the losses, as functions of tensors
    instance_fields     per-instance ground truth of extra heads, and how points follow the image
    keypoint_targets    landmark heatmaps: targets per ROI, peaks, ROI units <-> image points

Where a rule must exist in NumPy (data I/O, matterport's API) and in TensorFlow (inside a
graph), both live side by side in one module, the TensorFlow twin named ``*_graph``, and a
test keeps them equal. Modules whose public API is NumPy import TensorFlow only inside their
``*_graph`` functions, so ``anchors``, ``box_frames``, ``image_meta``, ``masks``, ``mold``,
``resize`` and ``unmold`` load without it.

May import: NumPy, SciPy, scikit-image, TensorFlow, and other ``mrcnn.ops`` modules. Nothing else.
"""
