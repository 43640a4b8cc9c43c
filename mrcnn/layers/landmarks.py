"""Layers of the landmark head that make, pick and read heatmaps (thin wrappers of mrcnn.ops.keypoint_targets)."""
from __future__ import annotations

import keras

from mrcnn.ops.keypoint_targets import (class_slice_up_convolution_graph, expand_boxes_graph, flatten_heatmaps_graph,
                                        heatmap_peaks_graph)


@keras.saving.register_keras_serializable(package="mrcnn")
class ClassSliceUpConvolution(keras.layers.Layer):
    """([R, p, p, D] features, [R] class ids) -> [R, 2p, 2p, Kmax]: the heatmap up-convolution of
    each ROI for its class's landmarks only (the training graph; see
    :func:`mrcnn.ops.keypoint_targets.class_slice_up_convolution_graph`).

    Its weights are those of ``Conv2DTranspose(N, kernel_size, strides=2, padding="same")``: "kernel"
    [k, k, N, D] (he_normal) and "bias" [N] (zeros), N = sum(counts). Under the same layer name, the
    inference graph runs that Conv2DTranspose with all N channels on the few detections, and
    checkpoints of either graph load into the other.

    Args:
      counts: landmarks per class (LANDMARK_COUNTS). kernel_size: k.
    """

    def __init__(self, counts, kernel_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.counts = [int(n) for n in counts]
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        depth = int(input_shape[0][-1])
        size = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(size, size, sum(self.counts), depth),
                                      initializer="he_normal")
        self.bias = self.add_weight(name="bias", shape=(sum(self.counts),), initializer="zeros")

    def call(self, inputs):
        features, class_ids = inputs
        return class_slice_up_convolution_graph(features, class_ids, self.kernel, self.bias, self.counts)

    def compute_output_shape(self, input_shape):
        rows, side = input_shape[0][0], input_shape[0][1]
        side = None if side is None else 2 * side
        return (rows, side, side, max(self.counts))

    def get_config(self):
        return {**super().get_config(), "counts": self.counts, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="mrcnn")
class FlattenHeatmaps(keras.layers.Layer):
    """[R, M, M, K] heatmap logits -> [R, K, M * M], each heatmap's cells row-major."""

    def call(self, logits):
        return flatten_heatmaps_graph(logits)

    def compute_output_shape(self, input_shape):
        size = input_shape[1]
        return (input_shape[0], input_shape[3], None if size is None else size * size)


@keras.saving.register_keras_serializable(package="mrcnn")
class HeatmapPeaks(keras.layers.Layer):
    """[R, M, M, N] heatmap logits -> [R, N, (u_x, u_y, score)]: each heatmap's peak in ROI units.

    Args:
      margin: LANDMARK_ROI_MARGIN, the heatmaps' extent beyond the ROI (peaks come back in units of the ROI).
    """

    def __init__(self, margin: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.margin = float(margin)

    def call(self, logits):
        return heatmap_peaks_graph(logits, self.margin)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 3)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="mrcnn")
class ExpandBoxes(keras.layers.Layer):
    """[..., (y1, x1, y2, x2)] -> the boxes grown by ``margin`` times their size on each side
    (:func:`mrcnn.ops.keypoint_targets.expand_boxes_graph`): the landmark heatmaps' extent."""

    def __init__(self, margin: float, **kwargs):
        super().__init__(**kwargs)
        self.margin = float(margin)

    def call(self, boxes):
        return expand_boxes_graph(boxes, self.margin)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
