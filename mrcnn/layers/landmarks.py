"""Layers of the landmark head that pick and read heatmaps (thin wrappers of mrcnn.ops.keypoint_targets)."""
from __future__ import annotations

import keras
import numpy as np

from mrcnn.ops.keypoint_targets import class_slice_logits_graph, heatmap_peaks_graph


@keras.saving.register_keras_serializable(package="mrcnn")
class ClassSliceLogits(keras.layers.Layer):
    """([R, M, M, N] heatmap logits, [R] class ids) -> [R, Kmax, M * M], each ROI's class slice.

    Args:
      index_table: [C, Kmax] ints, :func:`mrcnn.ops.keypoint_targets.landmark_index_table`.
    """

    def __init__(self, index_table, **kwargs):
        super().__init__(**kwargs)
        self.index_table = np.asarray(index_table, np.int32)

    def call(self, inputs):
        logits, class_ids = inputs
        return class_slice_logits_graph(logits, class_ids, self.index_table)

    def compute_output_shape(self, input_shape):
        rows, size = input_shape[0][0], input_shape[0][1]
        return (rows, self.index_table.shape[1], None if size is None else size * size)

    def get_config(self):
        return {**super().get_config(), "index_table": self.index_table.tolist()}


@keras.saving.register_keras_serializable(package="mrcnn")
class HeatmapPeaks(keras.layers.Layer):
    """[R, M, M, N] heatmap logits -> [R, N, (u_x, u_y, score)]: each heatmap's peak in ROI units."""

    def call(self, logits):
        return heatmap_peaks_graph(logits)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 3)
