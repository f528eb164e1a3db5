"""Reading and writing 8/16-bit RGB images (PNG, JPEG, TIFF, ...) with clear errors.

Two levels of API:

* float images for users of the model: `read_image(path)` returns `[H, W, 3] float32 in [0, 1]`
  and the file's bit depth (8 or 16); `write_image(path, image, bit_depth)` quantises a float
  image (or writes an integer one as is);
* integer pixels for lossless converters: `read_pixels(path)` returns `[H, W, 3] uint8 or uint16`
  exactly as stored, `encode_png(pixels)` / `decode_png(data)` convert to and from PNG bytes, and
  `read_image_header(path)` reads size and bit depth from a PNG or JPEG header without decoding.

Every error names the offending file. Writes go to a temporary name in the destination folder and
are renamed into place only when complete, so a reader never sees a half-written file.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
from typing import Union

import cv2
import numpy as np

from ifan_tf import atomic_write

PathLike = Union[str, os.PathLike]

SUPPORTED_BIT_DEPTHS = (8, 16)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_JPEG_SUFFIXES = (".jpg", ".jpeg")


class ImageFileError(ValueError):
    """An image file is missing, unreadable, or has an unsupported format."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """Size and sample depth of an image file, read without decoding the pixels."""

    height: int
    width: int
    bit_depth: int  # 8 or 16: the depth the decoded pixels will have


def max_value(bit_depth: int) -> int:
    """Largest integer sample value at `bit_depth` (255 or 65535)."""
    _check_bit_depth(bit_depth, "bit depth")
    return (1 << bit_depth) - 1


def _check_bit_depth(bit_depth: int, where: str) -> None:
    if bit_depth not in SUPPORTED_BIT_DEPTHS:
        raise ValueError(f"{where}: bit depth must be 8 or 16, got {bit_depth!r}")


def _to_rgb(pixels: np.ndarray, source: str) -> np.ndarray:
    """OpenCV's BGR / BGRA / gray array to RGB with 3 channels."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    raise ImageFileError(f"{source}: unsupported image layout {pixels.shape}")


def _bit_depth_of(pixels: np.ndarray, source: str) -> int:
    if pixels.dtype == np.uint8:
        return 8
    if pixels.dtype == np.uint16:
        return 16
    raise ImageFileError(f"{source}: unsupported sample type {pixels.dtype} (need 8- or 16-bit integers)")


