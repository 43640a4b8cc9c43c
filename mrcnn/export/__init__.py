"""Level 5: exported models. A trained model as a TensorFlow SavedModel that serves without this code.

    serving     the graph: ``MaskRCNN.detect`` as TensorFlow functions (decode, mold, anchors, network,
                unmold, mask pasting) and the two signatures, serving_default and detect_image
    decode      encoded JPEG / PNG bytes -> RGB pixels in the graph, as mrcnn.io.images reads files
    saved_model writing an export atomically (with its class names and metadata) and describing one
    adapter     ``ExportedModel``: an export behind ``MaskRCNN.detect``'s interface (``fseg predict --model``)

Everything the graph computes comes from the TensorFlow twins in ``mrcnn.ops`` (``*_graph``); a loaded
export needs TensorFlow only (no ``mrcnn``, no Keras model code, no Python function of ours).
May import every level below (through ``mrcnn.model``). See docs/usage_export.md.
"""
