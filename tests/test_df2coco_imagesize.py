"""df2coco.imagesize: width/height from JPEG/PNG headers, compared with Pillow's decoder."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from df2coco.imagesize import ImageSizeError, read_image_size

WIDTH, HEIGHT = 53, 37


def pixels():
    return np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.mark.parametrize("name, save_kwargs", [
    ("base.jpg", {}),
    ("progressive.jpg", {"progressive": True}),
    ("grey.jpg", {"mode": "L"}),
    ("plain.png", {}),
    ("rgba.png", {"mode": "RGBA"}),
])
def test_size_matches_the_decoded_image(tmp_path, name, save_kwargs):
    img = Image.fromarray(pixels())
    if "mode" in save_kwargs:
        img = img.convert(save_kwargs.pop("mode"))
    img.save(tmp_path / name, **save_kwargs)
    assert read_image_size(tmp_path / name) == (WIDTH, HEIGHT)
    with Image.open(tmp_path / name) as decoded:
        assert decoded.load() is not None and decoded.size == (WIDTH, HEIGHT)


def test_jpeg_with_a_large_exif_block_before_the_frame_header(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90": the stored size is still reported
    exif[0x010E] = "x" * 20000  # ImageDescription: pushes the SOF marker past the first read
    Image.fromarray(pixels()).save(tmp_path / "exif.jpg", exif=exif)
    assert (tmp_path / "exif.jpg").read_bytes().find(b"\xff\xc0") > 4096
    assert read_image_size(tmp_path / "exif.jpg") == (WIDTH, HEIGHT)


@pytest.mark.parametrize("content", [b"", b"garbage bytes", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n"])
def test_bad_files_raise(tmp_path, content):
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(ImageSizeError):
        read_image_size(tmp_path / "bad.jpg")


def test_other_formats_are_rejected(tmp_path):
    Image.fromarray(pixels()).save(tmp_path / "x.bmp")
    with pytest.raises(ImageSizeError, match="BMP"):
        read_image_size(tmp_path / "x.bmp")


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageSizeError, match="cannot read"):
        read_image_size(tmp_path / "nope.jpg")
