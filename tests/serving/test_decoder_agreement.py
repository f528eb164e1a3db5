"""The serving graph's decoder (``encoded_images.decode``) agrees with the predict CLI's (OpenCV).

Every image of a generated corpus (PNG bit depths, palettes, tRNS, interlacing; JPEG sampling,
gray, progressive; every BMP variant, written byte by byte in ``image_corpus``) is decoded by both:
either they give exactly the same float32 RGB and alpha that reach the network (and the same
output layout: gray, RGB or RGBA, 8 or 16 bits), or the serving graph refuses it with an
``InvalidArgumentError`` naming the variant, read from the header before anything is decoded
(``declared_size`` refuses it too). Random corruptions of BMP headers keep that property.

Refused (``REFUSED``, with the reason per case): RLE-compressed BMP (the CLI decodes them),
OS/2 BMPs (12-byte headers: OpenCV decodes their colours as gray, the CLI refuses them too; 64-byte
OS/2 2.x headers: the CLI decodes them), BMP holding a JPEG/PNG, BI_ALPHABITFIELDS, bit depths
0/2/64, 16-bit bit fields other than 5-5-5/5-6-5 after a 40-byte header, 32-bit bit fields OpenCV
ignores unless they are in the stored order, CMYK JPEG (OpenCV and TensorFlow convert CMYK to RGB
differently; the CLI decodes it), and hostile headers (truncated pixels or palette, bfOffBits
beyond the file, absurd header or image sizes). JPEG cannot hold alpha: no such case.
"""
import io
import re
import struct

import cv2
import numpy as np
import pytest
import tensorflow as tf

from image_corpus import (BI_ALPHABITFIELDS, BI_BITFIELDS, BI_JPEG, BI_PNG, BI_RLE4, BI_RLE8, PNG_GRAY,
                          PNG_GRAY_ALPHA, PNG_PALETTE, PNG_RGB, PNG_RGBA, bmp, bmp_row_bytes, os2_core_bmp, png,
                          samples)
from serving_test_images import random_pixels
from ifan_tf.inference.predictor import Predictor
from ifan_tf.io import image_io
from ifan_tf.serving import encoded_images

H, W = 11, 13  # odd width: every BMP depth has row padding
COLOURS = [(int(r), int(g), int(b)) for r, g, b in samples((256, 3), 8, seed=99)]
GRAYS = [(v, v, v) for v in range(0, 256)]


def _rows(values, bits):
    return [bmp_row_bytes(row, bits) for row in values]


def _bmp_palette(bits, seed, palette=COLOURS, **options):
    return bmp(_rows(samples((H, W), bits, seed), bits), W, H, bits, palette=palette[:1 << bits], **options)


def _bmp_words(bits, seed, words=None, height=H, width=W, **options):
    values = samples((height, width), 16, seed) if words is None else words
    if bits == 32 and words is None:
        values = (values.astype(np.uint32) << 16) | samples((height, width), 16, seed + 1)
    return bmp(_rows(values, bits), width, height, bits, **options)


def _bmp24(seed, height=H, width=W, **options):
    return bmp(_rows(samples((height, width, 3), 8, seed), 24), width, height, 24, **options)


def _rle8(indices):
    return b"".join(b"".join(bytes((1, int(i))) for i in row) + b"\0\0" for row in indices[::-1]) + b"\0\1"


def _rle4(indices):
    return b"".join(b"".join(bytes((1, int(i) << 4)) for i in row) + b"\0\0" for row in indices[::-1]) + b"\0\1"


def _jpeg(pixels, *params):
    bgr = np.ascontiguousarray(pixels[:, :, ::-1]) if pixels.ndim == 3 else pixels
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90, *params])[1].tobytes()


def _with_exif_orientation(jpeg, orientation=6):
    """The JPEG with an APP1 Exif segment saying "rotate" (OpenCV's IMREAD_UNCHANGED and TF both ignore it)."""
    tiff = b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0" * 4
    segment = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + jpeg[2:]


def _cmyk_jpeg():
    pil = pytest.importorskip("PIL.Image", reason="Pillow (not a dependency of ifan_tf) writes the CMYK JPEG")
    buffer = io.BytesIO()
    pil.fromarray(random_pixels((H, W, 3), seed=5)).convert("CMYK").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


