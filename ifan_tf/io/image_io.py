"""The one image codec of the project: reading and writing 8/16-bit images (PNG, JPEG, TIFF, BMP).

Used by predict, eval, the data converters, the serving client and the tests. Three levels:

* float RGB for model users: ``read_image(path)`` returns ``[H, W, 3] float32 in [0, 1]`` and the
  file's bit depth (8 or 16); ``write_image(path, image, bit_depth)`` quantises a float image (or
  writes integer pixels as they are);
* the layout-keeping form for prediction: ``read_with_layout`` / ``decode_with_layout`` give a
  ``DecodedImage`` (RGB in [0, 1] plus whether the file was gray and its alpha channel), and
  ``to_pixels`` / ``write_pixels`` give back a result laid out like the input (gray stays gray,
  alpha is copied, 8-bit stays 8-bit, 16-bit stays 16-bit), as the ``deblur_encoded`` serving
  signature does (``ifan_tf.serving.encoded_images``);
* integer pixels for lossless converters: ``read_pixels``, ``encode_png`` / ``decode_png``,
  headers (``read_image_header``, ``peek_image_header``, ``header_from_bytes``) without decoding,
  and ``verify_image_file`` (header, declared size, then the body decoded and dropped).

Files are read through ``ifan_tf.io.input_files`` (regular files only, bounded size, bounded read).
Decoding checks the declared size in the header first: images above ``decode_pixel_limit()``
(OpenCV's own limit) raise ``ImageTooLargeError``; OpenCV's exceptions become ``ImageFileError``.
Every error names the file. Writes are atomic (``ifan_tf.io.atomic_write``).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Optional, Union

import cv2
import numpy as np

from ifan_tf.io import atomic_write, input_files
from ifan_tf.io.image_headers import PNG_SIGNATURE, ImageHeader, header_from_bytes, header_from_file, png_header

PathLike = Union[str, os.PathLike]

SUPPORTED_BIT_DEPTHS = (8, 16)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
PNG_COMPRESSION = 1  # zlib level of every PNG we write: decoding speed hardly depends on it, encoding time does
JPEG_QUALITY = 95
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_OPENCV_PIXEL_LIMIT = 1 << 30  # OpenCV's default CV_IO_MAX_IMAGE_PIXELS
__all__ = ["PNG_SIGNATURE", "ImageHeader", "header_from_bytes", "png_header"]  # re-exported header helpers


class ImageFileError(ValueError):
    """An image file is missing, unreadable, too large, or has an unsupported format."""


class ImageTooLargeError(ImageFileError):
    """An image declares more pixels than may be decoded (``height``, ``width`` and ``limit`` are set)."""

    def __init__(self, message, height, width, limit):
        super().__init__(message)
        self.height, self.width, self.limit = height, width, limit


@dataclasses.dataclass
class DecodedImage:
    """An input image: ``rgb`` ``[H, W, 3]`` float32 in [0, 1], its ``bit_depth`` (8 or 16), ``gray``
    (the file had one color channel) and ``alpha`` (``[H, W]`` uint8/uint16 as stored, or None)."""

    rgb: np.ndarray
    bit_depth: int
    gray: bool = False
    alpha: Optional[np.ndarray] = None


def decode_pixel_limit() -> int:
    """Most pixels an image may declare to be decoded: OpenCV's limit (env ``OPENCV_IO_MAX_IMAGE_PIXELS``)."""
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", _OPENCV_PIXEL_LIMIT))
    except ValueError:
        return _OPENCV_PIXEL_LIMIT


def max_value(bit_depth: int) -> int:
    """Largest integer sample value at `bit_depth` (255 or 65535)."""
    _check_bit_depth(bit_depth, "bit depth")
    return (1 << bit_depth) - 1


def _check_bit_depth(bit_depth: int, where: str) -> None:
    if bit_depth not in SUPPORTED_BIT_DEPTHS:
        raise ValueError(f"{where}: bit depth must be 8 or 16, got {bit_depth!r}")


def is_image_file(path: PathLike) -> bool:
    """True for a name with a supported image suffix that is not hidden (temporary files are hidden)."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


# ----------------------------------------------------------------------------------------- reading

def read_file_bytes(path: PathLike, max_bytes: Optional[int] = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (None: ``input_files.MAX_INPUT_BYTES``).

    ``ImageFileError`` naming the file when it is missing, special, too large or unreadable:
    FIFOs, devices, sockets and directories are refused before they are opened (``ifan_tf.io.input_files``).
    """
    try:
        return input_files.read_regular_file(path, max_bytes)
    except input_files.InputFileError as error:
        raise ImageFileError(str(error)) from None


