"""In-graph BMP decoding (TensorFlow ops only) giving exactly the pixels of OpenCV's ``imdecode``.

``tf.io.decode_bmp`` handles 24/32-bit only and reads the 4th byte of a 32-bit BI_RGB pixel as
alpha (Windows screenshots came back fully transparent), and ``tf.io.decode_image`` returned the
indices of palette BMPs as a gray image; so the serving graph decodes BMP here, with
``tf.io.decode_raw`` and gathers. Supported, as OpenCV 4.12 (``IMREAD_UNCHANGED``) and
``ifan_tf.io.image_io`` decode them:

- 1/4/8-bit palette: colours from the palette (indices beyond biClrUsed are black, OpenCV's
  zero-filled palette); a palette whose first 2^bits entries are all gray gives a 1-channel image;
- 16-bit: BI_RGB (5-5-5) and BI_BITFIELDS 5-5-5 / 5-6-5, each component ``value << (8 - bits)``;
- 24-bit BGR; 32-bit BI_RGB: the 4th byte is reserved, ignored (opaque RGB, no alpha);
- 32-bit BI_BITFIELDS with a V3+ header (>= 56 bytes) and non-zero colour masks: each channel is
  ``uint8(float32((word & mask) >> shift) * (255.0f / float32(mask >> shift)))`` like OpenCV, with
  alpha from the alpha mask (255 when it is 0); other 32-bit BI_BITFIELDS (masks OpenCV ignores)
  only with the stored-order masks 0xFF0000, 0xFF00, 0xFF: opaque RGB, the 4th byte is not alpha;
- bottom-up (positive height) and top-down (negative height) rows, rows padded to 4 bytes,
  pixels from ``bfOffBits`` and the palette right after the info header, like OpenCV.

Everything else is refused from the header before decoding (``ifan_tf.serving.bmp_header``).
"""

import tensorflow as tf

from ifan_tf.serving import bmp_header
from ifan_tf.serving.bmp_header import MASKS_555, masks_are

PALETTE_SIZE = 256
_DEPTH_BRANCHES = (1, 4, 8, 16, 24, 32)


def decode_bmp(data):
    """Decodes BMP bytes (a scalar string) to uint8 ``[H, W, C]``: C = 1 (gray palette), 3 (RGB)
    or 4 (RGBA, 32-bit BI_BITFIELDS with masks), values as stored (0-255).

    ``InvalidArgumentError`` naming the problem for every unsupported or inconsistent header,
    before any pixel is read (``bmp_header.check_header``).
    """
    header = bmp_header.read_header(data)
    with tf.control_dependencies([bmp_header.check_header(header)]):
        data = tf.identity(data)
    rows = tf.io.decode_raw(tf.strings.substr(data, header.off_bits, header.rows * header.row_bytes), tf.uint8)
    rows = tf.reshape(rows, tf.stack([header.rows, header.row_bytes]))
    rows = tf.cond(header.top_down, lambda: rows, lambda: tf.reverse(rows, [0]))  # top row first
    width = header.width
    branches = [
        lambda: _palette_pixels(rows, width, 1, data, header),
        lambda: _palette_pixels(rows, width, 4, data, header),
        lambda: _palette_pixels(rows, width, 8, data, header),
        lambda: _pixels_16(rows, width, header),
        lambda: tf.reverse(tf.reshape(rows[:, :3 * width], tf.stack([header.rows, width, 3])), [2]),
        lambda: _pixels_32(rows, width, header),
    ]
    index = tf.argmax(tf.cast(tf.equal(header.bits, _DEPTH_BRANCHES), tf.int32), output_type=tf.int32)
    image = tf.switch_case(index, branches)
    return tf.ensure_shape(image, [None, None, None])


def _palette(data, header, bits):
    """``([256, 3] uint8 RGB palette, gray)``: the stored entries, then zeros (OpenCV's zero-filled
    palette); ``gray`` when the first ``2^bits`` entries all have red == green == blue."""
    entries = header.palette_entries
    quads = tf.io.decode_raw(tf.strings.substr(data, header.palette_offset, 4 * entries), tf.uint8)
    rgb = tf.reverse(tf.reshape(quads, tf.stack([entries, 4]))[:, :3], [1])  # B, G, R, reserved -> R, G, B
    rgb = tf.concat([rgb, tf.zeros([PALETTE_SIZE, 3], tf.uint8)], axis=0)[:PALETTE_SIZE]
    first = rgb[:1 << bits]
    gray = tf.reduce_all(tf.logical_and(tf.equal(first[:, 0], first[:, 1]), tf.equal(first[:, 1], first[:, 2])))
    return rgb, gray


