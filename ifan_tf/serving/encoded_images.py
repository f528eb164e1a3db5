"""In-graph decoding and encoding of image bytes for the ``deblur_encoded`` serving signature.

Everything here is TensorFlow ops only, so it runs inside TF Serving without Python.
Conventions (the same as ``ifan_tf.image_io`` for the predict CLI):
- input: PNG (8 or 16 bit), JPEG or BMP, gray, gray+alpha, RGB or RGBA. GIF is refused: its frames
  declare their own sizes, which giflib allocates before reading any pixel data, so a tiny GIF
  can demand gigabytes whatever its header says;
- the size an image declares in its header (``declared_size``: PNG IHDR, JPEG SOF via
  ``tf.io.extract_jpeg_shape``, BMP info header) is read without decoding, so the serving graph
  can refuse decompression bombs before they are decoded (``ifan_tf.serving.limits``);
- the network sees RGB in [0, 1] (gray replicated to 3 channels, 16-bit values / 65535);
- output: PNG with the input's bit depth; gray inputs come back gray (mean of the 3 output
  channels), RGB as RGB, and an alpha channel is copied unchanged (gray+alpha comes back RGBA);
- bytes that are not such an image, or a corrupt header, raise ``InvalidArgumentError`` (TF Serving
  answers with an error status for that request; the server keeps running).
"""

import dataclasses

import tensorflow as tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
BMP_SIGNATURE = b"BM"
_MAGIC_PREFIXES = (PNG_SIGNATURE, JPEG_SIGNATURE, BMP_SIGNATURE)
FORMAT_ERROR = "image_bytes is not a PNG, JPEG or BMP image"
_HEADER_BYTES = 32


@dataclasses.dataclass
class DecodedTensor:
    """A decoded image in the graph: ``rgb`` ``[H, W, 3]`` float32 in [0, 1], ``alpha`` ``[H, W, 1]``
    float32 (zeros-width ``[H, W, 0]`` when absent), and scalar bools ``gray`` and ``sixteen_bit``."""

    rgb: tf.Tensor
    alpha: tf.Tensor
    gray: tf.Tensor
    sixteen_bit: tf.Tensor


def _header(data):
    """The first 32 bytes of ``data`` (a scalar string), zero-padded if shorter."""
    return tf.strings.substr(tf.strings.join([data, tf.constant(b"\0" * _HEADER_BYTES)]), 0, _HEADER_BYTES)


def _check_format(header):
    known = tf.reduce_any(tf.stack([
        tf.equal(tf.strings.substr(header, 0, len(magic)), magic) for magic in _MAGIC_PREFIXES]))
    return tf.debugging.Assert(known, [FORMAT_ERROR + "; its first bytes are", _first_bytes(header, 8)],
                               name="check_image_format", summarize=8)


def _first_bytes(header, count):
    """The first ``count`` header bytes as uint8 numbers (error messages must stay printable text)."""
    return tf.io.decode_raw(tf.strings.substr(header, 0, count), tf.uint8)


def _starts_with(header, magic):
    return tf.equal(tf.strings.substr(header, 0, len(magic)), magic)


def _unsigned(header, offset, length, big_endian):
    """int64 value of the unsigned integer stored in ``header`` bytes ``[offset, offset + length)``."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(header, offset, length), tf.uint8), tf.int64)
    if big_endian:
        raw = tf.reverse(raw, [0])
    return tf.reduce_sum(raw * tf.constant([256 ** i for i in range(length)], tf.int64))


def _png_size(data, header):
    ihdr = _assert_corrupt(tf.equal(tf.strings.substr(header, 12, 4), b"IHDR"), "PNG", header)
    with tf.control_dependencies([ihdr]):
        return tf.stack([_unsigned(header, 20, 4, True), _unsigned(header, 16, 4, True)])


def _jpeg_size(data, header):
    return tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)  # reads the markers only, not the pixels


def _bmp_size(data, header):
    def signed(offset):
        value = _unsigned(header, offset, 4, False)
        return tf.where(value >= 2 ** 31, value - 2 ** 32, value)

    return tf.stack([tf.abs(signed(22)), signed(18)])  # a negative height means top-down rows


def _assert_corrupt(condition, kind, header):
    return tf.debugging.Assert(condition, [f"image_bytes: corrupt {kind} header; its first bytes are",
                                           _first_bytes(header, 16)], name="check_image_header", summarize=16)


def declared_size(data):
    """int64 ``[2]`` (height, width) an encoded image (scalar string) declares in its header.

    Nothing is decoded; raises ``InvalidArgumentError`` for bytes that are not PNG/JPEG/BMP or
    whose header is corrupt.
    """
    header = _header(data)
    with tf.control_dependencies([_check_format(header)]):
        header = tf.identity(header)
    branch = tf.where(_starts_with(header, PNG_SIGNATURE), 0, tf.where(_starts_with(header, JPEG_SIGNATURE), 1, 2))
    return tf.switch_case(branch, [lambda: _png_size(data, header), lambda: _jpeg_size(data, header),
                                   lambda: _bmp_size(data, header)])


def decode(data):
    """Decodes one encoded image (scalar string tensor) into a ``DecodedTensor``.

    Check ``declared_size`` against a pixel limit first: decoding allocates what the header declares.
    """
    header = _header(data)
    with tf.control_dependencies([_check_format(header)]):
        data = tf.identity(data)
    is_png = tf.equal(tf.strings.substr(header, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    png_depth = tf.io.decode_raw(tf.strings.substr(header, 24, 1), tf.uint8)[0]  # IHDR bit depth
    sixteen_bit = tf.logical_and(is_png, tf.equal(png_depth, 16))

    def decode_16():
        return tf.cast(tf.io.decode_png(data, channels=0, dtype=tf.uint16), tf.float32) / 65535.0

    def decode_8():
        image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        return tf.cast(image, tf.float32) / 255.0

    image = tf.cond(sixteen_bit, decode_16, decode_8)
    channels = tf.shape(image)[2]
    rgb = tf.cond(channels >= 3, lambda: image[:, :, :3], lambda: tf.tile(image[:, :, :1], [1, 1, 3]))
    rgb = tf.ensure_shape(rgb, [None, None, 3])
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    alpha = tf.cond(has_alpha, lambda: image[:, :, -1:], lambda: image[:, :, :0])
    return DecodedTensor(rgb=rgb, alpha=alpha, gray=channels <= 2, sixteen_bit=sixteen_bit)


def _quantize(image, max_value):
    return tf.round(tf.clip_by_value(image, 0.0, 1.0) * max_value)


def encode_like(deblurred, decoded):
    """PNG bytes (scalar string) of ``deblurred`` ``[H, W, 3]`` float32 laid out like ``decoded``."""
    has_alpha = tf.shape(decoded.alpha)[2] > 0
    gray_only = tf.logical_and(decoded.gray, tf.logical_not(has_alpha))
    color = tf.cond(gray_only, lambda: tf.reduce_mean(deblurred, axis=2, keepdims=True), lambda: deblurred)
    image = tf.concat([color, decoded.alpha], axis=2)
    return tf.cond(
        decoded.sixteen_bit,
        lambda: tf.io.encode_png(tf.cast(_quantize(image, 65535.0), tf.uint16)),
        lambda: tf.io.encode_png(tf.cast(_quantize(image, 255.0), tf.uint8)),
    )
