"""In-graph reading and checking of a BMP header (TensorFlow ops only; no pixel is decoded here).

The serving graph decodes BMP itself (``ifan_tf.serving.bmp_decoding``) and must give exactly the
pixels OpenCV's ``imdecode`` gives the predict CLI (``ifan_tf.io.image_io``), or refuse. Every variant
is decided from the header before anything is decoded or allocated; ``header_checks`` refuses, one
clear ``InvalidArgumentError`` each (checked in this order):

- a file too short for its headers, OS/2 BMPs (12-byte ``BITMAPCOREHEADER``: OpenCV decodes their
  colours as gray) and info headers other than 40, 52, 56, 108 or 124 bytes;
- compressed pixels: ``BI_RLE8``, ``BI_RLE4``, ``BI_JPEG``, ``BI_PNG``, ``BI_ALPHABITFIELDS`` and
  any other code than ``BI_RGB`` (0) and ``BI_BITFIELDS`` (3, 16 and 32 bits only);
- bit depths other than 1, 4, 8 (palette), 16, 24 and 32; an empty size (width < 1, height 0);
- 16-bit ``BI_BITFIELDS`` other than 5-5-5 / 5-6-5 masks after a 40-byte header (OpenCV reads
  the masks there whatever the header size);
- 32-bit ``BI_BITFIELDS`` whose masks OpenCV ignores (header < 56 bytes, or a zero red, green or
  blue mask) unless they are the standard ``0xFF0000, 0xFF00, 0xFF`` (the stored order);
- a palette of more than 256 colours or shorter than the file; ``bfOffBits`` beyond the file;
  pixel rows (padded to 4 bytes) that the file does not hold: checked by division, so a header
  declaring 2^31 x 2^31 pixels is refused without any multiplication overflowing or allocating.
"""

import dataclasses

import tensorflow as tf

FILE_HEADER_BYTES = 14
INFO_HEADER_SIZES = (40, 52, 56, 108, 124)  # BITMAPINFOHEADER, V2 (RGB masks), V3 (+alpha), V4, V5
MASKS_OFFSET = 54  # the 4 masks: after a 40-byte header, or inside a V2+ header (same bytes)
BITS_PER_PIXEL = (1, 4, 8, 16, 24, 32)
BI_RGB, BI_RLE8, BI_RLE4, BI_BITFIELDS, BI_JPEG, BI_PNG, BI_ALPHABITFIELDS = 0, 1, 2, 3, 4, 5, 6
MASKS_555 = (0x7C00, 0x3E0, 0x1F)  # (red, green, blue)
MASKS_565 = (0xF800, 0x7E0, 0x1F)
MASKS_BGRX = (0xFF0000, 0xFF00, 0xFF)
_READ_BYTES = MASKS_OFFSET + 16
_REFUSED_COMPRESSIONS = (
    (BI_RLE8, "run-length encoded BMP (BI_RLE8) is not supported; save it uncompressed"),
    (BI_RLE4, "run-length encoded BMP (BI_RLE4) is not supported; save it uncompressed"),
    (BI_JPEG, "BMP holding a JPEG (BI_JPEG) is not supported; send the JPEG itself"),
    (BI_PNG, "BMP holding a PNG (BI_PNG) is not supported; send the PNG itself"),
    (BI_ALPHABITFIELDS, "BMP with BI_ALPHABITFIELDS (compression 6) is not supported"),
)


