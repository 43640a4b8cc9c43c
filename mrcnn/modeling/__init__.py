"""Level 2: the trainable parts and the two graphs that wire them.

    backbones       ResNet bodies (from mrcnn.registry.BACKBONES) and the FPN, BatchNorm
    rpn             the Region Proposal Network and the proposal layer builder
    box_head        the classifier / box-regression head
    roi_heads       the RoiHead seam: per-ROI heads beside the box head (registry ROI_HEADS)
    mask_head       matterport's mask head, as the first RoiHead
    landmark_head   the optional landmark head ("landmarks"), DeepFashion2's 294 landmarks
    inference       the inference graph (matterport's outputs, then extra heads')
    training        the training graph (in-graph ROI targets; losses are computed in mrcnn.train)
    inspection      the tensors matterport's notebooks ask run_graph and ancestor for
    precision       float32 / bf16 / fp16 inference: the hardware check and the Keras policy of one build

May import: :mod:`mrcnn.ops`, :mod:`mrcnn.layers`, :mod:`mrcnn.registry`, Keras, TensorFlow.
Graph builders read settings from the config object they are given; they never import
``mrcnn.config``, the data pipeline, training or I/O.
"""
