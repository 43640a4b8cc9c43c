"""matterport's Mask R-CNN re-implemented on TensorFlow 2 / Keras 3.

Importing ``mrcnn`` is cheap; TensorFlow loads when a model module is imported
(``from mrcnn.model import MaskRCNN``).
"""
