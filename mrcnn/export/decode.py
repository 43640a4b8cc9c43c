"""Encoded image bytes -> RGB uint8 pixels inside a graph, as :func:`mrcnn.io.images.read_image_rgb` reads files.

The exported ``serving_default`` signature takes JPEG or PNG bytes, so decoding is part of the
graph. The rules of ``read_image_rgb`` (Pillow) are followed where TensorFlow's decoders allow:

* JPEG: libjpeg's accurate integer IDCT with fancy upsampling, Pillow's settings (TensorFlow's
  default, the fast IDCT, differs from Pillow by up to 9 levels); grayscale becomes 3 channels.
* PNG: decoded at 16 bits per sample (8-bit files are scaled by 257, exactly), then brought to
  8 bits as Pillow does: 16-bit grayscale ``round(v / 257)``, 16-bit colour the high byte; palette
  and grayscale become RGB; an alpha channel (also a palette's transparency) is composited onto
  white with the same float32 arithmetic.
* anything else TensorFlow decodes (BMP, WebP, the first frame of a GIF) through ``tf.io.decode_image``.

Not done in the graph: the EXIF orientation (``read_image_rgb`` rotates phone photos by their
EXIF tag; a client must send upright images). CMYK JPEGs decode as Pillow converts them (equal pixels
on a Pillow-written file). Bytes that do not decode fail the whole batch (a graph cannot skip an element).
``tests/test_export_twins.py`` compares this with ``read_image_rgb`` on JPEG, PNG, grayscale,
16-bit, palette and transparent images.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.io.images import ALPHA_BACKGROUND

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_DCT_METHOD = "INTEGER_ACCURATE"  # libjpeg's JDCT_ISLOW, what Pillow uses


def decode_image_graph(encoded):
    """One encoded image -> [H, W, 3] uint8 RGB (undecodable bytes raise InvalidArgumentError when run).

    Args:
      encoded: scalar string tensor, the bytes of a JPEG, PNG, BMP or GIF file.
    """
    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method=JPEG_DCT_METHOD, fancy_upscaling=True)

    def png():
        samples = tf.io.decode_png(encoded, channels=0, dtype=tf.uint16)  # [H, W, C], C in 1..4
        gray = tf.cast(tf.round(tf.cast(samples, tf.float64) / 257.0), tf.uint8)  # Pillow's I;16 rule
        high_byte = tf.cast(tf.bitwise.right_shift(samples, 8), tf.uint8)  # Pillow's 16-bit RGB(A), LA
        return to_rgb(tf.cond(tf.equal(tf.shape(samples)[2], 1), lambda: gray, lambda: high_byte))

    def other():
        return to_rgb(tf.io.decode_image(encoded, channels=0, dtype=tf.uint8, expand_animations=False))

    is_png = tf.equal(tf.strings.substr(encoded, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    return tf.case([(tf.io.is_jpeg(encoded), jpeg), (is_png, png)], default=other, exclusive=False)


def to_rgb(pixels):
    """[H, W, C] uint8 with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) -> [H, W, 3] uint8 RGB.

    Gray is repeated into 3 channels; alpha is composited onto ALPHA_BACKGROUND as read_image_rgb does.
    """
    channels = tf.shape(pixels)[2]
    has_alpha = tf.equal(channels % 2, 0)
    color_channels = channels - tf.cast(has_alpha, tf.int32)  # 1 or 3
    color = tf.gather(pixels, tf.minimum(tf.range(3), color_channels - 1), axis=2)  # [H, W, 3]

    def composite():
        rgba = tf.cast(tf.concat([color, pixels[:, :, channels - 1:]], axis=2), tf.float32)  # [H, W, 4]
        alpha = rgba[:, :, 3:4] / 255.0
        background = tf.constant(ALPHA_BACKGROUND, tf.float32)
        rgb = rgba[:, :, :3] * alpha + background * (1.0 - alpha)
        return tf.cast(tf.clip_by_value(tf.round(rgb), 0.0, 255.0), tf.uint8)

    return tf.cond(has_alpha, composite, lambda: color)
