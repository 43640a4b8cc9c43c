"""Level 3: the trainable parts and the two graphs that wire them.

    backbones       ResNet bodies (from mrcnn.registry.BACKBONES) and the FPN, BatchNorm
    rpn             the Region Proposal Network and the proposal layer builder
    box_head        the classifier / box-regression head
    roi_heads       the RoiHead seam: per-ROI heads beside the box head (registry ROI_HEADS)
    mask_head       matterport's mask head, as the first RoiHead
    inference       the inference graph (matterport's outputs, then extra heads')
    training        the training graph (in-graph ROI targets; losses are computed in mrcnn.train)

May import: :mod:`mrcnn.ops`, :mod:`mrcnn.layers`, :mod:`mrcnn.registry`, Keras, TensorFlow.
Graph builders read settings from the config object they are given; they never import
``mrcnn.config``, the data pipeline, training or I/O.
"""