PHOTO = random_pixels((H, W, 3), seed=4)
MASKS_ARGB = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)
AGREE = {
    # PNG: every bit depth and colour type, palettes with and without tRNS, colour keys, Adam7
    **{f"png_gray{d}": lambda d=d: png(samples((H, W), d, d), PNG_GRAY, d) for d in (1, 2, 4, 8, 16)},
    "png_gray8_trns": lambda: png(samples((H, W), 3, 1), PNG_GRAY, 8, trns=struct.pack(">H", 3)),
    "png_rgb8": lambda: png(samples((H, W, 3), 8, 2), PNG_RGB, 8),
    "png_rgb16": lambda: png(samples((H, W, 3), 16, 3), PNG_RGB, 16),
    "png_rgb8_trns": lambda: png(samples((H, W, 3), 2, 4), PNG_RGB, 8, trns=struct.pack(">HHH", 1, 2, 3)),
    "png_rgb16_trns": lambda: png(samples((H, W, 3), 2, 5), PNG_RGB, 16, trns=struct.pack(">HHH", 1, 2, 3)),
    "png_rgba8": lambda: png(samples((H, W, 4), 8, 6), PNG_RGBA, 8),
    "png_rgba16": lambda: png(samples((H, W, 4), 16, 7), PNG_RGBA, 16),
    "png_gray_alpha8": lambda: png(samples((H, W, 2), 8, 8), PNG_GRAY_ALPHA, 8),
    "png_gray_alpha16": lambda: png(samples((H, W, 2), 16, 9), PNG_GRAY_ALPHA, 16),
    "png_palette8": lambda: png(samples((H, W), 8, 10), PNG_PALETTE, 8, palette=COLOURS),
    "png_palette8_trns": lambda: png(samples((H, W), 8, 11), PNG_PALETTE, 8, palette=COLOURS,
                                     trns=bytes(range(0, 250, 3))),
    "png_palette4": lambda: png(samples((H, W), 4, 12), PNG_PALETTE, 4, palette=COLOURS[:16]),
    "png_palette2_trns": lambda: png(samples((H, W), 2, 13), PNG_PALETTE, 2, palette=COLOURS[:4], trns=b"\0\x80"),
    "png_palette1_gray": lambda: png(samples((H, W), 1, 14), PNG_PALETTE, 1, palette=[(0, 0, 0), (255, 255, 255)]),
    "png_interlaced_rgb8": lambda: png(samples((H, W, 3), 8, 15), PNG_RGB, 8, interlace=True),
    "png_interlaced_gray1": lambda: png(samples((H, W), 1, 16), PNG_GRAY, 1, interlace=True),
    "png_interlaced_gray16": lambda: png(samples((H, W), 16, 17), PNG_GRAY, 16, interlace=True),
    "png_interlaced_palette_trns": lambda: png(samples((H, W), 8, 18), PNG_PALETTE, 8, palette=COLOURS,
                                               trns=bytes(range(0, 250, 5)), interlace=True),
    "png_interlaced_rgba16": lambda: png(samples((H, W, 4), 16, 19), PNG_RGBA, 16, interlace=True),
    "png_1x1": lambda: png(samples((1, 1, 3), 8, 20), PNG_RGB, 8),
    # JPEG: chroma subsampling, gray, progressive, an Exif orientation (not applied by either)
    "jpeg_420": lambda: _jpeg(PHOTO),
    "jpeg_444": lambda: _jpeg(PHOTO, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
    "jpeg_422": lambda: _jpeg(PHOTO, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
    "jpeg_gray": lambda: _jpeg(PHOTO[:, :, 1]),
    "jpeg_progressive": lambda: _jpeg(PHOTO, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "jpeg_exif_orientation": lambda: _with_exif_orientation(_jpeg(PHOTO)),
    # BMP palettes: colours, gray palettes (1 channel), biClrUsed below and above 2^bits, indices
    # beyond the palette (black, OpenCV's zero-filled palette), top-down rows, V5 header
    "bmp1_palette": lambda: _bmp_palette(1, 30, palette=[(200, 30, 40), (10, 220, 90)]),
    "bmp1_black_white": lambda: _bmp_palette(1, 31, palette=[(0, 0, 0), (255, 255, 255)]),
    "bmp4_palette": lambda: _bmp_palette(4, 32),
    "bmp4_gray_palette": lambda: _bmp_palette(4, 33, palette=GRAYS[::17]),
    "bmp4_palette_12_colours_indices_beyond": lambda: _bmp_palette(4, 34, palette=COLOURS[:12], clr_used=12),
    "bmp4_palette_20_colours": lambda: bmp(_rows(samples((H, W), 4, 35), 4), W, H, 4, palette=COLOURS[:20],
                                           clr_used=20),
    "bmp8_palette": lambda: _bmp_palette(8, 36),
    "bmp8_palette_top_down": lambda: _bmp_palette(8, 37, top_down=True),
    "bmp8_palette_5_colours_indices_beyond": lambda: _bmp_palette(8, 38, palette=COLOURS[:5], clr_used=5),
    "bmp8_gray_palette": lambda: _bmp_palette(8, 39, palette=GRAYS),
    "bmp8_gray_palette_v5_header": lambda: _bmp_palette(8, 40, palette=GRAYS, header_size=124),
    "bmp8_palette_gap_before_pixels": lambda: _bmp_palette(8, 41, gap=b"\xaa" * 10),
    # 16-bit: 5-5-5 (BI_RGB, top bit set at random) and bit fields 5-5-5 / 5-6-5
    "bmp16_555": lambda: _bmp_words(16, 50),
    "bmp16_555_top_down": lambda: _bmp_words(16, 51, top_down=True),
    "bmp16_bitfields_555": lambda: _bmp_words(16, 52, compression=BI_BITFIELDS, masks=(0x7C00, 0x3E0, 0x1F)),
    "bmp16_bitfields_565": lambda: _bmp_words(16, 53, compression=BI_BITFIELDS, masks=(0xF800, 0x7E0, 0x1F)),
    # 24-bit, both row orders, 1x1, a V5 header
    "bmp24": lambda: _bmp24(60),
    "bmp24_top_down": lambda: _bmp24(61, top_down=True),
    "bmp24_1x1": lambda: _bmp24(62, height=1, width=1),
    "bmp24_v5_header": lambda: _bmp24(63, header_size=124),
    # 32-bit BI_RGB: the 4th byte is reserved (random, or 0 as in Windows screenshots) -> opaque RGB
    "bmp32_rgb": lambda: _bmp_words(32, 70),
    "bmp32_rgb_zero_4th_byte": lambda: _bmp_words(32, 71, words=samples((H, W), 16, 71).astype(np.uint32) * 255),
    "bmp32_rgb_v5_header": lambda: _bmp_words(32, 72, header_size=124),
    # 32-bit bit fields OpenCV ignores, in the stored order: opaque RGB (the 4th byte is not alpha)
    "bmp32_bitfields_bgrx": lambda: _bmp_words(32, 73, compression=BI_BITFIELDS, masks=MASKS_ARGB[:3]),
    "bmp32_bitfields_bgrx_v2_header": lambda: _bmp_words(32, 74, compression=BI_BITFIELDS, masks=MASKS_ARGB[:3],
                                                         header_size=52),
    # 32-bit bit fields OpenCV applies (V3+ header): RGBA, alpha 255 without an alpha mask
    "bmp32_bitfields_argb_v3_header": lambda: _bmp_words(32, 75, compression=BI_BITFIELDS, masks=MASKS_ARGB,
                                                         header_size=56),
    "bmp32_bitfields_argb_v5_header": lambda: _bmp_words(32, 76, compression=BI_BITFIELDS, masks=MASKS_ARGB,
                                                         header_size=124, top_down=True),
    "bmp32_bitfields_xrgb_v4_header": lambda: _bmp_words(32, 77, compression=BI_BITFIELDS,
                                                         masks=MASKS_ARGB[:3] + (0,), header_size=108),
    "bmp32_bitfields_rgba_order_v5": lambda: _bmp_words(32, 78, compression=BI_BITFIELDS,
                                                        masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000), header_size=124),
    "bmp32_bitfields_10_10_10_2_v5": lambda: _bmp_words(32, 79, compression=BI_BITFIELDS, header_size=124,
                                                        masks=(0x3FF00000, 0xFFC00, 0x3FF, 0xC0000000)),
    "bmp32_bitfields_odd_widths_v5": lambda: _bmp_words(32, 80, compression=BI_BITFIELDS, header_size=124,
                                                        masks=(0xFFFF0000, 0xF000, 0x7, 0xFF8)),
}

_HUGE = (1 << 31) - 1
# name -> (bytes, what the InvalidArgumentError says, why the serving graph refuses it)
REFUSED = {
    "bmp8_rle8": (lambda: bmp([], W, H, 8, compression=BI_RLE8, palette=COLOURS, pixel_data=_rle8(
        samples((H, W), 8, 90))), "BI_RLE8", "RLE is not decoded in the graph (OpenCV decodes it)"),
    "bmp4_rle4": (lambda: bmp([], W, H, 4, compression=BI_RLE4, palette=COLOURS[:16], pixel_data=_rle4(
        samples((H, W), 4, 91))), "BI_RLE4", "RLE is not decoded in the graph (OpenCV decodes it)"),
    "bmp_jpeg_inside": (lambda: bmp([], W, H, 0, compression=BI_JPEG, pixel_data=_jpeg(PHOTO)), "BI_JPEG",
                        "a JPEG inside a BMP (OpenCV refuses it too)"),
    "bmp_png_inside": (lambda: bmp([], W, H, 0, compression=BI_PNG, pixel_data=png(samples((H, W, 3), 8, 92),
                                                                                 PNG_RGB, 8)),
                       "BI_PNG", "a PNG inside a BMP (OpenCV refuses it too)"),
    "bmp32_alphabitfields": (lambda: _bmp_words(32, 93, compression=BI_ALPHABITFIELDS, masks=MASKS_ARGB,
                                                header_size=56), "BI_ALPHABITFIELDS", "OpenCV refuses it too"),
    "bmp_os2_core_header": (lambda: os2_core_bmp(_rows(samples((H, W, 3), 8, 94), 24), W, H, 24),
                            "OS/2 BMP", "OpenCV decodes OS/2 BMPs as gray, losing their colours"),
    "bmp_os2_v2_header": (lambda: _bmp24(95, header_size=64), "info header size", "OS/2 2.x header (64 bytes)"),
    "bmp_depth_0": (lambda: bmp([b"\0" * 4] * H, W, H, 0), "bit depth", "no such depth (OpenCV refuses it too)"),
    "bmp_depth_2": (lambda: bmp(_rows(samples((H, W), 2, 96), 2), W, H, 2, palette=COLOURS[:4]), "bit depth",
                    "2-bit BMPs are Windows CE only (OpenCV refuses them too)"),
    "bmp_depth_64": (lambda: bmp([b"\0" * 8 * W] * H, W, H, 64), "bit depth", "no 64-bit BMP (OpenCV refuses it too)"),
    "bmp16_bitfields_444": (lambda: _bmp_words(16, 97, compression=BI_BITFIELDS, masks=(0xF00, 0xF0, 0xF)),
                            "only 5-5-5 and 5-6-5", "OpenCV refuses other 16-bit masks"),
    "bmp16_bitfields_565_v5_header": (lambda: _bmp_words(16, 98, compression=BI_BITFIELDS, header_size=124,
                                                         masks=(0xF800, 0x7E0, 0x1F)),
                                      "16-bit BI_BITFIELDS BMP with a", "OpenCV reads the masks after the header"),
    "bmp32_bitfields_rgbx_order_40_byte_header": (
        lambda: _bmp_words(32, 99, compression=BI_BITFIELDS, masks=(0xFF, 0xFF00, 0xFF0000)),
        "32-bit BI_BITFIELDS BMP with a", "OpenCV ignores these masks: its colours would be swapped"),
    "bmp32_bitfields_zero_red_mask_v5": (
        lambda: _bmp_words(32, 100, compression=BI_BITFIELDS, masks=(0, 0xFF00, 0xFF, 0xFF000000), header_size=124),
        "32-bit BI_BITFIELDS BMP with a", "OpenCV ignores masks when one is zero"),
    # hostile headers
    "bmp_truncated_pixels": (lambda: _bmp24(101)[:-(W * 3 + 1) * 3], "pixel data is truncated",
                             "3 rows missing"),
    "bmp_missing_last_row_padding": (lambda: _bmp24(102)[:-1], "pixel data is truncated",
                                     "OpenCV also needs the last row's padding"),
    "bmp_off_bits_beyond_file": (lambda: _bmp24(103, off_bits=1 << 20), "beyond the end of the file",
                                 "bfOffBits points past the data"),
    "bmp_off_bits_max": (lambda: _bmp24(104, off_bits=0xFFFFFFFF), "beyond the end of the file",
                         "bfOffBits 2^32 - 1"),
    "bmp_absurd_info_header_size": (lambda: _bmp24(105)[:14] + struct.pack("<I", 0xFFFFFFF0) + _bmp24(105)[18:],
                                    "info header size", "biSize 2^32 - 16"),
    "bmp_absurd_size_few_bytes": (lambda: bmp([b"\0" * 4], _HUGE, _HUGE, 1, palette=COLOURS[:2]),
                                  "pixel data is truncated", "declares (2^31-1)^2 pixels in 4 bytes"),
    "bmp_absurd_top_down_height": (lambda: bmp([b"\0" * 4], 1, 1, 24)[:22] + struct.pack("<i", -(1 << 31))
                                   + bmp([b"\0" * 4], 1, 1, 24)[26:], "pixel data is truncated", "height -2^31"),
    "bmp_negative_width": (lambda: _bmp24(106, width=W)[:18] + struct.pack("<i", -W) + _bmp24(106)[22:],
                           "empty or invalid size", "width < 0"),
    "bmp_zero_height": (lambda: bmp([], W, 0, 24), "empty or invalid size", "height 0"),
    "bmp_palette_300_colours": (lambda: _bmp_palette(8, 107, clr_used=300), "colours (at most 256)",
                                "biClrUsed above 256 (OpenCV asserts)"),
    "bmp_palette_truncated": (lambda: _bmp_palette(8, 108)[:54 + 100], "palette is truncated",
                              "the file ends inside the palette"),
    "bmp_header_truncated": (lambda: _bmp24(109)[:30], "header is truncated", "the file ends inside the header"),
    "bmp_file_header_only": (lambda: _bmp24(110)[:16], "too short for its info header", "16 bytes"),
    # JPEG
    "jpeg_cmyk": (_cmyk_jpeg, "CMYK", "OpenCV and TensorFlow convert CMYK to RGB differently (off by 1)"),
}


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _served(data):
    """The serving graph's decoding of one image (a scalar, as in ``deblur_encoded``'s map_fn)."""
    decoded = encoded_images.decode(data)
    return decoded.rgb, decoded.alpha, decoded.gray, decoded.sixteen_bit


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _declared(data):
    return encoded_images.declared_size(data)


def _assert_same_decoding(name, data, served):
    """``served`` (the graph's rgb, alpha, gray, sixteen_bit) is what the predict CLI decodes from ``data``."""
    cli = image_io.decode_with_layout(data, name)  # what the predict CLI feeds the network
    rgb, alpha, gray, sixteen_bit = (t.numpy() for t in served)
    assert rgb.shape == cli.rgb.shape, (name, rgb.shape, cli.rgb.shape)
    np.testing.assert_array_equal(rgb, cli.rgb, err_msg=f"{name}: the float RGB differs")
    assert bool(sixteen_bit) == (cli.bit_depth == 16), name
    if cli.alpha is None:
        assert alpha.shape == rgb.shape[:2] + (0,), f"{name}: the serving graph found alpha {alpha.shape}"
    else:
        assert alpha.shape == rgb.shape[:2] + (1,), f"{name}: the serving graph found no alpha"
        scaled = cli.alpha.astype(np.float32) * np.float32(1.0 / image_io.max_value(cli.bit_depth))
        np.testing.assert_array_equal(alpha[:, :, 0], scaled, err_msg=f"{name}: the alpha differs")
    # same output layout (encode_like / to_pixels): gray only without alpha, else RGB or RGBA
    assert (bool(gray) and cli.alpha is None) == (cli.gray and cli.alpha is None), name


@pytest.mark.parametrize("name", sorted(AGREE))
def test_serving_decoder_agrees_with_the_cli(name):
    data = AGREE[name]()
    served = _served(tf.constant(data))
    _assert_same_decoding(name, data, served)
    np.testing.assert_array_equal(_declared(tf.constant(data)).numpy(), served[0].shape[:2])


FUZZED_BMPS = ["bmp1_palette", "bmp4_palette_12_colours_indices_beyond", "bmp8_palette", "bmp8_gray_palette",
               "bmp16_555", "bmp16_bitfields_565", "bmp24", "bmp32_rgb", "bmp32_bitfields_bgrx",
               "bmp32_bitfields_argb_v5_header", "bmp32_bitfields_10_10_10_2_v5"]
_HEADER_FIELDS = (10, 14, 18, 22, 26, 28, 30, 46, 54, 58, 62, 66)  # bfOffBits ... the 4 masks


def test_corrupted_bmp_headers_decode_like_the_cli_or_are_refused():
    """Random bytes written over header fields and palettes: whatever the graph decodes, the CLI
    decodes to the same pixels; everything else is an InvalidArgumentError, never a crash."""
    rng = np.random.default_rng(25)
    outcomes = {"agree": 0, "refused": 0}
    for case in range(200):
        name = FUZZED_BMPS[case % len(FUZZED_BMPS)]
        data = bytearray(AGREE[name]())
        for _ in range(rng.integers(1, 3)):
            if rng.random() < 0.8:
                offset = int(rng.choice(_HEADER_FIELDS)) + int(rng.integers(0, 4))
            else:
                offset = int(rng.integers(0, 200))
            values = [0, 1, 3, 4, 8, 12, 16, 24, 32, 40, 0x7F, 0x80, 0xFF, rng.integers(256)]
            data[offset % len(data)] = int(rng.choice(values))
        data = bytes(data)
        try:
            served = _served(tf.constant(data))
        except tf.errors.InvalidArgumentError as error:
            assert "image_bytes" in error.message, error.message  # a message naming the problem
            outcomes["refused"] += 1
            continue
        _assert_same_decoding(f"{name} corrupted #{case}: {data[:70].hex()}", data, served)
        outcomes["agree"] += 1
    assert min(outcomes.values()) >= 40, outcomes  # both outcomes really exercised


# The refused variants the predict CLI decodes (OpenCV); it refuses every other one too.
CLI_DECODES = {"bmp8_rle8", "bmp4_rle4", "bmp_os2_v2_header", "jpeg_cmyk"}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_serving_decoder_refuses_with_a_clear_error(name):
    build, message, _reason = REFUSED[name]
    data = build()
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        _served(tf.constant(data))
    if data[:2] in (b"BM", b"\xff\xd8"):  # read from the header: refused by declared_size too, before decoding
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            _declared(tf.constant(data))
    if name in CLI_DECODES:
        assert image_io.decode_with_layout(data, name).rgb.shape == (H, W, 3)
    else:
        with pytest.raises(image_io.ImageFileError, match=re.escape(name)):
            image_io.decode_with_layout(data, name)


def test_encoded_signature_returns_the_cli_pixels_for_palette_and_32_bit_bmp(exported):
    """End to end through ``deblur_encoded``: a palette BMP comes back RGB (not its indices as gray),
    32-bit BMPs whose 4th byte is reserved come back opaque RGB (not transparent), as predict gives."""
    network, _, version_dir = exported
    names = ["bmp8_palette", "bmp32_rgb_zero_4th_byte", "bmp32_bitfields_bgrx", "bmp32_bitfields_argb_v5_header"]
    inputs = [AGREE[name]() for name in names]
    served = tf.saved_model.load(str(version_dir)).signatures["deblur_encoded"]
    outputs = served(image_bytes=tf.constant(inputs))["png_bytes"].numpy()
    predictor = Predictor(network)
    for name, data, png_bytes in zip(names, inputs, outputs):
        source = image_io.decode_with_layout(data, name)
        expected = image_io.to_pixels(predictor.run_whole(source.rgb), source)
        returned = cv2.imdecode(np.frombuffer(png_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
        if returned.ndim == 3:  # OpenCV's BGR(A) -> RGB(A)
            returned = returned[:, :, [2, 1, 0, 3][:returned.shape[2]]]
        assert returned.shape == expected.shape == (H, W, 4 if name.endswith("v5_header") else 3), (
            name, returned.shape)
        np.testing.assert_array_equal(returned, expected, err_msg=name)
    # a hostile header is refused by the signature's size check, before the batch is decoded
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixel data is truncated"):
        served(image_bytes=tf.constant([inputs[0], REFUSED["bmp_absurd_size_few_bytes"][0]()]))
