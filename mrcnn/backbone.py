"""ResNet bodies (C1..C5) and the FPN neck (P2..P6), with matterport's layer names.

Backbones (config ``BACKBONE``): matterport's ``resnet50`` and ``resnet101``
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

import keras
from keras import layers

# Identity blocks after the first (conv) block of stage 4, per bottleneck backbone.
STAGE4_IDENTITY_BLOCKS = {"resnet50": 5, "resnet101": 22}
# Basic-block backbones: blocks per stage (stages 2..5) and the channels of C2..C5.
# The stem (conv1) is as wide as C2.
BASIC_BLOCK_LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet18_half": ((2, 2, 2, 2), (32, 64, 128, 256)),  # half the channels: ~1/4 of the compute
}
BACKBONES = (*STAGE4_IDENTITY_BLOCKS, *BASIC_BLOCK_LAYOUTS)


class BatchNorm(layers.BatchNormalization):
    """BatchNormalization whose batch statistics are used only when ``train_bn`` is set.

    matterport freezes BatchNorm by default (``TRAIN_BN = False``): with small
    batches the batch statistics are too noisy, so even in training the layer
    normalises with its moving mean and variance. Keras defaults are kept
    (epsilon 1e-3, momentum 0.99), which matterport's weights were trained with.
    """

    def __init__(self, train_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = bool(train_bn)

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=bool(training) and self.train_bn, mask=mask)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


def _bottleneck(x, filters, stage, block, strides, train_bn, project_shortcut):
    """One ResNet bottleneck: 1x1 (stride) -> 3x3 -> 1x1, plus the shortcut.

    ``project_shortcut`` adds the 1x1 conv + BN on the shortcut (matterport's
    ``conv_block``); without it the input is added as is (``identity_block``).
    """
    f1, f2, f3 = filters
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(f1, 1, strides=strides, name=conv_name + "2a")(x)
    y = BatchNorm(train_bn, name=bn_name + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f2, 3, padding="same", name=conv_name + "2b")(y)
    y = BatchNorm(train_bn, name=bn_name + "2b")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f3, 1, name=conv_name + "2c")(y)
    y = BatchNorm(train_bn, name=bn_name + "2c")(y)
    if project_shortcut:
        shortcut = layers.Conv2D(f3, 1, strides=strides, name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _stage(x, filters, stage, num_blocks, strides, train_bn):
    """A ResNet stage: one projecting block ('a') then identity blocks ('b', 'c', ...)."""
    x = _bottleneck(x, filters, stage, "a", strides, train_bn, project_shortcut=True)
    for i in range(1, num_blocks):
        x = _bottleneck(x, filters, stage, chr(ord("a") + i), 1, train_bn, project_shortcut=False)
    return x


def _basic_block(x, filters, stage, block, strides, train_bn, project_shortcut):
    """One ResNet basic block: 3x3 (stride) -> 3x3, plus the shortcut.

    Named like the bottleneck's first two convs (``res{stage}{block}_branch2a/2b``,
    BatchNorm ``bn...``), so matterport's layer-group regexes (``3+``, ``4+``, ...) select
    the same stages. ``project_shortcut`` adds a strided 1x1 conv + BN on the shortcut.
    """
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", name=conv_name + "2a")(x)
    y = BatchNorm(train_bn, name=bn_name + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=conv_name + "2b")(y)
    y = BatchNorm(train_bn, name=bn_name + "2b")(y)
    if project_shortcut:
        shortcut = layers.Conv2D(filters, 1, strides=strides, name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _basic_stage(x, filters, stage, num_blocks, strides, train_bn):
    """A basic-block stage; the first block projects the shortcut when the shape changes."""
    for i in range(num_blocks):
        project = i == 0 and (strides != 1 or x.shape[-1] != filters)
        x = _basic_block(x, filters, stage, chr(ord("a") + i), strides if i == 0 else 1, train_bn, project)
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

    ``architecture``: one of ``BACKBONES``. Returns [C1, C2, C3, C4, C5]; C1 is the
    stem output [B, H/4, W/4, 64]; C2..C5 have strides 4, 8, 16, 32.
    """
    if architecture in BASIC_BLOCK_LAYOUTS:
        return _basic_resnet_graph(input_image, architecture, train_bn)
    if architecture not in STAGE4_IDENTITY_BLOCKS:
        raise ValueError(f"unknown backbone {architecture!r}; known: {', '.join(BACKBONES)}")
    c1 = x = _stem(input_image, train_bn)
    c2 = x = _stage(x, [64, 64, 256], 2, 3, 1, train_bn)
    c3 = x = _stage(x, [128, 128, 512], 3, 4, 2, train_bn)
    c4 = x = _stage(x, [256, 256, 1024], 4, 1 + STAGE4_IDENTITY_BLOCKS[architecture], 2, train_bn)
    c5 = _stage(x, [512, 512, 2048], 5, 3, 2, train_bn)
    return [c1, c2, c3, c4, c5]


def _basic_resnet_graph(input_image, architecture: str, train_bn: bool):
    """Basic-block ResNet (e.g. resnet18) with the stem of the bottleneck ones; see resnet_graph."""
    blocks, widths = BASIC_BLOCK_LAYOUTS[architecture]
    outputs = [x := _stem(input_image, train_bn, widths[0])]
    for stage, (num_blocks, width) in enumerate(zip(blocks, widths), start=2):
        x = _basic_stage(x, width, stage, num_blocks, 1 if stage == 2 else 2, train_bn)
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


def backbone_layer_names(model: keras.Model) -> list[str]:
    """Names of the ResNet layers of ``model`` (``conv1``, ``bn_conv1``, ``res*``, ``bn*``)."""
    return [l.name for l in model.layers if l.name in ("conv1", "bn_conv1") or l.name.startswith(("res", "bn"))]
