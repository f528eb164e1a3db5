"""Exactly controlled test images: PNG and BMP bytes written here field by field (struct + zlib).

Used by the decoder agreement test (``test_decoder_agreement.py``): every variant a decoder may meet
(PNG bit depths, palettes, tRNS, Adam7 interlacing; BMP palettes, 16/24/32-bit, bit fields, header
versions, row order, padding) is built from integer samples, so a test knows exactly what the file
holds. Nothing here decodes.
"""
import struct
import zlib

import numpy as np

# PNG colour types and the samples per pixel of each.
PNG_GRAY, PNG_RGB, PNG_PALETTE, PNG_GRAY_ALPHA, PNG_RGBA = 0, 2, 3, 4, 6
_PNG_SAMPLES = {PNG_GRAY: 1, PNG_RGB: 3, PNG_PALETTE: 1, PNG_GRAY_ALPHA: 2, PNG_RGBA: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))

# BMP compression codes (biCompression).
BI_RGB, BI_RLE8, BI_RLE4, BI_BITFIELDS, BI_JPEG, BI_PNG, BI_ALPHABITFIELDS = 0, 1, 2, 3, 4, 5, 6


def samples(shape, bit_depth, seed):
    """Random integer samples ``shape`` in ``[0, 2**bit_depth)`` (uint16 holds every depth used here)."""
    return np.random.default_rng(seed).integers(0, 1 << bit_depth, shape).astype(np.uint16)


# ----------------------------------------------------------------------------------------------- PNG

def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_rows(pixels, bit_depth):
    """Filter-type-0 scanlines of ``pixels`` ``[h, w, samples]``: samples packed MSB first, 16-bit big-endian."""
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        return b""  # an empty Adam7 pass has no scanlines at all
    flat = pixels.reshape(height, width * channels).astype(np.uint16)
    if bit_depth == 16:
        packed = flat.astype(">u2").view(np.uint8).reshape(height, -1)
    elif bit_depth == 8:
        packed = flat.astype(np.uint8)
    else:
        per_byte = 8 // bit_depth
        padded = np.zeros((height, -(-flat.shape[1] // per_byte) * per_byte), np.uint16)
        padded[:, :flat.shape[1]] = flat
        groups = padded.reshape(height, -1, per_byte)
        shifts = (np.arange(per_byte - 1, -1, -1) * bit_depth).astype(np.uint16)
        packed = np.bitwise_or.reduce(groups << shifts, axis=2).astype(np.uint8)
    return b"".join(b"\0" + row.tobytes() for row in packed)


def png(pixels, color_type, bit_depth, *, palette=None, trns=None, interlace=False):
    """PNG bytes of integer ``pixels`` ``[H, W, samples]`` (palette indices for ``PNG_PALETTE``).

    ``palette``: ``[(r, g, b), ...]`` (PLTE); ``trns``: the tRNS chunk payload (alpha per palette
    entry, or the transparent gray/RGB sample values); ``interlace``: Adam7.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    assert channels == _PNG_SAMPLES[color_type], (color_type, pixels.shape)
    if interlace:
        raw = b"".join(_png_rows(pixels[y0::dy, x0::dx], bit_depth) for x0, y0, dx, dy in _ADAM7)
    else:
        raw = _png_rows(pixels, bit_depth)
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, int(interlace)))]
    if palette is not None:
        chunks.append(_png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1))))
    if trns is not None:
        chunks.append(_png_chunk(b"tRNS", bytes(trns)))
    chunks += [_png_chunk(b"IDAT", zlib.compress(raw, 6)), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


# ----------------------------------------------------------------------------------------------- BMP

def bmp_row_bytes(values, bits):
    """One unpadded BMP row from integer ``values`` ``[W]`` (palette indices, 16/32-bit words) or
    ``[W, 3]`` BGR bytes (24-bit): indices packed MSB first, words little-endian."""
    values = np.asarray(values)
    if bits == 24:
        return values.astype(np.uint8).tobytes()
    if bits in (16, 32):
        return values.astype("<u2" if bits == 16 else "<u4").tobytes()
    per_byte = 8 // bits
    padded = np.zeros(-(-len(values) // per_byte) * per_byte, np.uint16)
    padded[:len(values)] = values
    shifts = (np.arange(per_byte - 1, -1, -1) * bits).astype(np.uint16)
    return np.bitwise_or.reduce(padded.reshape(-1, per_byte) << shifts, axis=1).astype(np.uint8).tobytes()


def bmp(rows, width, height, bits, *, compression=BI_RGB, header_size=40, palette=None, clr_used=None,
        masks=None, top_down=False, off_bits=None, pad_rows=True, pixel_data=None, gap=b""):
    """BMP bytes with a ``header_size``-byte info header (40 = BITMAPINFOHEADER ... 124 = V5).

    ``rows``: unpadded row bytes, top row first (stored bottom-up unless ``top_down``, which writes a
    negative height); ``pixel_data`` replaces the stored rows with raw bytes (RLE, JPEG, ...).
    ``palette``: ``[(r, g, b), ...]`` written as BGR0 quads, ``clr_used`` the biClrUsed field (default 0).
    ``masks``: (red, green, blue[, alpha]); inside the header when it has room (52: RGB, >= 56:
    RGBA), else the three colour masks follow a 40-byte header. ``off_bits``: the bfOffBits field
    (default: right after the palette and ``gap``, bytes written between them). ``pad_rows=False``
    leaves out the padding to 4 bytes.
    """
    if pixel_data is None:
        stored = rows if top_down else rows[::-1]
        pixel_data = b"".join(row + (b"\0" * (-len(row) % 4) if pad_rows else b"") for row in stored)
    info = struct.pack("<IiiHHIIiiII", header_size, width, -height if top_down else height, 1, bits, compression,
                       len(pixel_data), 2835, 2835, 0 if clr_used is None else clr_used, 0)
    masks = tuple(masks or ())
    if header_size >= 52:
        room = 3 if header_size == 52 else 4
        info += struct.pack(f"<{room}I", *(masks + (0,) * room)[:room])
        if header_size >= 108:
            info += b"BGRs"  # bV4CSType: LCS_sRGB (little-endian 'sRGB')
        info += b"\0" * (header_size - len(info))
        after_header = b""
    else:
        info = info[:header_size] + b"\0" * max(0, header_size - len(info))
        after_header = struct.pack(f"<{len(masks[:3])}I", *masks[:3])
    quads = b"".join(struct.pack("<BBBB", b, g, r, 0) for r, g, b in (palette or ()))
    body = info + after_header + quads + gap
    if off_bits is None:
        off_bits = 14 + len(body)
    return b"BM" + struct.pack("<IHHI", 14 + len(body) + len(pixel_data), 0, 0, off_bits) + body + pixel_data


def os2_core_bmp(rows, width, height, bits, palette=()):
    """An OS/2 BMP with a 12-byte BITMAPCOREHEADER (16-bit sizes, 3-byte BGR palette entries)."""
    body = struct.pack("<IHHHH", 12, width, height, 1, bits) + b"".join(bytes((b, g, r)) for r, g, b in palette)
    pixel_data = b"".join(row + b"\0" * (-len(row) % 4) for row in rows[::-1])
    return b"BM" + struct.pack("<IHHI", 14 + len(body) + len(pixel_data), 0, 0, 14 + len(body)) + body + pixel_data