def _bmp_fourth_byte_is_reserved(data: bytes, source: str) -> bool:
    """True for a BMP whose 4th channel from OpenCV is a reserved byte, not alpha; refuses BMPs it decodes wrongly.

    OpenCV 4.12 decodes OS/2 BMPs (12-byte header) as gray, and copies the 4 bytes of a 32-bit
    BI_BITFIELDS pixel as B, G, R, alpha whenever it ignores the masks (a header under 56 bytes, or
    a zero colour mask): right colours only for the stored-order masks 0xFF0000, 0xFF00, 0xFF, and
    the 4th byte is then reserved (BI_RGB 32-bit BMPs already come back opaque). The serving graph
    decodes the same way (``ifan_tf.serving.bmp_decoding``).
    """
    if data[:2] != b"BM" or len(data) < 18:
        return False
    info_size = int.from_bytes(data[14:18], "little")
    if info_size == 12:
        raise ImageFileError(f"{source}: OS/2 BMP (12-byte BITMAPCOREHEADER) is not supported (OpenCV decodes its "
                             "colours as gray); save it as a Windows BMP")
    bits, compression = int.from_bytes(data[28:30], "little"), int.from_bytes(data[30:34], "little")
    masks = tuple(int.from_bytes(data[offset:offset + 4], "little") for offset in (54, 58, 62))
    if bits != 32 or compression != 3 or len(data) < 66 or (info_size >= 56 and all(masks)):
        return False  # not 32-bit bit fields, too short for OpenCV to decode, or masks OpenCV applies
    if masks != (0xFF0000, 0xFF00, 0xFF):
        raise ImageFileError(f"{source}: 32-bit BI_BITFIELDS BMP with a {info_size}-byte header and red, green, blue "
                             f"masks {', '.join(hex(mask) for mask in masks)} is not supported (OpenCV ignores them)")
    return True


def _decode_opencv(data: bytes, source: str) -> tuple[np.ndarray, int]:
    """OpenCV's array (gray, BGR or BGRA; uint8/uint16) and bit depth, after checking the declared size."""
    try:
        header = header_from_bytes(data, source)
    except ValueError as error:  # a header that is present but broken
        detail = str(error).removeprefix(f"{source}: ")
        raise ImageFileError(f"{source}: cannot decode image data, not a readable image ({detail})") from None
    if header is not None:
        check_declared_size(header, source)
    reserved_fourth_byte = _bmp_fourth_byte_is_reserved(data, source)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    except cv2.error as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
        raise ImageFileError(f"{source}: cannot decode image data, OpenCV refused it ({message})") from None
    if pixels is None:
        raise ImageFileError(f"{source}: cannot decode image data, not a readable image ({len(data)} bytes; "
                             "truncated or not PNG/JPEG/TIFF/BMP)")
    if reserved_fourth_byte and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # opaque B, G, R: the reserved byte is not alpha
    if pixels.dtype == np.uint8:
        return pixels, 8
    if pixels.dtype == np.uint16:
        return pixels, 16
    raise ImageFileError(f"{source}: unsupported sample type {pixels.dtype} (need 8- or 16-bit integers)")


def _split_layout(pixels: np.ndarray, source: str) -> tuple[np.ndarray, bool, Optional[np.ndarray]]:
    """OpenCV's gray / BGR / BGRA array to (``[H, W, 3]`` RGB view, gray, alpha ``[H, W]`` or None)."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2), True, None
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        alpha = np.ascontiguousarray(pixels[:, :, 3]) if pixels.shape[2] == 4 else None
        return pixels[:, :, 2::-1], False, alpha
    raise ImageFileError(f"{source}: unsupported image layout {pixels.shape}")


def decode_image_bytes(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decodes encoded image bytes (PNG, JPEG, ...) to `([H, W, 3] uint8|uint16 RGB, bit_depth)`.

    Gray images are replicated to 3 channels; an alpha channel is dropped. `source` names the
    data in error messages (a file name, a record name).
    """
    pixels, bit_depth = _decode_opencv(data, source)
    rgb, _, _ = _split_layout(pixels, source)
    return np.ascontiguousarray(rgb), bit_depth


def decode_with_layout(data: bytes, source: str = "<bytes>") -> DecodedImage:
    """Decodes encoded image bytes (PNG, JPEG, TIFF, BMP) into a ``DecodedImage`` (layout kept)."""
    pixels, bit_depth = _decode_opencv(data, source)
    rgb, gray, alpha = _split_layout(pixels, source)
    del pixels
    scaled = rgb.astype(np.float32)
    scaled *= np.float32(1.0 / max_value(bit_depth))
    return DecodedImage(rgb=scaled, bit_depth=bit_depth, gray=gray, alpha=alpha)


