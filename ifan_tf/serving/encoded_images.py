"""In-graph decoding and encoding of image bytes for the ``deblur_encoded`` serving signature.

Everything here is TensorFlow ops only, so it runs inside TF Serving without Python. The decoded
pixels are exactly those the predict CLI's decoder gives (``ifan_tf.io.image_io``, OpenCV), or the
request is refused (``tests/serving/test_decoder_agreement.py`` compares the two over a corpus):
- input: PNG (1/2/4/8/16-bit gray, 8/16-bit RGB, palette, gray+alpha, RGBA, interlaced; an RGB
  PNG with a tRNS colour key gets an alpha channel, as OpenCV gives it), JPEG (gray or YCbCr,
  decoded with libjpeg's accurate integer IDCT like OpenCV; CMYK/YCCK JPEGs are refused: OpenCV
  and TensorFlow convert them differently) or BMP (``ifan_tf.serving.bmp_decoding``: palette,
  16/24/32-bit, bit fields; RLE, OS/2 and other variants refused from the header). GIF is refused:
  its frames declare their own sizes, which giflib allocates before reading any pixel data, so a
  tiny GIF can demand gigabytes whatever its header says;
- the size an image declares in its header (``declared_size``: PNG IHDR, JPEG SOF via
  ``tf.io.extract_jpeg_shape``, the checked BMP header) is read without decoding, so the serving
  graph can refuse decompression bombs and unsupported variants before they are decoded
  (``ifan_tf.serving.limits``);
- the network sees RGB in [0, 1] (gray replicated to 3 channels, ``value * float32(1 / 255)`` or
  ``* float32(1 / 65535)`` for 16 bits, the CLI's arithmetic);
- output: PNG with the input's bit depth; gray inputs come back gray (mean of the 3 output
  channels), RGB as RGB, and an alpha channel is copied unchanged (gray+alpha comes back RGBA);
- bytes that are not such an image, or a corrupt or unsupported header, raise
  ``InvalidArgumentError`` naming the problem (TF Serving answers INVALID_ARGUMENT for that
  request; the server keeps running).
"""

import dataclasses

import tensorflow as tf

from ifan_tf.serving import bmp_decoding, bmp_header

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
BMP_SIGNATURE = b"BM"
_MAGIC_PREFIXES = (PNG_SIGNATURE, JPEG_SIGNATURE, BMP_SIGNATURE)
FORMAT_ERROR = "image_bytes is not a PNG, JPEG or BMP image"
_HEADER_BYTES = 32
PNG_RGB = 2  # IHDR colour type of RGB without alpha (the one whose tRNS OpenCV turns into alpha)
PNG_MAX_CHUNKS_BEFORE_DATA = 4096  # chunks read looking for tRNS before the first IDAT
JPEG_DCT_METHOD = "INTEGER_ACCURATE"  # libjpeg's JDCT_ISLOW, OpenCV's: identical pixels


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
    start = tf.strings.join([tf.strings.substr(data, 0, _HEADER_BYTES), tf.constant(b"\0" * _HEADER_BYTES)])
    return tf.strings.substr(start, 0, _HEADER_BYTES)


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


def _check_jpeg_components(shape):
    """Assert op: a JPEG of 1 (gray) or 3 (YCbCr) components; ``shape`` from ``extract_jpeg_shape``."""
    return tf.debugging.Assert(
        tf.logical_or(tf.equal(shape[2], 1), tf.equal(shape[2], 3)),
        ["image_bytes: JPEG with", shape[2], "colour components (CMYK or YCCK) is not supported: OpenCV and "
         "TensorFlow convert it to RGB differently; convert it to an RGB JPEG or PNG"], name="check_jpeg_components")


def _jpeg_size(data, header):
    shape = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)  # reads the markers only, not the pixels
    with tf.control_dependencies([_check_jpeg_components(shape)]):
        return tf.identity(shape[:2])


def _assert_corrupt(condition, kind, header):
    return tf.debugging.Assert(condition, [f"image_bytes: corrupt {kind} header; its first bytes are",
                                           _first_bytes(header, 16)], name="check_image_header", summarize=16)


def declared_size(data):
    """int64 ``[2]`` (height, width) an encoded image (scalar string) declares in its header.

    Nothing is decoded; raises ``InvalidArgumentError`` for bytes that are not PNG/JPEG/BMP, whose
    header is corrupt, or that are a variant the graph does not decode (CMYK JPEG, BMP variants:
    ``ifan_tf.serving.bmp_header``).
    """
    header = _header(data)
    with tf.control_dependencies([_check_format(header)]):
        header = tf.identity(header)
    branch = tf.where(_starts_with(header, PNG_SIGNATURE), 0, tf.where(_starts_with(header, JPEG_SIGNATURE), 1, 2))
    return tf.switch_case(branch, [lambda: _png_size(data, header), lambda: _jpeg_size(data, header),
                                   lambda: bmp_header.checked_size(data)])


