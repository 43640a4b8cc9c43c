"""The box head: classifies each ROI and regresses a class-specific box refinement (matterport's names).

matterport wraps the per-ROI layers in ``TimeDistributed``; Keras 3's ``TimeDistributed``
loops over the ROI axis (1,000 convolutions per image), so here the ROI axis is folded
into the batch axis instead ([B, N, ...] -> [B*N, ...]) and the same Conv2D/BatchNorm/Dense
layers, under the same names, run once on all ROIs. The weights and the arithmetic are identical.
"""
from __future__ import annotations

from keras import layers

from mrcnn.layers import OUTPUT_DTYPE
from mrcnn.layers.glue import FoldRois, UnfoldRois
from mrcnn.layers.roi_align import roi_align_layer
from mrcnn.modeling.backbones import BatchNorm

# Layers whose weight shapes depend on NUM_CLASSES (excluded to load weights of another class count).
CLASS_SPECIFIC_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox")


# Layers whose own output is not matterport's [B, N, ...] (they run on the folded [B*N, ...] rows), and the layer
# whose output is: MaskRCNN.run_graph reads that one when a notebook asks for the first.
MATTERPORT_VIEWS = {"mrcnn_class_logits": ("mrcnn_class_logits_unfold",)}

def fpn_classifier_head(pooled_rois, num_rois: int, num_classes: int, fc_layers_size: int,
                        train_bn: bool = False):
    """Box head: classifies each ROI and regresses a class-specific box refinement.

    Args:
        pooled_rois: [B, N, pool, pool, 256] ROIAligned features (N = num_rois).
    Returns:
        mrcnn_class_logits [B, N, num_classes]
        mrcnn_probs        [B, N, num_classes] softmax
        mrcnn_bbox         [B, N, num_classes, (dy, dx, log(dh), log(dw))], divided by BBOX_STD_DEV
    """
    pool = pooled_rois.shape[2]
    x = FoldRois(name="mrcnn_class_fold")(pooled_rois)  # [B*N, pool, pool, 256]
    # Two 1024-wide "fully connected" layers, written as a pool x pool conv and a 1x1 conv.
    x = layers.Conv2D(fc_layers_size, pool, padding="valid", name="mrcnn_class_conv1")(x)
    x = BatchNorm(train_bn, name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(fc_layers_size, 1, name="mrcnn_class_conv2")(x)
    x = BatchNorm(train_bn, name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((fc_layers_size,), name="pool_squeeze")(x)  # [B*N, fc]

    logits = layers.Dense(num_classes, name="mrcnn_class_logits", dtype=OUTPUT_DTYPE)(shared)
    mrcnn_class_logits = UnfoldRois(num_rois, name="mrcnn_class_logits_unfold",
                                    dtype=OUTPUT_DTYPE)(logits)  # [B, N, C]
    mrcnn_probs = layers.Activation("softmax", name="mrcnn_class", dtype=OUTPUT_DTYPE)(mrcnn_class_logits)

    # [B*N, C*4], class-major
    x = layers.Dense(num_classes * 4, name="mrcnn_bbox_fc", dtype=OUTPUT_DTYPE)(shared)
    x = layers.Reshape((num_classes, 4), name="mrcnn_bbox_reshape", dtype=OUTPUT_DTYPE)(x)  # [B*N, C, 4]
    mrcnn_bbox = UnfoldRois(num_rois, name="mrcnn_bbox", dtype=OUTPUT_DTYPE)(x)  # [B, N, C, 4]
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def box_head_on_rois(feature_maps, rois, image_meta, config, num_rois: int):
    """ROI Align (POOL_SIZE) of ``rois`` [B, num_rois, 4] from [P2..P5], then the box head.

    Returns (mrcnn_class_logits, mrcnn_probs, mrcnn_bbox) as :func:`fpn_classifier_head`.
    """
    pool = config.POOL_SIZE
    pooled = roi_align_layer(pool, "roi_align_classifier")([rois, image_meta, *feature_maps])  # [B, N, pool, pool, D]
    return fpn_classifier_head(pooled, num_rois, config.NUM_CLASSES, config.FPN_CLASSIF_FC_LAYERS_SIZE,
                               config.TRAIN_BN)