@dataclasses.dataclass
class BmpHeader:
    """The fields of a BMP header as int64 scalars (``masks``: int64 ``[4]`` red, green, blue, alpha),
    ``length`` the size of the whole file, and what follows from them (nothing checked yet)."""

    length: tf.Tensor
    off_bits: tf.Tensor
    info_size: tf.Tensor
    width: tf.Tensor
    height: tf.Tensor  # signed: negative for top-down rows
    bits: tf.Tensor
    compression: tf.Tensor
    colors_used: tf.Tensor
    masks: tf.Tensor

    @property
    def rows(self):
        """Number of pixel rows (``|height|``)."""
        return tf.abs(self.height)

    @property
    def top_down(self):
        return self.height < 0

    @property
    def row_bytes(self):
        """Bytes of one stored row, padded to a multiple of 4 (>= 4 for any valid width)."""
        return (self.width * self.bits + 31) // 32 * 4

    @property
    def palette_offset(self):
        return FILE_HEADER_BYTES + self.info_size

    @property
    def palette_entries(self):
        """Palette entries stored after the info header (biClrUsed, or 2^bits when 0); 0 above 8 bits."""
        default = tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.clip_by_value(self.bits, 0, 8))
        return tf.where(self.bits <= 8, tf.where(self.colors_used == 0, default, self.colors_used),
                        tf.constant(0, tf.int64))

    @property
    def bitfields(self):
        return tf.equal(self.compression, BI_BITFIELDS)

    @property
    def masked_32(self):
        """True when OpenCV applies the masks of a 32-bit BI_BITFIELDS BMP: a V3+ header (>= 56 bytes)
        with non-zero red, green and blue masks; otherwise it copies the 4 stored bytes (B, G, R, X)."""
        return tf.logical_and(tf.logical_and(tf.equal(self.bits, 32), self.bitfields),
                              tf.logical_and(self.info_size >= 56, tf.reduce_all(self.masks[:3] != 0)))


def _little_endian(raw, offset, size):
    return tf.reduce_sum(raw[offset:offset + size] * tf.constant([256 ** i for i in range(size)], tf.int64))


def read_header(data):
    """The ``BmpHeader`` of BMP bytes ``data`` (a scalar string); missing bytes read as zeros."""
    start = tf.strings.join([tf.strings.substr(data, 0, _READ_BYTES), tf.constant(b"\0" * _READ_BYTES)])
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(start, 0, _READ_BYTES), tf.uint8), tf.int64)

    def signed(offset):
        value = _little_endian(raw, offset, 4)
        return tf.where(value >= 2 ** 31, value - 2 ** 32, value)

    return BmpHeader(
        length=tf.cast(tf.strings.length(data), tf.int64), off_bits=_little_endian(raw, 10, 4),
        info_size=_little_endian(raw, 14, 4), width=signed(18), height=signed(22), bits=_little_endian(raw, 28, 2),
        compression=_little_endian(raw, 30, 4), colors_used=_little_endian(raw, 46, 4),
        masks=tf.stack([_little_endian(raw, MASKS_OFFSET + 4 * i, 4) for i in range(4)]))


def masks_are(masks, expected):
    """True when the red, green and blue masks (``masks[:3]``) are ``expected``."""
    return tf.reduce_all(tf.equal(masks[:3], tf.constant(expected, tf.int64)))


