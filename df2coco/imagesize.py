"""Width and height of an image file, read from its header without decoding pixels.

JPEG: the segments after the SOI marker are walked by their lengths until a
start-of-frame (SOFn) segment, which holds height and width; APPn payloads
(EXIF, thumbnails) are skipped, not parsed. PNG: the IHDR chunk at byte 16.
Anything else (or an unusual file the fast path cannot parse) falls back to
Pillow's lazy ``Image.open``, which also reads only the header.

The size is the one stored in the file: EXIF orientation is NOT applied, which
is what the official DeepFashion2 converter does and the frame the annotations use.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # lower case, in order of preference

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEAD_BYTES = 4096  # enough for SOI + APP0 + DQT + SOF in typical JPEGs


class ImageSizeError(Exception):
    """The file is missing, unreadable, or not a JPEG/PNG image."""


def read_image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` in pixels from the image header.

    Raises:
      ImageSizeError: the file cannot be opened or is not a valid JPEG or PNG.
    """
    try:
        fd = os.open(path, os.O_RDONLY)  # plain system calls: cheaper than open() for a few KB
        try:
            head = os.read(fd, _HEAD_BYTES)
            size = _png_size(head) if head.startswith(_PNG_SIGNATURE) else _jpeg_size(fd, head)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageSizeError(f"cannot read: {exc.strerror or exc}") from exc
    if size is None:
        size = _pillow_size(path)
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageSizeError(f"invalid size {width}x{height}")
    return width, height


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _jpeg_size(fd: int, head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the SOF marker; None if this is not a simple JPEG."""
    if not head.startswith(b"\xff\xd8"):
        return None
    data, pos = head, 2
    while True:
        if pos + 9 > len(data):  # need marker (2) + length (2) + SOF fields (5)
            more = os.read(fd, max(_HEAD_BYTES, pos + 9 - len(data)))
            if not more:
                return None
            data += more
            continue
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xD9 or marker == 0xDA:  # end of image / start of scan before any SOF
            return None
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]


def _pillow_size(path: str | Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format not in ("JPEG", "PNG"):
                raise ImageSizeError(f"not a JPEG or PNG image (format {img.format})")
            return img.size
    except ImageSizeError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # what PIL raises for bad headers
        raise ImageSizeError(str(exc) or type(exc).__name__) from exc


def verify_image(path: str | Path) -> None:
    """Decode the whole image (all pixels), as training will.

    The header alone says nothing about the rest of the file: a JPEG cut short
    by a failed copy has a valid header but fails to decode in the training
    pipeline. Pillow's decoder raises on truncated or corrupt data (its
    ``LOAD_TRUNCATED_IMAGES`` leniency is off by default and is not turned on here).

    Raises:
      ImageSizeError: the pixels cannot be decoded.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageSizeError(f"cannot decode: {exc or type(exc).__name__}") from exc
