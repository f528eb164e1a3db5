"""Image files for prediction: what the network sees (RGB in [0, 1]) plus what to give back.

``ifan_tf.image_io`` reads RGB and drops alpha; prediction must return an image laid out like
its input, so this module keeps the layout: gray images (1 channel) are deblurred as RGB and
written back as gray (mean of the three output channels); an alpha channel is passed through
unchanged; 8-bit files stay 8-bit, 16-bit PNG/TIFF files stay 16-bit. The same conventions hold
for the exported ``deblur_encoded`` signature (``ifan_tf.serving.encoded_images``).
"""

import dataclasses
import os
import pathlib

import cv2
import numpy as np

from ifan_tf.image_io import IMAGE_SUFFIXES, ImageFileError, atomic_write_bytes, read_file_bytes

JPEG_QUALITY = 95


@dataclasses.dataclass
class DecodedImage:
    """An input image: ``rgb`` ``[H, W, 3]`` float32 in [0, 1], its ``bit_depth`` (8 or 16), ``gray``
    (the file had one color channel) and ``alpha`` (``[H, W]`` uint8/uint16 as stored, or None)."""

    rgb: np.ndarray
    bit_depth: int
    gray: bool = False
    alpha: np.ndarray = None


def decode(data, source):
    """Decodes encoded image bytes (PNG, JPEG, TIFF, BMP) into a ``DecodedImage``; errors name ``source``."""
    buffer = np.frombuffer(data, np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is None:
        raise ImageFileError(f"{source}: not a readable image ({len(data)} bytes; truncated or not PNG/JPEG/TIFF/BMP)")
    if pixels.dtype == np.uint8:
        bit_depth = 8
    elif pixels.dtype == np.uint16:
        bit_depth = 16
    else:
        raise ImageFileError(f"{source}: unsupported sample type {pixels.dtype} (need 8- or 16-bit integers)")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    alpha = None
    if pixels.ndim == 2:
        gray, rgb = True, np.repeat(pixels[:, :, None], 3, axis=2)
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        gray, rgb = False, pixels[:, :, 2::-1]
        if pixels.shape[2] == 4:
            alpha = np.ascontiguousarray(pixels[:, :, 3])
    else:
        raise ImageFileError(f"{source}: unsupported image layout {pixels.shape}")
    scale = np.float32(1.0 / ((1 << bit_depth) - 1))
    rgb = rgb.astype(np.float32)
    rgb *= scale
    return DecodedImage(rgb=rgb, bit_depth=bit_depth, gray=gray, alpha=alpha)


def read(path):
    """Reads an image file into a ``DecodedImage``; ``ImageFileError`` naming the file otherwise."""
    return decode(read_file_bytes(path), str(path))


def quantize_inplace(image, bit_depth):
    """``[H, W, C]`` float32 in [0, 1] (clipped) to uint8/uint16 by rounding; reuses ``image``'s memory."""
    np.clip(image, 0.0, 1.0, out=image)
    image *= np.float32((1 << bit_depth) - 1)
    np.rint(image, out=image)
    return image.astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_pixels(deblurred, like):
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


def encode(pixels, suffix, source):
    """Encodes integer pixels (``to_pixels`` layout, RGB order) in the format of file suffix ``suffix``."""
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{source}: unsupported output file type {suffix!r} (use one of {IMAGE_SUFFIXES})")
    if pixels.dtype == np.uint16 and suffix in (".jpg", ".jpeg", ".bmp"):
        raise ImageFileError(f"{source}: {suffix} holds 8-bit images only; write 16-bit results as .png or .tif")
    if pixels.ndim == 3:  # RGB(A) -> OpenCV's BGR(A)
        order = [2, 1, 0, 3][: pixels.shape[2]]
        pixels = pixels[:, :, order]
    if suffix in (".jpg", ".jpeg") and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # JPEG has no alpha
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(pixels), params)
    if not ok:
        raise ImageFileError(f"{source}: encoding as {suffix} failed")
    return buffer.tobytes()


def write(path, pixels):
    """Writes integer pixels to ``path`` (format from its suffix) atomically: temp name, then rename."""
    path = pathlib.Path(path)
    atomic_write_bytes(path, encode(pixels, path.suffix, str(path)))


def is_image_file(path):
    """True for a regular file whose suffix is a supported image type (not hidden / temporary)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