def decode_image_bytes(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decodes encoded image bytes (PNG, JPEG, ...) to `([H, W, 3] uint8|uint16 RGB, bit_depth)`.

    `source` names the data in error messages (a file name, a record name).
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is None:
        raise ImageFileError(f"{source}: cannot decode image data ({len(data)} bytes; truncated or not an image)")
    bit_depth = _bit_depth_of(pixels, source)
    return _to_rgb(pixels, source), bit_depth


def read_pixels(path: PathLike) -> tuple[np.ndarray, int]:
    """Reads an image file losslessly: `([H, W, 3] uint8 or uint16 RGB, bit_depth in {8, 16})`.

    Gray images are replicated to 3 channels; an alpha channel is dropped.
    """
    return decode_image_bytes(read_file_bytes(path), str(path))


def read_file_bytes(path: PathLike) -> bytes:
    """The bytes of ``path``; ``ImageFileError`` naming the file when it is missing or unreadable."""
    path = pathlib.Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read file ({error.strerror or error})") from None


def read_image(path: PathLike) -> tuple[np.ndarray, int]:
    """Reads an image file as `([H, W, 3] float32 in [0, 1] RGB, bit_depth in {8, 16})`.

    Values are `pixels / 255` for 8-bit files and `pixels / 65535` for 16-bit files.
    """
    pixels, bit_depth = read_pixels(path)
    return pixels.astype(np.float32) / np.float32(max_value(bit_depth)), bit_depth


def quantize(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """`[H, W, 3]` float in [0, 1] (clipped) to uint8/uint16 by rounding `image * max_value`."""
    _check_bit_depth(bit_depth, "quantize")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    scaled = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * max_value(bit_depth)
    return np.rint(scaled).astype(dtype)


def _as_pixels(image: np.ndarray, bit_depth: int, target: str) -> np.ndarray:
    """Integer pixels at `bit_depth` from a float image in [0, 1] or integer pixels of that depth."""
    _check_bit_depth(bit_depth, target)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"{target}: expected an [H, W, 3] or [H, W] image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if np.issubdtype(image.dtype, np.floating):
        return quantize(image, bit_depth)
    expected = np.uint8 if bit_depth == 8 else np.uint16
    if image.dtype != expected:
        raise ValueError(f"{target}: integer image of type {image.dtype} does not match bit depth {bit_depth}")
    return image


def encode_png(pixels: np.ndarray, compression: int = 1) -> bytes:
    """Lossless PNG bytes of `[H, W, 3] uint8 or uint16 RGB` pixels (the bit depth is kept).

    `compression` is zlib's level 0-9; decoding speed hardly depends on it, encoding time does.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs [H, W, 3] uint8/uint16 pixels, got {pixels.shape} {pixels.dtype}")
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, ::-1]),
                              [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ImageFileError("PNG encoding failed")
    return buffer.tobytes()


def decode_png(data: bytes, source: str = "<png bytes>") -> tuple[np.ndarray, int]:
    """PNG bytes to `([H, W, 3] uint8|uint16 RGB, bit_depth)`; refuses data that is not PNG."""
    if not bytes(data[:8]) == PNG_SIGNATURE:
        raise ImageFileError(f"{source}: data is not a PNG image")
    return decode_image_bytes(data, source)


def png_header(data: bytes, source: str = "<png bytes>") -> ImageHeader:
    """Size and bit depth from the IHDR chunk of PNG bytes (the first 33 bytes suffice)."""
    if len(data) < 33 or bytes(data[:8]) != PNG_SIGNATURE or bytes(data[12:16]) != b"IHDR":
        raise ImageFileError(f"{source}: not a PNG image (bad signature or header)")
    width, height, depth = struct.unpack(">IIB", bytes(data[16:25]))
    if width == 0 or height == 0:
        raise ImageFileError(f"{source}: PNG header gives an empty image ({width}x{height})")
    return ImageHeader(height=height, width=width, bit_depth=16 if depth == 16 else 8)


def _jpeg_header(handle, source: str) -> ImageHeader:
    """Walks the JPEG marker segments up to the first start-of-frame segment."""
    if handle.read(2) != b"\xff\xd8":
        raise ImageFileError(f"{source}: not a JPEG image (bad signature)")
    frame_markers = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    while True:
        byte = handle.read(1)
        if byte != b"\xff":
            raise ImageFileError(f"{source}: JPEG header is truncated or malformed")
        while byte == b"\xff":  # fill bytes
            byte = handle.read(1)
        if not byte:
            raise ImageFileError(f"{source}: JPEG header is truncated")
        code = byte[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a payload
            continue
        if code in (0xD9, 0xDA):
            raise ImageFileError(f"{source}: JPEG data has no frame header")
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            raise ImageFileError(f"{source}: JPEG header is truncated")
        (length,) = struct.unpack(">H", length_bytes)
        if code in frame_markers:
            frame = handle.read(5)
            if len(frame) < 5:
                raise ImageFileError(f"{source}: JPEG frame header is truncated")
            _, height, width = struct.unpack(">BHH", frame)
            return ImageHeader(height=height, width=width, bit_depth=8)
        handle.seek(length - 2, os.SEEK_CUR)


def read_image_header(path: PathLike) -> ImageHeader:
    """Height, width and bit depth of an image file without decoding it (PNG, JPEG; others decode)."""
    path = pathlib.Path(path)
    try:
        with path.open("rb") as handle:
            start = handle.read(33)
            if start[:8] == PNG_SIGNATURE:
                return png_header(start, str(path))
            if start[:2] == b"\xff\xd8":
                handle.seek(0)
                return _jpeg_header(handle, str(path))
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read file ({error.strerror or error})") from None
    pixels, bit_depth = read_pixels(path)
    return ImageHeader(height=pixels.shape[0], width=pixels.shape[1], bit_depth=bit_depth)


def _encoded_file_bytes(path: pathlib.Path, pixels: np.ndarray, jpeg_quality: int) -> bytes:
    suffix = path.suffix.lower()
    if suffix == ".png":
        return encode_png(pixels)
    if suffix in _JPEG_SUFFIXES:
        if pixels.dtype != np.uint8:
            raise ValueError(f"{path}: JPEG files hold 8-bit images only; use .png for 16 bits")
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif suffix in (".tif", ".tiff", ".bmp"):
        params = []
        if suffix == ".bmp" and pixels.dtype != np.uint8:
            raise ValueError(f"{path}: BMP files hold 8-bit images only")
    else:
        raise ValueError(f"{path}: unsupported image file type {suffix!r} (use one of {IMAGE_SUFFIXES})")
    ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(pixels[:, :, ::-1]), params)
    if not ok:
        raise ImageFileError(f"{path}: encoding failed")
    return buffer.tobytes()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (see `ifan_tf.atomic_write`); `ImageFileError` if its folder is missing."""
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise ImageFileError(f"{path}: folder {path.parent} does not exist")
    atomic_write.atomic_write_bytes(path, data)


def write_image(path: PathLike, image: np.ndarray, bit_depth: int = 8, *, jpeg_quality: int = 95) -> None:
    """Writes an image file atomically (temporary name in the same folder, then rename).

    Args:
      path: destination; the suffix picks the format (.png for 8 or 16 bits, .jpg 8 bits only).
      image: `[H, W, 3]` (or `[H, W]`) float in [0, 1] (clipped and rounded to `bit_depth`), or
        integer pixels of exactly that depth (uint8 for 8, uint16 for 16), RGB order.
      bit_depth: 8 or 16.
    """
    path = pathlib.Path(path)
    pixels = _as_pixels(image, bit_depth, str(path))
    atomic_write_bytes(path, _encoded_file_bytes(path, pixels, jpeg_quality))
