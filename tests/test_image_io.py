"""mrcnn.io.images: every input quirk ends as [H, W, 3] uint8 RGB; writes are atomic."""
from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from mrcnn.io.images import ImageReadError, read_image_rgb, write_image


def random_rgb(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_png_round_trip_is_exact_and_rgb_ordered(tmp_path):
    image = random_rgb()
    image[0, 0] = (255, 0, 0)  # pure red: would read as blue if channels were BGR
    write_image(tmp_path / "a.png", image)
    back = read_image_rgb(tmp_path / "a.png")
    assert back.dtype == np.uint8 and back.shape == (24, 32, 3)
    np.testing.assert_array_equal(back, image)
    # An independent decoder (OpenCV, BGR) sees the same pixels.
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png"))[..., ::-1], image)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    back = read_image_rgb(tmp_path / "g.png")
    assert back.shape == (12, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(back[:, :, c], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[0, 0, 3] = 255  # opaque: the colour itself
    rgba[0, 1, 3] = 0  # transparent: white
    rgba[0, 2, 3] = 51  # 20 % opaque: 0.2 * colour + 0.8 * 255
    rgba[1, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    back = read_image_rgb(tmp_path / "t.png")
    assert back[0, 0].tolist() == [200, 40, 0]
    assert back[0, 1].tolist() == [255, 255, 255]
    assert back[0, 2].tolist() == [244, 212, 204]  # 0.2*200+204=244, 0.2*40+204=212, 0+204=204
    assert back[1].tolist() == [[200, 40, 0]] * 3


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 257 * 17]], dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "g16.png"), values)
    back = read_image_rgb(tmp_path / "g16.png")
    assert back[:, :, 0].tolist() == [[0, 100, 255, 17]]
    assert back.dtype == np.uint8


def test_16_bit_color_is_read_as_8_bit_rgb(tmp_path):
    rgb8 = random_rgb(8, 8, seed=3)
    rgb16 = rgb8.astype(np.uint16) * 257  # exact 16-bit version of each 8-bit value
    assert cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    back = read_image_rgb(tmp_path / "c16.png")
    assert back.dtype == np.uint8 and back.shape == (8, 8, 3)
    assert np.abs(back.astype(int) - rgb8.astype(int)).max() <= 1


def test_palette_images_expand_through_their_palette(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * (254 * 3))
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    back = read_image_rgb(tmp_path / "p.png")
    assert back[0, 1].tolist() == [10, 20, 30] and back[0, 0].tolist() == [0, 0, 0]


def test_exif_orientation_is_applied_to_jpegs(tmp_path):
    # Stored 40 high x 60 wide: top half red, bottom half blue; tagged "rotate 90 CW to display" (6).
    stored = np.zeros((40, 60, 3), dtype=np.uint8)
    stored[:20] = (255, 0, 0)
    stored[20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    back = read_image_rgb(tmp_path / "rot.jpg")
    assert back.shape == (60, 40, 3)
    # Rotating 90 degrees clockwise moves the top rows to the right-hand columns.
    assert back[30, 35, 0] > 200 and back[30, 35, 2] < 60  # red on the right
    assert back[30, 5, 2] > 200 and back[30, 5, 0] < 60  # blue on the left


@pytest.mark.parametrize("content", [b"this is not an image", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_unreadable_files_raise_one_line_errors(tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError) as err:
        read_image_rgb(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_truncated_png_raises(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(64, 64)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image_rgb(tmp_path / "cut.png")


def test_big_photos_read_up_to_twice_pillows_limit(tmp_path, monkeypatch):
    # Scaled down: with a limit of 1,000 pixels, 1,200 reads (as a 108 MP photo does under Pillow's 89.5 MP
    # default) and 2,500 is refused with a one-line error.
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "big.png")
    Image.new("RGB", (50, 50), (1, 2, 3)).save(tmp_path / "huge.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image_rgb(tmp_path / "big.png").shape == (30, 40, 3)
    with pytest.raises(ImageReadError, match="huge.png: image too large: over 0 megapixels .*downscale"):
        read_image_rgb(tmp_path / "huge.png")


def test_missing_file_and_folder_raise(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image_rgb(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_image_rgb(tmp_path)


def test_write_jpeg_and_rgba_png(tmp_path):
    image = np.full((16, 16, 3), (30, 120, 210), dtype=np.uint8)
    write_image(tmp_path / "x.jpg", image)
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    assert np.abs(read_image_rgb(tmp_path / "x.jpg").astype(int) - image).max() <= 3
    rgba = np.dstack([image, np.full((16, 16), 7, np.uint8)])
    write_image(tmp_path / "y.png", rgba)
    assert np.asarray(Image.open(tmp_path / "y.png")).tolist() == rgba.tolist()


def test_written_files_get_normal_permissions(tmp_path):
    write_image(tmp_path / "m.png", random_rgb())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_bad_write_requests_raise_and_leave_nothing(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "a.jpg", rgba)
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "a.gif", rgba[..., :3])
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "a.png", rgba[..., :3].astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    write_image(target, random_rgb(seed=1))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, random_rgb(seed=2))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_a_failed_write_names_the_file_not_its_temporary(tmp_path):
    import errno

    from mrcnn.io.files import atomic_write

    target = tmp_path / "metrics.json"
    target.write_text("old")

    def full_disk(f):  # what f.write raises on a full disk: an OSError with no file name
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(target, full_disk)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_an_atomic_write_never_replaces_what_is_not_a_regular_file(tmp_path):
    import errno

    from mrcnn.io.files import write_json

    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as err:
        write_json(fifo, [1, 2])
    assert err.value.errno == errno.EINVAL and err.value.filename == str(fifo)
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
