"""ResNet bodies (C1..C5) and the FPN neck (P2..P6), with matterport's layer names.

Backbones are found by name in ``mrcnn.registry.BACKBONES`` (config ``BACKBONE``).
Built in: matterport's ``resnet50`` and ``resnet101``
(bottleneck blocks, C2..C5 with 256/512/1024/2048 channels), and our light ones
for training from random weights on small images and CPUs: ``resnet18`` (He et
al.'s ResNet-18: basic blocks of two 3x3 convs, 2 per stage, C2..C5 with
64/128/256/512 channels, about 1/2.3 of resnet50's compute) and ``resnet18_half``
(the same with half the channels, about 1/4 of resnet18's compute). The FPN's 1x1
lateral convs take any channel count, so the FPN, RPN and heads are the same for all.

Layer names are the contract with matterport's ``.h5`` files: ``conv1``,
``bn_conv1``, ``res{stage}{block}_branch{2a,2b,2c,1}``, ``bn{stage}{block}_branch...``,
``fpn_c{N}p{N}``, ``fpn_p{N}``. Caffe-style bottlenecks: the stride sits on the
first 1x1 conv of a stage, every conv has a bias.

Shapes for a molded image of side S (a multiple of 64), resnet50/101 (resnet18: channels / 4,
resnet18_half: / 8):
    C2 [B, S/4, S/4, 256], C3 [B, S/8, S/8, 512], C4 [B, S/16, S/16, 1024],
    C5 [B, S/32, S/32, 2048]; P2..P5 [B, S/4 .. S/32, 256], P6 [B, S/64, S/64, 256]
    (256 = TOP_DOWN_PYRAMID_SIZE).
"""
from __future__ import annotations

from keras import layers

from mrcnn.registry import BACKBONES, BackboneSpec

# A bottleneck's inner convs are this many times narrower than its output.
BOTTLENECK_EXPANSION = 4


class BatchNorm(layers.BatchNormalization):
    """BatchNormalization whose batch statistics are used only when ``train_bn`` is set, in training.

    matterport freezes BatchNorm by default (``TRAIN_BN = False``): with small
    batches the batch statistics are too noisy, so even in training the layer
    normalises with its moving mean and variance. ``TRAIN_BN = None`` ("the normal
    mode" in matterport) and ``True`` both train it: batch statistics in training,
    moving statistics at inference (matterport's True also used batch statistics at
    inference). Keras defaults are kept (epsilon 1e-3, momentum 0.99), which
    matterport's weights were trained with.
    """

    def __init__(self, train_bn: bool | None = False, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = train_bn is None or bool(train_bn)

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=bool(training) and self.train_bn, mask=mask)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


