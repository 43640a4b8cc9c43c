"""Reading photos as RGB uint8 arrays and writing images atomically.

Every image the model sees goes through :func:`read_image_rgb`, so all input
quirks are settled here, once:

* channel order is RGB (not OpenCV's BGR);
* grayscale (``L``, ``1``, 16-bit ``I;16``) becomes 3 identical channels;
* palette images are expanded through their palette;
* an alpha channel is **composited onto white** (a transparent background
  reads as a white studio background, the usual look of product photos); an
  opaque alpha channel therefore gives exactly the RGB values;
* 16-bit samples are scaled to 8 bits (``round(v / 257)``, so 65535 -> 255);
* the EXIF orientation tag is applied (phone JPEGs are stored sideways and
  tagged), so the array is the photo the way viewers display it, and boxes and
  masks refer to that frame;
* size: up to twice Pillow's ``Image.MAX_IMAGE_PIXELS`` (179 megapixels by
  default: a 108 MP phone photo reads, with no warning); larger files are
  refused by Pillow's decompression-bomb guard, which a program may raise.

Failures raise :class:`ImageReadError` with a one-line message naming the file.
This module uses Pillow and NumPy only (no TensorFlow).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mrcnn.io.files import atomic_write, file_problem

# File suffixes treated as images when scanning folders (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Pillow format name for each suffix write_image accepts.
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
# JPEG quality of written overlays: visually lossless, about 1/4 of a PNG's size.
JPEG_QUALITY = 95
# Background colour that transparent pixels are composited onto (RGB).
ALPHA_BACKGROUND = (255, 255, 255)


class ImageReadError(Exception):
    """An image file is missing, unreadable or not an image; the message is one line."""


def read_image_rgb(path: str | os.PathLike, apply_exif: bool = True) -> np.ndarray:
    """Read an image file as it is displayed, in RGB.

    Args:
      path: image file (JPEG, PNG, BMP, WebP, or anything else Pillow decodes).
      apply_exif: rotate by the EXIF orientation (as viewers show the photo). Pass
        False for dataset images whose annotations refer to the stored pixels
        (DeepFashion2 and `fseg convert` use the stored width and height).
    Returns:
      image: [H, W, 3] uint8, RGB, H x W after the EXIF rotation when apply_exif.
    Raises:
      ImageReadError: missing file, not an image, truncated or corrupt data.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a big photo; the error stays
            with Image.open(path) as img:
                img.load()
                if apply_exif:
                    img = ImageOps.exif_transpose(img)
                return _to_rgb_array(img)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageReadError(file_problem(path, exc, "image")) from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (or a format Pillow cannot decode)") from None
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageReadError(f"{path}: image too large: over {limit:.0f} megapixels (Pillow's limit against "
                             f"decompression bombs); downscale it first") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"{path}: cannot decode image ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to [H, W, 3] uint8 RGB."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        gray16 = np.asarray(img).astype(np.float64)
        gray = np.clip(np.round(gray16 / 257.0), 0, 255).astype(np.uint8)  # [H, W]
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "F":
        gray = np.clip(np.round(np.asarray(img)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return _composite_on_background(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _composite_on_background(img: Image.Image) -> np.ndarray:
    """Blend an RGBA image onto ALPHA_BACKGROUND; returns [H, W, 3] uint8."""
    rgba = np.asarray(img, dtype=np.float32)  # [H, W, 4]
    alpha = rgba[:, :, 3:4] / 255.0
    background = np.asarray(ALPHA_BACKGROUND, dtype=np.float32)
    rgb = rgba[:, :, :3] * alpha + background * (1.0 - alpha)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB or RGBA uint8 image atomically (temp file in the same folder, then rename).

    Args:
      path: output file; its suffix picks the format (.png, .jpg/.jpeg, .bmp, .webp).
        RGBA needs .png or .webp. The parent folder must exist.
      image: [H, W, 3] uint8 RGB or [H, W, 4] uint8 RGBA.
    Raises:
      ValueError: unknown suffix, wrong array shape or dtype, RGBA to JPEG or BMP.
      OSError: the file cannot be written; no partial file is left behind.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image suffix (use {', '.join(sorted(_WRITE_FORMATS))})")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"write_image needs [H, W, 3|4] uint8, got {image.shape} {image.dtype}")
    if image.shape[2] == 4 and fmt in ("JPEG", "BMP"):
        raise ValueError(f"{path}: {fmt} cannot store an alpha channel; use .png")
    pil = Image.fromarray(np.ascontiguousarray(image), mode="RGBA" if image.shape[2] == 4 else "RGB")
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    atomic_write(path, lambda f: pil.save(f, format=fmt, **options))