def read_pixels(path: PathLike) -> tuple[np.ndarray, int]:
    """Reads an image file losslessly: `([H, W, 3] uint8 or uint16 RGB, bit_depth in {8, 16})`."""
    return decode_image_bytes(read_file_bytes(path), str(path))


def read_image(path: PathLike) -> tuple[np.ndarray, int]:
    """Reads an image file as `([H, W, 3] float32 in [0, 1] RGB, bit_depth in {8, 16})`.

    Values are `pixels / 255` for 8-bit files and `pixels / 65535` for 16-bit files.
    """
    pixels, bit_depth = read_pixels(path)
    return pixels.astype(np.float32) / np.float32(max_value(bit_depth)), bit_depth


def read_with_layout(path: PathLike) -> DecodedImage:
    """Reads an image file into a ``DecodedImage``; ``ImageFileError`` naming the file otherwise."""
    return decode_with_layout(read_file_bytes(path), str(path))


def decode_png(data: bytes, source: str = "<png bytes>") -> tuple[np.ndarray, int]:
    """PNG bytes to `([H, W, 3] uint8|uint16 RGB, bit_depth)`; refuses data that is not PNG."""
    if not bytes(data[:8]) == PNG_SIGNATURE:
        raise ImageFileError(f"{source}: data is not a PNG image")
    return decode_image_bytes(data, source)


def peek_image_header(path: PathLike) -> Optional[ImageHeader]:
    """Size and bit depth from a PNG, JPEG, BMP or GIF header, reading only the header; None for other formats.

    Never decodes pixels. ``ImageFileError`` naming the file when it is special, too large, unreadable
    or has a broken header.
    """
    try:
        with input_files.open_regular_file(path) as handle:
            return header_from_file(handle, str(path))
    except input_files.InputFileError as error:
        raise ImageFileError(str(error)) from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read file ({error.strerror or error})") from None
    except ValueError as error:
        raise ImageFileError(str(error)) from None


def read_image_header(path: PathLike) -> ImageHeader:
    """Height, width and bit depth of an image file; decodes only formats without a header parser (TIFF)."""
    header = peek_image_header(path)
    if header is not None:
        return header
    pixels, bit_depth = read_pixels(path)
    return ImageHeader(height=pixels.shape[0], width=pixels.shape[1], bit_depth=bit_depth)


def check_declared_size(header: ImageHeader, source: str) -> None:
    """Raises ``ImageTooLargeError`` naming ``source`` if ``header`` declares more than ``decode_pixel_limit()`` pixels.

    The decoders' own check (``_decode_opencv``), usable before reading an image's body.
    """
    limit = decode_pixel_limit()
    pixels = header.height * header.width
    if pixels > limit:
        raise ImageTooLargeError(f"{source}: the image declares {header.width}x{header.height} pixels "
                                 f"({pixels / 1e6:.0f} Mpx), more than the {limit / 1e6:.0f} Mpx that may be decoded "
                                 "(OPENCV_IO_MAX_IMAGE_PIXELS)", header.height, header.width, limit)


def verify_image_file(path: PathLike) -> ImageHeader:
    """Checks that ``read_pixels(path)`` would succeed, by doing it; returns the decoded image's header.

    In order: the file is a readable regular file with a well-formed header (PNG, JPEG, BMP, GIF;
    TIFF has none here); the declared size is within ``decode_pixel_limit()``, checked before the
    body is read; the body decodes to 8- or 16-bit gray, RGB or RGBA pixels (``[H, W, 3]`` uint8 or
    uint16 once converted) of the declared size. The pixels are dropped before returning, so a
    caller checking many files holds one decoded image per call. Raises ``ImageFileError`` (or
    ``ImageTooLargeError``) naming the file and the problem.
    """
    source = str(path)
    declared = peek_image_header(path)
    if declared is not None:
        check_declared_size(declared, source)
    pixels, bit_depth = read_pixels(path)
    decoded = ImageHeader(height=pixels.shape[0], width=pixels.shape[1], bit_depth=bit_depth)
    del pixels
    if declared is not None and declared != decoded:
        raise ImageFileError(f"{source}: decodes to {decoded.width}x{decoded.height} {decoded.bit_depth}-bit pixels, "
                             f"its header declares {declared.width}x{declared.height} {declared.bit_depth}-bit")
    return decoded


# ----------------------------------------------------------------------------------------- writing