def _residual_block(x, convs, stage, block, train_bn, project_shortcut):
    """One ResNet block: convs ``branch2a``, ``2b``, (``2c``), each with BatchNorm, ReLU between, plus the shortcut.

    Args:
      convs: [(filters, kernel size, strides)], the main branch in order; the first conv carries the
        block's stride (Caffe-style, as matterport). Bottleneck: 1x1 (stride) -> 3x3 -> 1x1; basic:
        3x3 (stride) -> 3x3 (named like the bottleneck's first two, so the layer-group regexes
        ``3+``, ``4+``, ... select the same stages).
      project_shortcut: a strided 1x1 conv + BN on the shortcut (matterport's ``conv_block``);
        without it the input is added as is (``identity_block``).
    """
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    y = x
    for index, (filters, kernel, strides) in enumerate(convs):
        part = "2" + "abc"[index]
        y = layers.Conv2D(filters, kernel, strides=strides, padding="same" if kernel > 1 else "valid",
                          name=conv_name + part)(y)
        y = BatchNorm(train_bn, name=bn_name + part)(y)
        if index < len(convs) - 1:
            y = layers.Activation("relu")(y)
    shortcut = x
    if project_shortcut:
        shortcut = layers.Conv2D(convs[-1][0], 1, strides=convs[0][2], name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _stage(x, block_type: str, channels: int, stage: int, num_blocks: int, strides: int, train_bn: bool):
    """A ResNet stage: the first block ('a') strides and projects the shortcut when the shape changes,
    identity blocks ('b', 'c', ...) follow. ``channels``: the stage's output channels."""
    for i in range(num_blocks):
        block_strides = strides if i == 0 else 1
        if block_type == "bottleneck":
            inner = channels // BOTTLENECK_EXPANSION
            convs = [(inner, 1, block_strides), (inner, 3, 1), (channels, 1, 1)]
            project = i == 0  # matterport's conv_block, also in stage 2 (64 -> 256 channels)
        else:
            convs = [(channels, 3, block_strides), (channels, 3, 1)]
            project = i == 0 and (strides != 1 or x.shape[-1] != channels)
        x = _residual_block(x, convs, stage, chr(ord("a") + i), train_bn, project)
    return x


def _stem(input_image, train_bn, width=64):
    """Pad 3, conv 7x7/2 'valid', BN, ReLU, max-pool 3x3/2 'same': [B, H/4, W/4, width]."""
    x = layers.ZeroPadding2D((3, 3))(input_image)
    x = layers.Conv2D(width, 7, strides=2, name="conv1")(x)
    x = BatchNorm(train_bn, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same")(x)


def resnet_graph(input_image, architecture: str, train_bn: bool = False):
    """ResNet body on ``input_image`` [B, H, W, 3] (mean-subtracted RGB).

    ``architecture``: a name registered in ``mrcnn.registry.BACKBONES``. Returns [C1, C2, C3, C4, C5];
    C1 is the stem output [B, H/4, W/4, stem channels]; C2..C5 have strides 4, 8, 16, 32.
    """
    spec = BACKBONES.get(architecture)
    if spec.block == "custom":
        return list(spec.build(input_image, train_bn))
    if spec.block not in ("bottleneck", "basic"):
        raise ValueError(f"backbone {architecture!r}: unknown block type {spec.block!r}")
    return _resnet_from_spec(input_image, spec, train_bn)


def _resnet_from_spec(input_image, spec: BackboneSpec, train_bn: bool):
    """A ResNet with the stem of matterport's and the stages of ``spec``; see resnet_graph."""
    outputs = [x := _stem(input_image, train_bn, spec.stem_channels)]
    for stage, (num_blocks, channels) in enumerate(zip(spec.stage_blocks, spec.stage_channels), start=2):
        x = _stage(x, spec.block, channels, stage, num_blocks, 1 if stage == 2 else 2, train_bn)
        outputs.append(x)
    return outputs


def fpn_graph(c2, c3, c4, c5, pyramid_size: int = 256):
    """Feature Pyramid Network: top-down pathway with lateral 1x1 convs.

    P5 = c5p5(C5); P4 = up2(P5) + c4p4(C4); ... (nearest-neighbour upsampling),
    then a 3x3 'same' conv on each level; P6 = 1x1 max-pool stride 2 of P5.
    Returns [P2, P3, P4, P5, P6], each with ``pyramid_size`` channels.
    """
    p5 = layers.Conv2D(pyramid_size, 1, name="fpn_c5p5")(c5)
    p4 = layers.Add(name="fpn_p4add")([
        layers.UpSampling2D(2, name="fpn_p5upsampled")(p5),
        layers.Conv2D(pyramid_size, 1, name="fpn_c4p4")(c4),
    ])
    p3 = layers.Add(name="fpn_p3add")([
        layers.UpSampling2D(2, name="fpn_p4upsampled")(p4),
        layers.Conv2D(pyramid_size, 1, name="fpn_c3p3")(c3),
    ])
    p2 = layers.Add(name="fpn_p2add")([
        layers.UpSampling2D(2, name="fpn_p3upsampled")(p3),
        layers.Conv2D(pyramid_size, 1, name="fpn_c2p2")(c2),
    ])
    p2 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p2")(p2)
    p3 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p3")(p3)
    p4 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p4")(p4)
    p5 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p5")(p5)
    p6 = layers.MaxPooling2D(pool_size=1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]


def build_feature_maps(input_image, config):
    """ResNet body + FPN of ``config`` on ``input_image``: the shared front of both graphs.

    Returns:
      head_feature_maps: [P2, P3, P4, P5] (what ROI Align pools from).
      rpn_feature_maps: [P2, P3, P4, P5, P6] (what the RPN runs on).
    """
    _, c2, c3, c4, c5 = resnet_graph(input_image, config.BACKBONE, train_bn=config.TRAIN_BN)
    p2, p3, p4, p5, p6 = fpn_graph(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    return [p2, p3, p4, p5], [p2, p3, p4, p5, p6]