def header_checks(header):
    """``(condition, message)`` pairs, in the order they are checked; every condition is a bool scalar
    computed without any failing op (no division by zero, no out-of-range read) whatever the bytes."""
    h = header
    masks_after_header = tf.logical_and(h.bitfields, tf.equal(h.info_size, 40))
    needed_header = h.palette_offset + tf.where(masks_after_header, tf.constant(12, tf.int64), tf.constant(0, tf.int64))
    palette_end = h.palette_offset + 4 * h.palette_entries
    row_bytes = tf.maximum(h.row_bytes, 1)
    rows_in_file = tf.maximum(h.length - h.off_bits, 0) // row_bytes
    bitfields_16 = tf.logical_and(h.bitfields, tf.equal(h.bits, 16))
    raw_32 = tf.logical_and(tf.logical_and(h.bitfields, tf.equal(h.bits, 32)), tf.logical_not(h.masked_32))
    masks = ["red, green, blue masks", h.masks[:3]]
    checks = [
        (h.length >= FILE_HEADER_BYTES + 4,
         ["BMP file is truncated:", h.length, "bytes, too short for its info header"]),
        (tf.not_equal(h.info_size, 12), ["OS/2 BMP (12-byte BITMAPCOREHEADER) is not supported (OpenCV decodes its "
                                         "colours as gray); save it as a Windows BMP"]),
        (tf.reduce_any(tf.equal(h.info_size, INFO_HEADER_SIZES)),
         ["BMP info header size", h.info_size,
          f"is not supported (only {', '.join(map(str, INFO_HEADER_SIZES))} bytes)"]),
        (h.length >= needed_header, ["BMP header is truncated: the file has", h.length, "bytes, its headers need",
                                     needed_header]),
    ]
    checks += [(tf.not_equal(h.compression, code), [message]) for code, message in _REFUSED_COMPRESSIONS]
    checks += [
        (tf.logical_or(tf.equal(h.compression, BI_RGB), h.bitfields),
         ["BMP compression", h.compression, "is not supported (only BI_RGB = 0 and BI_BITFIELDS = 3)"]),
        (tf.reduce_any(tf.equal(h.bits, BITS_PER_PIXEL)),
         ["BMP bit depth", h.bits, "is not supported (only 1, 4, 8, 16, 24 or 32 bits per pixel)"]),
        (tf.logical_or(tf.logical_not(h.bitfields), tf.logical_or(tf.equal(h.bits, 16), tf.equal(h.bits, 32))),
         ["BI_BITFIELDS BMP needs 16 or 32 bits per pixel, got", h.bits]),
        (tf.logical_and(h.width >= 1, tf.not_equal(h.height, 0)),
         ["BMP header gives an empty or invalid size: width", h.width, "height", h.height]),
        (tf.logical_or(tf.logical_not(bitfields_16), tf.equal(h.info_size, 40)),
         ["16-bit BI_BITFIELDS BMP with a", h.info_size, "byte header is not supported (OpenCV reads its masks after "
                                                         "the header; use a 40-byte header)"]),
        (tf.logical_or(tf.logical_not(bitfields_16), tf.logical_or(masks_are(h.masks, MASKS_555),
                                                                    masks_are(h.masks, MASKS_565))),
         ["16-bit BI_BITFIELDS BMP:", *masks, "are not supported (only 5-5-5 and 5-6-5)"]),
        (tf.logical_or(tf.logical_not(raw_32), masks_are(h.masks, MASKS_BGRX)),
         ["32-bit BI_BITFIELDS BMP with a", h.info_size, "byte header:", *masks, "are not supported (OpenCV applies "
          "masks only in a header of 56 bytes or more with non-zero colour masks, else only the stored order "
          "0xFF0000, 0xFF00, 0xFF = 16711680, 65280, 255)"]),
        (tf.logical_or(h.bits > 8, h.colors_used <= 256), ["BMP palette has", h.colors_used, "colours (at most 256)"]),
        (palette_end <= h.length, ["BMP palette is truncated: it ends at byte", palette_end, "the file has",
                                   h.length, "bytes"]),
        (h.off_bits <= h.length, ["BMP pixel data offset (bfOffBits)", h.off_bits, "is beyond the end of the file (",
                                  h.length, "bytes)"]),
        (h.rows <= rows_in_file, ["BMP pixel data is truncated: the header declares width", h.width, "height",
                                  h.height, "at", h.bits, "bits per pixel, rows of", h.row_bytes, "bytes from byte",
                                  h.off_bits, "but the file has", h.length, "bytes"]),
    ]
    return checks


def check_header(header):
    """One op that runs the ``header_checks`` in order: ``InvalidArgumentError`` naming the first failure."""
    check = tf.no_op()
    for condition, message in header_checks(header):
        with tf.control_dependencies([check]):
            check = tf.debugging.Assert(condition, ["image_bytes:", *message], summarize=4, name="check_bmp_header")
    return check


def checked_size(data):
    """int64 ``[2]`` (height, width) of BMP bytes ``data``, after every header check (nothing decoded)."""
    header = read_header(data)
    with tf.control_dependencies([check_header(header)]):
        return tf.stack([tf.identity(header.rows), header.width])