def _palette_pixels(rows, width, bits, data, header):
    """Palette indices (``bits`` 1, 4 or 8, packed from the most significant bit) to colours."""
    used = tf.cast(rows[:, :(width * bits + 7) // 8], tf.int32)
    if bits == 8:
        indices = used
    else:
        shifts = tf.range(8 - bits, -1, -bits)  # the first pixel is in the high bits
        indices = tf.bitwise.bitwise_and(tf.bitwise.right_shift(used[:, :, None], shifts), (1 << bits) - 1)
        indices = tf.reshape(indices, tf.stack([tf.shape(used)[0], -1]))[:, :width]
    palette, gray = _palette(data, header, bits)
    colours = tf.gather(palette, indices)
    return tf.cond(gray, lambda: colours[:, :, :1], lambda: colours)


def _pixels_16(rows, width, header):
    """16-bit words (little-endian) to RGB: 5-5-5 (BI_RGB, or those masks) or 5-6-5, OpenCV's
    ``component << (8 - bits)`` (no bit replication)."""
    pairs = tf.cast(rows[:, :2 * width], tf.int32)
    words = tf.bitwise.bitwise_or(pairs[:, 0::2], tf.bitwise.left_shift(pairs[:, 1::2], 8))
    is_555 = tf.logical_or(tf.logical_not(header.bitfields), masks_are(header.masks, MASKS_555))

    def field(shift, keep):  # (words >> shift) & keep; a negative shift shifts left
        shifted = tf.bitwise.right_shift(words, shift) if shift >= 0 else tf.bitwise.left_shift(words, -shift)
        return tf.bitwise.bitwise_and(shifted, keep)

    blue = field(-3, 0xF8)
    green = tf.where(is_555, field(2, 0xF8), field(3, 0xFC))
    red = tf.where(is_555, field(7, 0xF8), field(8, 0xF8))
    return tf.cast(tf.stack([red, green, blue], axis=2), tf.uint8)


def _masked_channel(words, mask):
    """OpenCV's value of one 32-bit bit field: ``uint8(float32(field) * (255.0f / float32(mask >> shift)))``."""
    shift = tf.cast(tf.raw_ops.PopulationCount(x=tf.bitwise.bitwise_and(mask, -mask) - 1), tf.int64)
    field_max = tf.bitwise.right_shift(mask, shift)
    scale = tf.constant(255.0, tf.float32) / tf.cast(field_max, tf.float32)
    value = tf.cast(tf.bitwise.right_shift(tf.bitwise.bitwise_and(words, mask), shift), tf.float32) * scale
    return tf.cast(tf.clip_by_value(tf.floor(value), 0.0, 255.0), tf.uint8)  # C's float -> uchar truncation


def _pixels_32(rows, width, header):
    """32-bit pixels: B, G, R and a reserved byte (opaque RGB), or bit fields (RGBA) when OpenCV
    applies the masks (``BmpHeader.masked_32``)."""
    quads = tf.reshape(rows[:, :4 * width], tf.stack([header.rows, width, 4]))

    def masked():
        octets = tf.cast(quads, tf.int64)
        words = octets[:, :, 0]  # little-endian 32-bit words
        for index in range(1, 4):
            words = tf.bitwise.bitwise_or(words, tf.bitwise.left_shift(octets[:, :, index], 8 * index))
        red, green, blue = (_masked_channel(words, header.masks[i]) for i in range(3))
        alpha = tf.cond(tf.equal(header.masks[3], 0), lambda: tf.fill(tf.shape(red), tf.constant(255, tf.uint8)),
                        lambda: _masked_channel(words, header.masks[3]))
        return tf.stack([red, green, blue, alpha], axis=2)

    return tf.cond(header.masked_32, masked, lambda: tf.reverse(quads[:, :, :3], [2]))
