"""Tests of ifan_tf.io.image_io: lossless 8/16-bit round trips, headers, atomic writes, clear errors."""
import numpy as np
import pytest

from ifan_tf.io import image_io


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_round_trip_is_bit_exact(tmp_path, bit_depth):
    rng = np.random.default_rng(bit_depth)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    pixels = rng.integers(0, 2 ** bit_depth, size=(13, 17, 3), dtype=dtype)
    path = tmp_path / "image.png"
    image_io.write_image(path, pixels, bit_depth)
    read, depth = image_io.read_pixels(path)
    assert depth == bit_depth and read.dtype == dtype
    np.testing.assert_array_equal(read, pixels)
    as_float, depth = image_io.read_image(path)
    assert as_float.dtype == np.float32 and depth == bit_depth
    np.testing.assert_array_equal(as_float, pixels.astype(np.float32) / np.float32(2 ** bit_depth - 1))
    header = image_io.read_image_header(path)
    assert (header.height, header.width, header.bit_depth) == (13, 17, bit_depth)


def test_float_image_is_quantised_by_rounding(tmp_path):
    image = np.array([[[0.0, 0.5, 1.0], [0.2, 1.7, -0.3]]], np.float32)
    path = tmp_path / "f.png"
    image_io.write_image(path, image, 8)
    pixels, _ = image_io.read_pixels(path)
    np.testing.assert_array_equal(pixels, [[[0, 128, 255], [51, 255, 0]]])


def test_channel_order_is_rgb(tmp_path):
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[..., 0] = 200  # red
    path = tmp_path / "red.png"
    image_io.write_image(path, pixels, 8)
    png = image_io.encode_png(pixels)
    decoded, _ = image_io.decode_png(png)
    np.testing.assert_array_equal(decoded, pixels)
    import cv2
    np.testing.assert_array_equal(cv2.imread(str(path))[..., 2], 200)  # OpenCV reads BGR


def test_gray_image_becomes_three_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "gray.png"
    image_io.write_image(path, gray, 8)
    pixels, _ = image_io.read_pixels(path)
    assert pixels.shape == (3, 4, 3)
    np.testing.assert_array_equal(pixels[..., 1], gray)


def test_jpeg_header_matches_decoded_size(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.jpg"
    image_io.write_image(path, rng.integers(0, 256, (21, 34, 3), dtype=np.uint8), 8)
    header = image_io.read_image_header(path)
    pixels, depth = image_io.read_pixels(path)
    assert (header.height, header.width, header.bit_depth) == pixels.shape[:2] + (depth,) == (21, 34, 8)


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(image_io.ImageFileError, match="missing.png: no such file"):
        image_io.read_image(missing)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(image_io.ImageFileError, match="garbage.png: cannot decode"):
        image_io.read_pixels(garbage)
    truncated = tmp_path / "truncated.png"
    image_io.write_image(truncated, np.zeros((4, 4, 3), np.uint8), 8)
    truncated.write_bytes(truncated.read_bytes()[:20])
    with pytest.raises(image_io.ImageFileError, match="truncated.png"):
        image_io.read_image_header(truncated)
    with pytest.raises(ValueError, match="JPEG files hold 8-bit"):
        image_io.write_image(tmp_path / "deep.jpg", np.zeros((2, 2, 3), np.uint16), 16)
    with pytest.raises(ValueError, match="does not match bit depth"):
        image_io.write_image(tmp_path / "wrong.png", np.zeros((2, 2, 3), np.uint8), 16)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    image_io.write_image(path, np.full((3, 3, 3), 7, np.uint8), 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(image_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        image_io.write_image(path, np.zeros((3, 3, 3), np.uint8), 8)
    # The old file is intact and no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    monkeypatch.undo()
    np.testing.assert_array_equal(image_io.read_pixels(path)[0], 7)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_headers_are_read_without_decoding(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"image{suffix}"
    image_io.write_image(path, np.zeros((21, 34, 3), np.uint8), 8)
    monkeypatch.setattr(image_io.cv2, "imdecode", None)  # any decoding would fail
    header = image_io.peek_image_header(path)
    assert (header.height, header.width, header.bit_depth) == (21, 34, 8)
    assert image_io.header_from_bytes(path.read_bytes()) == header


def test_declared_size_is_checked_before_decoding(monkeypatch):
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    bomb = (image_io.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(image_io.ImageTooLargeError, match="bomb.png: the image declares 40000x40000"):
        image_io.decode_with_layout(bomb, "bomb.png")
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 31))  # our check lifted: OpenCV's own error
    monkeypatch.setattr(image_io, "header_from_bytes", lambda data, source: None)
    with pytest.raises(image_io.ImageFileError, match="bomb.png: cannot decode"):
        image_io.decode_image_bytes(bomb, "bomb.png")  # cv2.error (or a failed decode), never an OpenCV exception


def test_special_files_are_refused_before_opening(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(image_io.ImageFileError, match="pipe.png: is a FIFO"):
        image_io.read_pixels(tmp_path / "pipe.png")  # would block forever if opened
    os.symlink("/dev/zero", tmp_path / "zero.png")
    with pytest.raises(image_io.ImageFileError, match="zero.png: is a character device"):
        image_io.read_image_header(tmp_path / "zero.png")  # would never end if read
    with pytest.raises(image_io.ImageFileError, match="dir.png: is a directory"):
        (tmp_path / "dir.png").mkdir()
        image_io.read_image(tmp_path / "dir.png")
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(100)
    with pytest.raises(image_io.ImageFileError, match="big.png: 100 bytes is more than the limit of 99 bytes"):
        image_io.read_file_bytes(big, max_bytes=99)
