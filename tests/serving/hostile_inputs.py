"""Hostile serving requests (shared by the hostile-request test and the load test) and a PNG bomb."""
import struct
import zlib

import cv2
import numpy as np

from serving_test_images import png_bytes, random_pixels


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side=16000):
    """A valid 8-bit gray PNG of ``side x side`` zeros (16000: 256 MB of pixels in ~250 KB), built row by row."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def corrupt_ihdr_png():
    """A PNG whose first chunk is not IHDR (its header is corrupt)."""
    data = bytearray(png_bytes(random_pixels((8, 8, 3), seed=7)))
    data[12:16] = b"IHDX"
    return bytes(data)


def gif_bytes():
    """A 4x4 GIF (refused by the serving graph: GIF frames can declare any size)."""
    return (b"GIF89a\x04\x00\x04\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00\x00\x00\x00\x04\x00\x04\x00"
            b"\x00\x02\x04\x84\x8f\xa9\x0b\x00;")


def jpeg_bytes(pixels, quality=90):
    """JPEG bytes of RGB uint8 ``pixels``."""
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
