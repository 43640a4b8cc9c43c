"""I/O: everything that reads or writes files or pixels for people, outside the graph.

    files           the one atomic writer of ``mrcnn`` (temp file + rename), JSON read with one-line errors
    images          photos -> RGB uint8 (EXIF, grayscale, alpha, 16-bit), images written atomically
    h5_legacy       matterport's legacy Keras 2 ``.h5`` layout: read and write (h5py)
    weights         loading a file into a model by layer name, saving a model in that layout
    weights_inspect what a weights file holds, from names and shapes (``fseg weights inspect``)
    imagenet        Keras' ImageNet ResNet files (downloaded by Keras on first use) under matterport's names
    overlay         the CLI's OpenCV drawing of detections (masks, boxes, labels, cut-outs)

May import :mod:`mrcnn.registry`; no TensorFlow at import time (``weights`` and ``imagenet`` import
Keras inside the functions that receive or build a Keras model).
"""
