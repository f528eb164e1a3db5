"""Checking a record's compressed payloads before decoding them: PNG bodies and zlib defocus maps.

A record whose TFRecord framing is intact can still hold a PNG whose image data is damaged:
TensorFlow's ``decode_png`` then fails in the middle of a pipeline with "Invalid PNG data" and
no file name. ``check_png_body`` finds this up front, at about the cost of inflating the image
data once: the chunk structure, every chunk's CRC, the header fields, the zlib stream of the IDAT
chunks (inflated to exactly the size the header implies, never more) and every row's filter byte.

``inflate_exactly`` is the bounded zlib inflation shared with the defocus maps: the output size is
known before inflating, and a stream that would produce more (a decompression bomb) is refused
after at most one byte more than expected.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from ifan_tf.io import image_io

# PNG color type -> samples per pixel, and the bit depths the PNG standard allows for it.
_COLOR_TYPES = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)), 6: (4, (8, 16))}
# Adam7 passes: (x offset, y offset, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_MAX_FILTER_TYPE = 4
_CHUNK_BYTES = 1 << 22


def inflated_chunks(data: bytes, size: int, where: str, what: str, chunk_bytes: int = _CHUNK_BYTES):
    """Yields zlib ``data`` inflated, in chunks of at most ``chunk_bytes``, checking it totals ``size``.

    Raises ValueError naming ``where`` for invalid or truncated data, or as soon as the stream
    would produce more than ``size`` bytes: at most ``size + 1`` bytes are ever inflated, and at
    most ``chunk_bytes`` are held at once.
    """
    inflater = zlib.decompressobj()
    pending, produced = bytes(data), 0
    while True:
        try:
            out = inflater.decompress(pending, min(chunk_bytes, size + 1 - produced))
        except zlib.error as error:
            raise ValueError(f"{where}: {what} is not valid zlib data ({error})") from None
        produced += len(out)
        if produced > size:
            raise ValueError(f"{where}: {what} inflates to more than the {size} bytes expected")
        if out:
            yield out
        pending = inflater.unconsumed_tail
        if inflater.eof or not out:
            break
    if produced != size or not inflater.eof:
        raise ValueError(f"{where}: {what} inflates to {produced} bytes, expected {size}"
                         + ("" if inflater.eof else " (the zlib stream is truncated)"))


def inflate_exactly(data: bytes, size: int, where: str, what: str) -> bytes:
    """zlib ``data`` inflated to exactly ``size`` bytes (``inflated_chunks``), as one bytes object."""
    raw = bytearray()
    for chunk in inflated_chunks(data, size, where, what):
        raw += chunk
    return bytes(raw)


def check_inflated_size(data: bytes, size: int, where: str, what: str) -> None:
    """Checks that zlib ``data`` inflates to exactly ``size`` bytes, holding one chunk at a time."""
    for _ in inflated_chunks(data, size, where, what):
        pass


def _row_bytes(width: int, samples: int, depth: int) -> int:
    return (width * samples * depth + 7) // 8


def _passes(width: int, height: int, interlaced: bool):
    """(pass width, pass height) of each non-empty pass (the whole image when not interlaced)."""
    if not interlaced:
        return [(width, height)]
    sizes = [(-(-(width - x0) // dx) if width > x0 else 0, -(-(height - y0) // dy) if height > y0 else 0)
             for x0, y0, dx, dy in _ADAM7]
    return [(w, h) for w, h in sizes if w and h]


def _chunks(data: bytes, where: str):
    """(type, body) of each chunk after the signature, CRCs checked."""
    position = len(image_io.PNG_SIGNATURE)
    while position < len(data):
        if position + 12 > len(data):
            raise ValueError(f"{where}: PNG chunk at byte {position} is truncated")
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise ValueError(f"{where}: PNG chunk {kind!r} at byte {position} declares {length} bytes, "
                             f"only {len(data) - position - 12} remain")
        body = data[position + 8:end - 4]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise ValueError(f"{where}: PNG chunk {kind!r} at byte {position} is corrupt (CRC mismatch)")
        yield kind, body
        position = end


def check_png_body(data: bytes, where: str) -> None:
    """Raises ValueError naming ``where`` unless ``data`` is a complete, intact PNG.

    Checks: signature; IHDR first with a valid color type, bit depth, methods and a non-empty
    size; every chunk's length and CRC; contiguous IDAT chunks; IEND last with nothing after it;
    the IDAT zlib stream inflating to exactly the size the header implies; valid row filters.
    """
    data = bytes(data)
    if not data.startswith(image_io.PNG_SIGNATURE):
        raise ValueError(f"{where}: not a PNG image (bad signature)")
    header, idat, idat_done, ended = None, [], False, False
    for kind, body in _chunks(data, where):
        if ended:
            raise ValueError(f"{where}: PNG has data after its IEND chunk")
        if header is None:
            if kind != b"IHDR" or len(body) != 13:
                raise ValueError(f"{where}: PNG does not start with a valid IHDR chunk")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            if idat_done:
                raise ValueError(f"{where}: PNG image data (IDAT) chunks are not contiguous")
            idat.append(body)
        elif kind == b"IEND":
            ended = True
        elif idat:
            idat_done = True
    if header is None or not ended:
        raise ValueError(f"{where}: PNG is truncated (no {'IHDR' if header is None else 'IEND'} chunk)")
    width, height, depth, color_type, compression, filter_method, interlace = header
    if color_type not in _COLOR_TYPES or depth not in _COLOR_TYPES[color_type][1]:
        raise ValueError(f"{where}: PNG color type {color_type} with bit depth {depth} is not valid")
    if width == 0 or height == 0 or compression != 0 or filter_method != 0 or interlace not in (0, 1):
        raise ValueError(f"{where}: PNG header is not valid ({width}x{height}, methods {compression}/"
                         f"{filter_method}/{interlace})")
    if not idat:
        raise ValueError(f"{where}: PNG has no image data (IDAT)")
    samples = _COLOR_TYPES[color_type][0]
    passes = _passes(width, height, bool(interlace))
    size = sum(h * (1 + _row_bytes(w, samples, depth)) for w, h in passes)
    # the offset of every row's filter byte in the inflated stream, checked chunk by chunk
    row_starts, offset = [], 0
    for pass_width, pass_height in passes:
        stride = 1 + _row_bytes(pass_width, samples, depth)
        row_starts.append(np.arange(pass_height, dtype=np.int64) * stride + offset)
        offset += pass_height * stride
    row_starts = np.concatenate(row_starts)
    position = 0
    for chunk in inflated_chunks(b"".join(idat), size, where, "PNG image data"):
        first, last = np.searchsorted(row_starts, [position, position + len(chunk)])
        filters = np.frombuffer(chunk, np.uint8)[row_starts[first:last] - position]
        if filters.size and filters.max() > _MAX_FILTER_TYPE:
            row = first + int(np.argmax(filters > _MAX_FILTER_TYPE))
            raise ValueError(f"{where}: PNG image data is corrupt (row {row} has filter type "
                             f"{filters.max()})")
        position += len(chunk)
