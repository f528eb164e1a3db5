"""The page's pure modules run in Node against the Python code they mirror: the tile plan
(``web/src/tile_plan.js`` vs ``ifan_tf.inference.tiling.image_plan(..., fixed_tile=True)``), the
reflect index map, the PNG decoder (vs OpenCV, as predict decodes), the PNG encoder and the header
parser (size limit before decoding, clear messages)."""
import base64
import shutil
import struct

import numpy as np
import pytest

from ifan_tf.inference.padding import reflect_indices_tf
from ifan_tf.inference.tiling import image_plan

from png_files import chunk, large_blank_png, png_bytes
from web_helpers import decode_png, run_node


@pytest.fixture(scope="module", autouse=True)
def node():
    if shutil.which("node") is None:
        pytest.fail("these tests run the page's JavaScript with Node: install nodejs (the machine image has it)")


def plan_cases():
    """Many sizes per (tile, overlap): random ones, the edges of tile counts, tiny and non-multiple-of-8."""
    rng = np.random.default_rng(0)
    cases = []
    for tile, overlap in ((64, 16), (16, 0), (16, 8), (512, 32), (64, 0), (64, 56), (128, 20), (256, 33), (24, 9)):
        for _ in range(25):
            cases.append([int(rng.integers(1, 5 * tile)), int(rng.integers(1, 5 * tile)), tile, overlap])
        step = tile - 8 * -(-overlap // 8)
        for size in (1, 7, tile - 1, tile, tile + 1, tile + step - 1, tile + step, tile + step + 9, 3 * tile + 5):
            cases.append([size, max(1, 2 * tile - size), tile, overlap])
    return cases + [[720, 1280, 512, 32], [4000, 6000, 512, 32], [1, 1, 16, 0], [3, 5, 64, 16]]


def test_js_tile_plan_equals_python_plan():
    cases = plan_cases()
    plans = run_node({"op": "plan", "cases": cases})
    assert len(plans) == len(cases)
    compared = 0
    for (height, width, tile, overlap), js in zip(cases, plans):
        rows, cols = image_plan(height, width, tile, overlap, fixed_tile=True)
        for name, python, javascript in (("rows", rows, js["rows"]), ("cols", cols, js["cols"])):
            where = f"{height}x{width} tile {tile} overlap {overlap} {name}"
            assert javascript["starts"] == rows_list(python.starts), where
            assert javascript["length"] == int(python.length) == tile, where
            expected = python.weights.numpy()
            got = np.asarray(javascript["weights"], np.float32).reshape(expected.shape)
            np.testing.assert_array_equal(got, expected, err_msg=where)  # bit-equal float32 weights
            compared += expected.size
        assert js["count"] == int(rows.starts.shape[0]) * int(cols.starts.shape[0])
    assert compared > 100_000
    assert plans[-4]["rows"]["starts"] == [0, 208] and plans[-4]["cols"]["starts"] == [0, 384, 768]  # README example


def rows_list(tensor):
    return [int(v) for v in tensor.numpy()]


def test_js_reflect_indices_equal_python():
    cases = [[1, 16], [2, 17], [3, 64], [5, 8], [70, 72], [100, 512], [7, 7]]
    answers = run_node({"op": "reflect", "cases": cases})
    for (size, new_size), got in zip(cases, answers):
        assert got == rows_list(reflect_indices_tf(size, new_size)), (size, new_size)


def _png_variants():
    """``{name: png bytes}``: every colour type and depth, tRNS, palettes, Adam7, many IDAT chunks."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (23, 37, 3))
    rgb16 = rng.integers(0, 65536, (19, 29, 3))
    gray = rng.integers(0, 256, (17, 31))
    index = rng.integers(0, 6, (21, 13))
    palette = rng.integers(0, 256, (6, 3))
    key16 = b"".join(int(v).to_bytes(2, "big") for v in rgb16[0, 0])
    return {
        "rgb8": png_bytes(rgb, 8, 2), "rgb8_adam7": png_bytes(rgb, 8, 2, interlace=True),
        "rgb16": png_bytes(rgb16, 16, 2), "rgb16_trns": png_bytes(rgb16, 16, 2, transparency=key16),
        "rgba8": png_bytes(rng.integers(0, 256, (9, 40, 4)), 8, 6),
        "rgba16_adam7": png_bytes(rng.integers(0, 65536, (11, 10, 4)), 16, 6, interlace=True),
        "gray8": png_bytes(gray, 8, 0), "gray8_trns": png_bytes(gray, 8, 0, transparency=b"\x00\x07"),
        "gray1": png_bytes(rng.integers(0, 2, (9, 19)), 1, 0),
        "gray2_adam7": png_bytes(rng.integers(0, 4, (9, 19)), 2, 0, interlace=True),
        "gray4": png_bytes(rng.integers(0, 16, (5, 3)), 4, 0),
        "gray16": png_bytes(rng.integers(0, 65536, (8, 8)), 16, 0),
        "gray_alpha8": png_bytes(rng.integers(0, 256, (6, 7, 2)), 8, 4),
        "gray_alpha16": png_bytes(rng.integers(0, 65536, (6, 7, 2)), 16, 4),
        "palette8": png_bytes(index, 8, 3, palette=palette),
        "palette4_trns": png_bytes(index, 4, 3, palette=palette, transparency=bytes([0, 128, 255])),
        "palette2_adam7": png_bytes(index % 4, 2, 3, palette=palette[:4], interlace=True),
        "one_pixel": png_bytes(np.array([[[1, 2, 3]]]), 8, 2),
    }


def _picture_array(picture):
    """The decoded picture of node_check.mjs as the array OpenCV gives (gray ``[H, W]`` or RGB(A))."""
    dtype = np.uint16 if picture["bitDepth"] == 16 else np.uint8
    height, width, channels = picture["height"], picture["width"], picture["channels"]
    pixels = np.frombuffer(base64.b64decode(picture["pixels"]), dtype).reshape(height, width, channels)
    if picture["alpha"] is not None:
        alpha = np.frombuffer(base64.b64decode(picture["alpha"]), dtype).reshape(height, width, 1)
        return np.concatenate([np.repeat(pixels, 3 // channels, axis=2), alpha], axis=2)
    return pixels[:, :, 0] if channels == 1 else pixels


def test_js_png_decoder_equals_opencv(tmp_path):
    variants = _png_variants()
    paths = []
    for name, data in variants.items():
        paths.append(tmp_path / f"{name}.png")
        paths[-1].write_bytes(data)
    answers = run_node({"op": "decode", "files": [str(p) for p in paths]})
    for path, answer in zip(paths, answers):
        assert "error" not in answer, (path.name, answer)
        expected = decode_png(path.read_bytes())
        got = _picture_array(answer["picture"])
        assert got.dtype == expected.dtype and got.shape == expected.shape, (path.name, got.shape, expected.shape)
        np.testing.assert_array_equal(got, expected, err_msg=path.name)
        assert answer["picture"]["gray"] == (expected.ndim == 2), path.name  # predict writes gray for these


def test_js_png_encoder_round_trips(tmp_path):
    rng = np.random.default_rng(9)
    for channels, depth in ((1, 8), (3, 8), (4, 8), (1, 16), (3, 16), (4, 16)):
        dtype = np.uint16 if depth == 16 else np.uint8
        pixels = rng.integers(0, np.iinfo(dtype).max + 1, (70, 45, channels)).astype(dtype)  # > one 64-row band
        answer = run_node({"op": "encode", "image": {"width": 45, "height": 70, "channels": channels, "bitDepth": depth,
                                                     "pixels": base64.b64encode(pixels.tobytes()).decode()}})
        decoded = decode_png(base64.b64decode(answer["png"]))
        np.testing.assert_array_equal(decoded, pixels[:, :, 0] if channels == 1 else pixels,
                                      err_msg=f"{channels} channels, {depth} bits")


def _jpeg_with_sof(width, height, app_bytes=70_000, marker=0xC2):
    """A JPEG start: SOI, ``app_bytes`` of APP1 segments (as EXIF can be), a fill byte, then a frame
    header (progressive by default); no image data."""
    segments = b""
    remaining = app_bytes
    while remaining > 0:
        size = min(remaining, 60_000)
        segments += b"\xff\xe1" + (size + 2).to_bytes(2, "big") + b"\x00" * size
        remaining -= size
    sof = bytes([0xFF, marker]) + (17).to_bytes(2, "big") + b"\x08" + struct.pack(">HH", height, width) + b"\x03"
    return b"\xff\xd8" + segments + b"\xff" + sof + b"\x00" * 9 + b"\xff\xd9"


def test_js_headers_and_messages(tmp_path):
    files = {
        "photo.jpg": _jpeg_with_sof(6000, 4000),
        "huge.jpg": _jpeg_with_sof(9000, 5000, app_bytes=10),
        "gray16.png": png_bytes(np.zeros((5, 6), np.uint16), 16, 0),
        "huge.png": large_blank_png(8000, 5001),
        "notes.txt": b"hello, this is not a photo",
        "empty.png": b"",
        "short.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "bad_ihdr.png": b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 3, 2, 0, 0, 0)),
        "dnl.jpg": _jpeg_with_sof(640, 0, app_bytes=10),
        "no_frame.jpg": b"\xff\xd8\xff\xda\x00\x02",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in files]
    headers = dict(zip(files, run_node({"op": "header", "files": paths})))
    assert headers["photo.jpg"]["header"] == {"format": "jpeg", "width": 6000, "height": 4000, "bitDepth": 8,
                                              "channels": 3, "gray": False, "progressive": True}
    assert headers["gray16.png"]["header"]["bitDepth"] == 16 and headers["gray16.png"]["header"]["gray"]
    assert headers["huge.png"]["header"]["width"] == 8000
    expected_errors = {
        "notes.txt": "notes.txt: not a PNG or JPEG image (it starts with bytes 68 65 6c 6c",
        "empty.png": "empty.png: empty file (0 bytes), not an image",
        "short.png": "short.png: truncated PNG",
        "bad_ihdr.png": "bad_ihdr.png: corrupt PNG (colour type 2 with bit depth 3)",
        "dnl.jpg": "dnl.jpg: JPEG whose height is given after the image data (DNL) is not supported",
        "no_frame.jpg": "no_frame.jpg: corrupt JPEG (image data before any frame header)",
    }
    for name, text in expected_errors.items():
        assert headers[name].get("error", "").startswith(text), (name, headers[name])
        assert headers[name]["kind"] == "ImageError"
    # The size limit is checked from the header: the 40 MP PNG is refused before its 120 MB are inflated.
    (decoded,) = run_node({"op": "decode", "files": [str(tmp_path / "huge.png")], "max_pixels": 40_000_000})
    assert decoded["error"] == ("huge.png: 8000x5001 pixels (40.01 MP) is more than the limit of 40 MP for this "
                                "page; crop or downscale it, or use `main.py --mode=predict` for large photos")
    (decoded,) = run_node({"op": "decode", "files": [str(tmp_path / "huge.png")], "max_pixels": 40_008_000})
    assert "error" not in decoded and decoded["picture"]["width"] == 8000  # at the limit it is decoded
