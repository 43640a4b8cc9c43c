"""The landmark head: Mask R-CNN's keypoint branch for garment landmarks (DeepFashion2's 294).

Per ROI, grown by LANDMARK_ROI_MARGIN on each side: ROIAlign (LANDMARK_POOL_SIZE) ->
LANDMARK_HEAD_CONV_LAYERS 3x3 convolutions with ReLU (LANDMARK_HEAD_CONV_CHANNELS wide) -> a 4x4
up-convolution of stride 2 to one heatmap per landmark of the global table (NUM_LANDMARKS channels)
-> bilinear 2x upsampling when LANDMARK_HEATMAP_SIZE is 4x the pool size. Each class owns a slice
of the table (LANDMARK_COUNTS); only the ROI's class slice is trained and returned. Training
computes the up-convolution and upsampling for that slice only (``ClassSliceUpConvolution``:
DeepFashion2's largest slice is 39 of the 294 channels); inference runs them on all channels of
the few detections. Both are the layer "mrcnn_landmark_heatmaps" with the same weights.

    training    output "mrcnn_landmarks" [B, T, Kmax, M * M] logits of each positive ROI's class slice
                (the layers run on the positive ROIs only); target "target_landmarks" [B, T, Kmax, 2]
                float32 heatmap grid positions (-1 = not trained); loss "mrcnn_landmark_loss" (ops.losses.landmark_loss)
    inference   output "mrcnn_landmarks" [B, D, N, (u_x, u_y, score)], every heatmap's peak in units of the
                detection box (from -margin to 1 + margin)
                (the layers run on the real detections only; padding rows are zeros)
    detect()    result "landmarks" [n, N, (x, y, score)] float32 pixels of the original image, the
                detection's class slice filled and the other landmarks zero

Ground truth: the instance field "keypoints" [N, (x, y, visibility)] (the COCO annotations'
``keypoints``: DeepFashion2 files from ``fseg convert`` carry 882 numbers per garment). DeepFashion2's
landmarks have left/right identities whose mirror pairs are not published as data, so the field
is not flippable: training with this head switches left-right flips off (mrcnn.data.pipeline).

Layer names start with ``mrcnn_landmark`` (weights: ``mrcnn_landmark_conv1..``,
``mrcnn_landmark_heatmaps``), so checkpoints keep matterport's layout plus these layers, and files
without them (matterport's COCO weights, fseg checkpoints without the head) load with the head left
at its initialisation.
"""
from __future__ import annotations

import tensorflow as tf
from keras import layers

from mrcnn.layers import OUTPUT_DTYPE
from mrcnn.layers.glue import GatherPositiveRois, ScatterPositiveRois
from mrcnn.layers.landmarks import ClassSliceUpConvolution, ExpandBoxes, FlattenHeatmaps, HeatmapPeaks
from mrcnn.layers.roi_align import roi_align_layer
from mrcnn.modeling.roi_heads import RoiHead
from mrcnn.ops.instance_fields import InstanceField
from mrcnn.ops.keypoint_targets import class_landmarks, class_landmarks_graph, landmark_index_table, landmark_targets
from mrcnn.ops.losses import landmark_loss

FIELD = "keypoints"  # the COCO annotation key and instance field of the landmarks
HEATMAPS_LAYER = "mrcnn_landmark_heatmaps"  # the up-convolution's weights, in both graphs
HEATMAPS_KERNEL = 4  # the up-convolution's kernel side (stride 2), in both graphs


def landmark_features(x, config):
    """The head's 3x3 convolutions: [R, p, p, D] pooled ROIs -> [R, p, p, LANDMARK_HEAD_CONV_CHANNELS]."""
    for i in range(1, config.LANDMARK_HEAD_CONV_LAYERS + 1):
        x = layers.Conv2D(config.LANDMARK_HEAD_CONV_CHANNELS, 3, padding="same", activation="relu",
                          kernel_initializer="he_normal", name=f"mrcnn_landmark_conv{i}")(x)
    return x


def upsample_to_heatmap_size(x, config):
    """[R, 2p, 2p, K] -> [R, M, M, K]: bilinear 2x when LANDMARK_HEATMAP_SIZE is 4x the pool size."""
    if config.LANDMARK_HEATMAP_SIZE == 4 * config.LANDMARK_POOL_SIZE:
        x = layers.UpSampling2D(2, interpolation="bilinear", name="mrcnn_landmark_upsample",
                                dtype=OUTPUT_DTYPE)(x)
    return x


def landmark_heatmaps(x, config):
    """Inference: [R, p, p, D] pooled ROIs -> [R, M, M, NUM_LANDMARKS] logits of every landmark."""
    x = layers.Conv2DTranspose(config.NUM_LANDMARKS, HEATMAPS_KERNEL, strides=2, padding="same",
                               kernel_initializer="he_normal", name=HEATMAPS_LAYER,
                               dtype=OUTPUT_DTYPE)(landmark_features(x, config))
    return upsample_to_heatmap_size(x, config)


