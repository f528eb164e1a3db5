"""Image size and bit depth from the header of a PNG, JPEG, BMP or GIF file, without decoding pixels.

Used to check the declared size of an image before it is decoded (a 250 KB PNG may declare
16000x16000 pixels) and to plan work on many files quickly. Other formats (TIFF) give None.
A header that starts like one of these formats but is broken raises ValueError naming the source.
"""
from __future__ import annotations

import dataclasses
import io
import struct
from typing import BinaryIO, Optional

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
_JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_MAX_SEGMENTS = 4096  # a frame header comes after a few APPn/DQT/DHT segments


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """Size and sample depth of an image file, read without decoding the pixels."""

    height: int
    width: int
    bit_depth: int  # 8 or 16: the depth the decoded pixels will have


def png_header(data: bytes, source: str = "<png bytes>") -> ImageHeader:
    """Size and bit depth from the IHDR chunk of PNG bytes (the first 33 bytes suffice)."""
    if len(data) < 33 or bytes(data[:8]) != PNG_SIGNATURE or bytes(data[12:16]) != b"IHDR":
        raise ValueError(f"{source}: not a PNG image (bad signature or header, truncated?)")
    width, height, depth = struct.unpack(">IIB", bytes(data[16:25]))
    if width == 0 or height == 0:
        raise ValueError(f"{source}: PNG header gives an empty image ({width}x{height})")
    return ImageHeader(height=height, width=width, bit_depth=16 if depth == 16 else 8)


def _jpeg_header(handle: BinaryIO, source: str) -> ImageHeader:
    """Walks the JPEG marker segments (``handle`` after the signature) up to the first frame header."""
    for _ in range(_JPEG_MAX_SEGMENTS):
        byte = handle.read(1)
        if byte != b"\xff":
            raise ValueError(f"{source}: JPEG header is truncated or malformed")
        while byte == b"\xff":  # fill bytes
            byte = handle.read(1)
        if not byte:
            raise ValueError(f"{source}: JPEG header is truncated")
        code = byte[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a payload
            continue
        if code in (0xD9, 0xDA):
            raise ValueError(f"{source}: JPEG data has no frame header")
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            raise ValueError(f"{source}: JPEG header is truncated")
        (length,) = struct.unpack(">H", length_bytes)
        if code in _JPEG_FRAME_MARKERS:
            frame = handle.read(5)
            if len(frame) < 5:
                raise ValueError(f"{source}: JPEG frame header is truncated")
            _, height, width = struct.unpack(">BHH", frame)
            if width == 0 or height == 0:
                raise ValueError(f"{source}: JPEG header gives an empty image ({width}x{height})")
            return ImageHeader(height=height, width=width, bit_depth=8)
        if length < 2:
            raise ValueError(f"{source}: JPEG segment length {length} is malformed")
        handle.seek(length - 2, io.SEEK_CUR)
    raise ValueError(f"{source}: no JPEG frame header in the first {_JPEG_MAX_SEGMENTS} segments")


def _bmp_header(start: bytes, source: str) -> ImageHeader:
    if len(start) < 26:
        raise ValueError(f"{source}: BMP header is truncated")
    (header_size,) = struct.unpack("<I", start[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", start[18:22])
    else:
        width, height = struct.unpack("<ii", start[18:26])
    if width <= 0 or height == 0:
        raise ValueError(f"{source}: BMP header gives an empty or invalid image ({width}x{height})")
    return ImageHeader(height=abs(height), width=width, bit_depth=8)


def _gif_header(start: bytes, source: str) -> ImageHeader:
    if len(start) < 10:
        raise ValueError(f"{source}: GIF header is truncated")
    width, height = struct.unpack("<HH", start[6:10])
    if width == 0 or height == 0:
        raise ValueError(f"{source}: GIF header gives an empty image ({width}x{height})")
    return ImageHeader(height=height, width=width, bit_depth=8)


def header_from_file(handle: BinaryIO, source: str) -> Optional[ImageHeader]:
    """The header of the image in the seekable binary ``handle`` (at its start), or None for other formats."""
    start = handle.read(33)
    if start[:8] == PNG_SIGNATURE:
        return png_header(start, source)
    if start[:2] == JPEG_SIGNATURE:
        handle.seek(2)
        return _jpeg_header(handle, source)
    if start[:2] == b"BM":
        return _bmp_header(start, source)
    if start[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_header(start, source)
    return None


def header_from_bytes(data: bytes, source: str = "<bytes>") -> Optional[ImageHeader]:
    """The header of encoded image bytes, or None for formats without a parser here (TIFF, unknown)."""
    return header_from_file(io.BytesIO(data if isinstance(data, bytes) else bytes(data[:1 << 20])), source)