def quantize(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """`[H, W, 3]` float in [0, 1] (clipped) to uint8/uint16 by rounding `image * max_value`."""
    _check_bit_depth(bit_depth, "quantize")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    scaled = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * max_value(bit_depth)
    return np.rint(scaled).astype(dtype)


def quantize_inplace(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """``[H, W, C]`` float32 in [0, 1] (clipped) to uint8/uint16 by rounding; reuses ``image``'s memory."""
    np.clip(image, 0.0, 1.0, out=image)
    image *= np.float32(max_value(bit_depth))
    np.rint(image, out=image)
    return image.astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_pixels(deblurred: np.ndarray, like: DecodedImage) -> np.ndarray:
    """The deblurred ``[H, W, 3]`` float32 image as integer pixels laid out like the input ``like``.

    Returns ``[H, W]`` for gray inputs (mean of the output channels), ``[H, W, 3]`` RGB, or
    ``[H, W, 4]`` RGBA when the input had alpha (copied unchanged; a gray image with alpha comes
    back as RGBA). uint8 or uint16 like the input. ``deblurred`` is overwritten (quantised in place).
    """
    if like.gray and like.alpha is None:
        deblurred = deblurred.mean(axis=2, dtype=np.float32)
    pixels = quantize_inplace(deblurred, like.bit_depth)
    if like.alpha is not None:
        pixels = np.concatenate([pixels, like.alpha[:, :, None].astype(pixels.dtype)], axis=2)
    return pixels


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


def encode_image(pixels: np.ndarray, suffix: str, source: str = "<image>", *, jpeg_quality: int = JPEG_QUALITY,
                 png_compression: int = PNG_COMPRESSION) -> bytes:
    """Encodes integer pixels in the format of file suffix ``suffix`` (".png", ".jpg", ".tif", ".bmp").

    ``pixels``: ``[H, W]`` gray, ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA, uint8 or uint16 (16 bits
    only for PNG and TIFF; JPEG drops alpha). ``source`` names the output in errors.
    """
    suffix = suffix.lower()
    pixels = np.asarray(pixels)
    if suffix not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{source}: unsupported image file type {suffix!r} (use one of {IMAGE_SUFFIXES})")
    if pixels.dtype not in (np.uint8, np.uint16) or not (
            pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"{source}: need [H, W], [H, W, 3] or [H, W, 4] uint8/uint16 pixels, "
                         f"got {pixels.shape} {pixels.dtype}")
    if pixels.dtype == np.uint16 and suffix in _JPEG_SUFFIXES:
        raise ValueError(f"{source}: JPEG files hold 8-bit images only; use .png or .tif for 16 bits")
    if pixels.dtype == np.uint16 and suffix == ".bmp":
        raise ValueError(f"{source}: BMP files hold 8-bit images only; use .png or .tif for 16 bits")
    if pixels.ndim == 3:  # RGB(A) -> OpenCV's BGR(A); JPEG has no alpha
        channels = 3 if suffix in _JPEG_SUFFIXES else pixels.shape[2]
        pixels = pixels[:, :, [2, 1, 0, 3][:channels]]
    params = {".png": [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)],
              ".jpg": [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
              ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]}.get(suffix, [])
    try:
        ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(pixels), params)
    except cv2.error as error:
        raise ImageFileError(f"{source}: encoding as {suffix} failed ({error})") from None
    if not ok:
        raise ImageFileError(f"{source}: encoding as {suffix} failed")
    return buffer.tobytes()


def encode_png(pixels: np.ndarray, compression: int = PNG_COMPRESSION) -> bytes:
    """Lossless PNG bytes of `[H, W, 3] uint8 or uint16 RGB` pixels (the bit depth is kept)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs [H, W, 3] uint8/uint16 pixels, got {pixels.shape} {pixels.dtype}")
    return encode_image(pixels, ".png", "PNG encoding", png_compression=compression)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (see `ifan_tf.io.atomic_write`); `ImageFileError` if its folder is missing."""
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise ImageFileError(f"{path}: folder {path.parent} does not exist")
    atomic_write.atomic_write_bytes(path, data)


def write_pixels(path: PathLike, pixels: np.ndarray) -> None:
    """Writes integer pixels (``encode_image`` layouts, RGB order) to ``path`` atomically; format from its suffix."""
    path = pathlib.Path(path)
    atomic_write_bytes(path, encode_image(pixels, path.suffix, str(path)))


def write_image(path: PathLike, image: np.ndarray, bit_depth: int = 8, *, jpeg_quality: int = JPEG_QUALITY) -> None:
    """Writes an image file atomically (temporary name in the same folder, then rename).

    Args:
      path: destination; the suffix picks the format (.png for 8 or 16 bits, .jpg 8 bits only).
      image: `[H, W, 3]` (or `[H, W]`) float in [0, 1] (clipped and rounded to `bit_depth`), or
        integer pixels of exactly that depth (uint8 for 8, uint16 for 16), RGB order.
      bit_depth: 8 or 16.
    """
    path = pathlib.Path(path)
    pixels = _as_pixels(image, bit_depth, str(path))
    atomic_write_bytes(path, encode_image(pixels, path.suffix, str(path), jpeg_quality=jpeg_quality))

