"""Hand-made PNG files for the web tests: every colour type and bit depth, palettes, tRNS, Adam7;
and ``smooth``, photo-like random pixels.

OpenCV (and so ``main.py --mode=predict``) writes only some of these layouts, so the tests build
the files byte by byte: ``png_bytes`` takes the samples as stored (gray, RGB, palette indices, ...)
and writes them with filter 0, optionally interlaced, and with a PLTE / tRNS chunk.
"""

import struct
import zlib

import cv2
import numpy as np

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    """One PNG chunk: length, type, data, CRC."""
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _scanlines(samples, bit_depth):
    """Filter-0 scanlines of ``samples`` ``[h, w, c]`` (ints) at ``bit_depth`` (1, 2, 4, 8 or 16)."""
    height, width, channels = samples.shape
    lines = []
    for row in samples.reshape(height, width * channels):
        if bit_depth == 16:
            data = row.astype(">u2").tobytes()
        elif bit_depth == 8:
            data = row.astype(np.uint8).tobytes()
        else:
            per_byte = 8 // bit_depth
            padded = np.zeros(-(-row.size // per_byte) * per_byte, np.uint8)
            padded[:row.size] = row
            shifts = (8 - bit_depth * (np.arange(per_byte) + 1)).astype(np.uint8)
            data = (padded.reshape(-1, per_byte) << shifts).sum(axis=1).astype(np.uint8).tobytes()
        lines.append(b"\x00" + data)
    return b"".join(lines)


def png_bytes(samples, bit_depth, color_type, palette=None, transparency=None, interlace=False):
    """A PNG file holding ``samples`` ``[h, w, channels]`` as stored for ``color_type``.

    ``palette``: ``[n, 3]`` uint8 (colour type 3); ``transparency``: the raw tRNS payload (bytes).
    """
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    height, width, channels = samples.shape
    assert channels == _CHANNELS[color_type], (channels, color_type)
    if interlace:
        raw = b"".join(_scanlines(samples[ys::yd, xs::xd], bit_depth)
                       for xs, ys, xd, yd in ADAM7 if samples[ys::yd, xs::xd].size)
    else:
        raw = _scanlines(samples, bit_depth)
    parts = [b"\x89PNG\r\n\x1a\n",
             chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, int(interlace)))]
    if palette is not None:
        parts.append(chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes()))
    if transparency is not None:
        parts.append(chunk(b"tRNS", transparency))
    compressed = zlib.compress(raw, 6)
    for start in range(0, len(compressed), 8192):  # several IDAT chunks, as large files have
        parts.append(chunk(b"IDAT", compressed[start:start + 8192]))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


def large_blank_png(width, height):
    """A valid, small file declaring ``width x height`` 8-bit RGB pixels, all black (compressed zeros)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def smooth(shape, dtype=np.uint8, seed=0):
    """Photo-like random pixels (blurred noise) of ``shape`` and ``dtype``."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    image = cv2.GaussianBlur(rng.uniform(0, 1, shape).astype(np.float32), (0, 0), 2.0).reshape(shape)
    image = (image - image.min()) / (np.ptp(image) + 1e-6)
    return np.rint(image * top).astype(dtype)
