"""Level 1: Keras layers, each a thin wrapper of a pure function.

Owns the graph ops matterport wrote as custom layers (``ProposalLayer``,
``PyramidROIAlign``, ``DetectionLayer``, ``DetectionTargetLayer``) and the small
glue layers (``glue``). A layer stores its settings, returns them from
``get_config`` and calls one function; the math lives in that function (in the
same file, or in :mod:`mrcnn.ops`). All are stateless but one: ``landmarks.ClassSliceUpConvolution``
holds the landmark head's up-convolution weights, because in training it computes only the
class slice each ROI needs (its head, :mod:`mrcnn.modeling.landmark_head`, builds it).

May import: :mod:`mrcnn.ops`, TensorFlow, Keras. Never the config, the models or I/O.
"""

# Layers that handle box coordinates compute in float32 whatever the global dtype policy
# (under mixed precision a float16 box would round to 11 bits of precision).
BOX_DTYPE = "float32"
# The layers that produce the model's outputs (logits, probabilities, deltas, mask and landmark
# probabilities) and every layer after them compute in float32 too: under bfloat16 (8 significant
# bits) scores near 1 would round to steps of 1/256 and tie in the NMS rankings. The convolutions
# before them carry the cost and run in the reduced precision (see mrcnn.modeling.precision).
OUTPUT_DTYPE = "float32"