def _to_unit(image, max_value):
    """Integer pixels to float32 in [0, 1] as ``image_io`` does: ``value * float32(1 / max_value)``."""
    return tf.cast(image, tf.float32) * tf.constant(1.0 / max_value, tf.float32)


def _png_has_colour_key(data):
    """Bool scalar: a ``tRNS`` chunk precedes the first ``IDAT`` (walks the chunks; nothing decoded).

    ``InvalidArgumentError`` if there are more than ``PNG_MAX_CHUNKS_BEFORE_DATA`` chunks before it.
    """
    data = tf.reshape(data, [])  # scalars throughout the loop, whatever the caller's static shape
    length = tf.cast(tf.strings.length(data), tf.int64)

    def chunk_at(position):
        start = tf.strings.substr(data, tf.minimum(position, length), 8)
        start = tf.strings.substr(tf.strings.join([start, tf.constant(b"\0" * 8)]), 0, 8)
        return _unsigned(start, 0, 4, True), tf.strings.substr(start, 4, 4)

    def body(position, found, finished):
        size, kind = chunk_at(position)
        at_data = tf.logical_or(tf.equal(kind, b"IDAT"), tf.equal(kind, b"IEND"))
        finished = tf.logical_or(at_data, position + 8 > length)  # malformed: decode_png will say so
        found = tf.logical_or(found, tf.logical_and(tf.logical_not(finished), tf.equal(kind, b"tRNS")))
        return position + 12 + size, found, finished

    _, found, finished = tf.while_loop(
        lambda position, found, finished: tf.logical_not(finished), body,
        (tf.constant(len(PNG_SIGNATURE), tf.int64), tf.constant(False), tf.constant(False)),
        maximum_iterations=PNG_MAX_CHUNKS_BEFORE_DATA)
    check = tf.debugging.Assert(finished, [f"image_bytes: PNG with more than {PNG_MAX_CHUNKS_BEFORE_DATA} chunks "
                                           "before its image data is not supported"], name="check_png_chunks")
    with tf.control_dependencies([check]):
        return tf.identity(found)


def _decode_png(data, header, sixteen_bit):
    """float32 ``[H, W, C]`` in [0, 1]; C = 4 for an RGB PNG with a tRNS colour key (OpenCV's alpha)."""
    colour_type = _unsigned(header, 25, 1, True)
    colour_key = tf.cond(tf.equal(colour_type, PNG_RGB), lambda: _png_has_colour_key(data), lambda: tf.constant(False))

    def decode(channels, dtype, max_value):
        return lambda: _to_unit(tf.io.decode_png(data, channels=channels, dtype=dtype), max_value)

    return tf.cond(sixteen_bit,
                   lambda: tf.cond(colour_key, decode(4, tf.uint16, 65535), decode(0, tf.uint16, 65535)),
                   lambda: tf.cond(colour_key, decode(4, tf.uint8, 255), decode(0, tf.uint8, 255)))


def _decode_jpeg(data):
    with tf.control_dependencies([_check_jpeg_components(tf.io.extract_jpeg_shape(data))]):
        data = tf.identity(data)
    return _to_unit(tf.io.decode_jpeg(data, channels=0, dct_method=JPEG_DCT_METHOD), 255)


def decode(data):
    """Decodes one encoded image (scalar string tensor) into a ``DecodedTensor``.

    Check ``declared_size`` against a pixel limit first: decoding allocates what the header declares.
    """
    header = _header(data)
    with tf.control_dependencies([_check_format(header)]):
        data = tf.identity(data)
    is_png = _starts_with(header, PNG_SIGNATURE)
    png_depth = tf.io.decode_raw(tf.strings.substr(header, 24, 1), tf.uint8)[0]  # IHDR bit depth
    sixteen_bit = tf.logical_and(is_png, tf.equal(png_depth, 16))
    branch = tf.where(is_png, 0, tf.where(_starts_with(header, JPEG_SIGNATURE), 1, 2))
    image = tf.switch_case(branch, [lambda: _decode_png(data, header, sixteen_bit), lambda: _decode_jpeg(data),
                                    lambda: _to_unit(bmp_decoding.decode_bmp(data), 255)])
    image = tf.ensure_shape(image, [None, None, None])
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