def class_slice_heatmaps(x, class_ids, config):
    """Training: ([R, p, p, D] pooled ROIs, [R] class ids) -> [R, Kmax, M * M] logits of each ROI's
    class slice (zeros past its class's count); the same weights as :func:`landmark_heatmaps`."""
    x = ClassSliceUpConvolution(config.LANDMARK_COUNTS, HEATMAPS_KERNEL, name=HEATMAPS_LAYER,
                                dtype=OUTPUT_DTYPE)([landmark_features(x, config), class_ids])
    return FlattenHeatmaps(name="mrcnn_landmark_flatten", dtype=OUTPUT_DTYPE)(upsample_to_heatmap_size(x, config))


class LandmarkHead(RoiHead):
    """Landmark heatmaps per ROI (registered as "landmarks"); see the module docstring."""

    name = "landmarks"
    loss_name = "mrcnn_landmark_loss"
    output_name = "mrcnn_landmarks"
    result_key = "landmarks"
    class_specific_layers = (HEATMAPS_LAYER,)  # one channel per landmark of the classes' slices
    layer_pattern = r"mrcnn\_landmark.*"

    def __init__(self, config):
        super().__init__(config)
        self.index_table = landmark_index_table(config.LANDMARK_COUNTS)  # [C, Kmax]
        self.instance_fields = (InstanceField(FIELD, shape=(config.NUM_LANDMARKS, 3), kind="points",
                                              flippable=False),)

    def target_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([self.index_table.shape[1], 2], tf.float32)

    def roi_targets(self, positive_rois, matched_gt, gt):
        c = self.config
        return landmark_targets(positive_rois, matched_gt, gt, field=FIELD, index_table=self.index_table,
                                image_hw=[int(v) for v in c.IMAGE_SHAPE[:2]], heatmap_size=c.LANDMARK_HEATMAP_SIZE,
                                margin=c.LANDMARK_ROI_MARGIN)

    def _pooled(self, feature_maps, boxes, image_meta):
        """ROIAlign over the boxes grown by LANDMARK_ROI_MARGIN: [B, N, 4] -> [B, N, p, p, D]."""
        if self.config.LANDMARK_ROI_MARGIN:
            boxes = ExpandBoxes(self.config.LANDMARK_ROI_MARGIN, name="mrcnn_landmark_expand_rois")(boxes)
        pool = self.config.LANDMARK_POOL_SIZE
        return roi_align_layer(pool, "roi_align_landmarks")([boxes, image_meta, *feature_maps])

    def build_training(self, feature_maps, rois, image_meta, target_class_ids):
        pooled = self._pooled(feature_maps, rois, image_meta)
        x = GatherPositiveRois(name="mrcnn_landmark_positive_rois")([pooled, target_class_ids])  # [P, p, p, D]
        classes = GatherPositiveRois(name="mrcnn_landmark_positive_classes")([target_class_ids, target_class_ids])
        picked = class_slice_heatmaps(x, classes, self.config)  # [P, Kmax, M * M]
        return ScatterPositiveRois(name="mrcnn_landmark_scatter")([picked, target_class_ids])

    def loss(self, targets, predictions, target_class_ids):
        return landmark_loss(targets, target_class_ids, predictions)

    def build_inference(self, feature_maps, detection_boxes, image_meta, detection_class_ids):
        # The layers run on the real detections only (class id > 0); padding rows get zeros.
        pooled = self._pooled(feature_maps, detection_boxes, image_meta)
        x = GatherPositiveRois(name="mrcnn_landmark_detections")([pooled, detection_class_ids])  # [R, p, p, D]
        peaks = HeatmapPeaks(self.config.LANDMARK_ROI_MARGIN, name="mrcnn_landmark_peaks",
                             dtype=OUTPUT_DTYPE)(landmark_heatmaps(x, self.config))
        return ScatterPositiveRois(name="mrcnn_landmark_detections_scatter",
                                   dtype=OUTPUT_DTYPE)([peaks, detection_class_ids])  # [B, D, N, 3]

    def unmold(self, predictions, class_ids, boxes, image_shape):
        """[n, NUM_LANDMARKS, (x, y, score)] float32 pixels of the original image (class slice only)."""
        return class_landmarks(predictions, class_ids, boxes, self.index_table, image_shape[:2])

    def export_outputs(self, predictions, class_ids, boxes, image_hw):
        """TF Object Detection API's keypoints: ``detection_keypoints`` [n, K, (y, x)] / (H, W) of the image and
        ``detection_keypoint_scores`` [n, K]; zero outside each detection's category slice."""
        points = class_landmarks_graph(predictions, class_ids, boxes, self.index_table, image_hw)  # [n, K, (x, y, s)]
        size = tf.cast(image_hw, tf.float32)
        return {"detection_keypoints": tf.stack([points[..., 1], points[..., 0]], axis=-1) / size,
                "detection_keypoint_scores": points[..., 2]}

    def export_output_specs(self):
        landmarks = int(self.config.NUM_LANDMARKS)
        return {"detection_keypoints": tf.TensorSpec([landmarks, 2], tf.float32),
                "detection_keypoint_scores": tf.TensorSpec([landmarks], tf.float32)}
