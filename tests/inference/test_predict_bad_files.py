"""``--mode=predict`` keeps going past bad files, refuses oversized images before decoding, plans fast.

Bad files tried: a FIFO (opening it would block forever), a symlink to ``/dev/zero`` (reading it
would never end), a PNG declaring more pixels than OpenCV decodes (``cv2.error`` in OpenCV), a
PNG too big for the memory budget, a file larger than the input byte limit, a truncated PNG and
a folder named like an image. Every test has a timeout: a hang is a failure, not a stuck run.
"""
import os
import struct
import types
import zlib

import cv2
import numpy as np
import pytest

from ifan_tf.inference import folder
from ifan_tf.io import image_io, input_files
from ifan_tf.modes import run_mode
from tests.prediction_helpers import predict_flags


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def black_png(width, height):
    """A valid 8-bit RGB PNG of ``height x width`` black pixels, compressed row by row (small file)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (image_io.PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))


def header_only_png(width, height):
    """A PNG that declares ``height x width`` pixels but holds a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (image_io.PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def good_png(path, seed):
    rng = np.random.default_rng(seed)
    image_io.write_pixels(path, rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))


def test_folder_with_every_kind_of_bad_file(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(input_files, "MAX_INPUT_BYTES", 1 << 20)  # so the oversized file can be sparse and small
    inputs = tmp_path / "in"
    inputs.mkdir()
    good_png(inputs / "a_good.png", 1)
    (inputs / "b_beyond_opencv.png").write_bytes(header_only_png(40000, 40000))  # 1.6 Gpx: cv2.error in OpenCV
    (inputs / "c_over_budget.png").write_bytes(black_png(4000, 4000))  # valid, 16 Mpx: > 1 GB with any tile
    os.mkfifo(inputs / "d_fifo.png")
    os.symlink("/dev/zero", inputs / "e_zero.png")
    with open(inputs / "f_huge.png", "wb") as handle:
        handle.truncate(2 << 20)  # sparse, above the (patched) byte limit
    good = (inputs / "a_good.png").read_bytes()
    (inputs / "g_truncated.png").write_bytes(good[: len(good) // 2])
    (inputs / "h_folder.png").mkdir()  # a folder named like an image: searched, not read
    good_png(inputs / "h_folder.png" / "inner.png", 2)
    good_png(inputs / "z_good.png", 3)

    code = run_mode("predict", predict_flags(inputs, tmp_path / "out", model_dir=str(model_dir), memory_budget_gb=1.0))
    err = capsys.readouterr()
    assert code == 1
    assert "deblurred 3 of 9 images" in err.out
    assert "6 of 9 images failed and were skipped" in err.err
    lines = {line.split(":")[1].strip().rsplit("/", 1)[-1]: line for line in err.err.splitlines()
             if line.startswith("failed:")}
    assert "more than the 1074 Mpx that can be decoded" in lines["b_beyond_opencv.png"]
    assert "--tile=" in lines["c_over_budget.png"] and "--memory_budget_gb" in lines["c_over_budget.png"]
    assert "FIFO" in lines["d_fifo.png"]
    assert "character device" in lines["e_zero.png"]
    assert "more than the limit of 1048576 bytes" in lines["f_huge.png"]
    assert "not a readable image" in lines["g_truncated.png"]
    for name in ("a_good.png", "h_folder.png/inner.png", "z_good.png"):
        assert cv2.imread(str(tmp_path / "out" / name)).shape == (12, 16, 3), name


@pytest.mark.timeout(120, method="thread")
def test_single_special_file_is_reported_not_opened(model_dir, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.png")
    flags = predict_flags(tmp_path / "pipe.png", tmp_path / "out.png", model_dir=str(model_dir), memory_budget_gb=1.0)
    assert run_mode("predict", flags) == 1
    assert "pipe.png: is a FIFO (named pipe), not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_explicit_tile_bypasses_the_memory_budget(tmp_path):
    predictor = types.SimpleNamespace(tile=None, memory_budget_gb=1.0, precision="float32",
                                      network=types.SimpleNamespace(config=types.SimpleNamespace(width=32)),
                                      tile_size_for=lambda height, width: 128)
    with pytest.raises(image_io.ImageTooLargeError, match=r"x.png: a 8000x6000 image \(48.0 Mpx\).*--tile=128"):
        folder.check_image_size(predictor, "x.png", 6000, 8000)
    predictor.tile = 512
    folder.check_image_size(predictor, "x.png", 6000, 8000)  # the user chose tiles: only the decoder limit
    with pytest.raises(image_io.ImageTooLargeError, match="can be decoded"):
        folder.check_image_size(predictor, "x.png", 40000, 40000)


@pytest.mark.timeout(120, method="thread")
def test_planning_ten_thousand_files_reads_headers_only(tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    header = header_only_png(64, 48)
    bmp = image_io.encode_image(np.zeros((5, 7, 3), np.uint8), ".bmp")
    tiff = image_io.encode_image(np.zeros((5, 7, 3), np.uint8), ".tif")
    count = 10_000
    for index in range(count):
        suffix, data = [(".png", header), (".bmp", bmp), (".tif", tiff)][index % 3]
        (inputs / f"{index:05d}{suffix}").write_bytes(data)

    stats = {"calls": 0, "decodes": 0, "planning": True}

    def counted(function):
        def wrapper(*args, **kwargs):
            stats["calls"] += stats["planning"]
            if stats["planning"] and stats["calls"] > 10 * count:  # a quadratic plan: ~10^8 calls; fail fast
                raise AssertionError("planning stats files more than 10 times per file")
            return function(*args, **kwargs)
        return wrapper

    def counted_decoding(*args, **kwargs):  # counted, not raised: callers may catch exceptions
        stats["decodes"] += stats["planning"]
        return original_imdecode(*args, **kwargs)

    original_imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", counted_decoding)
    monkeypatch.setattr(os, "stat", counted(os.stat))
    monkeypatch.setattr(os, "lstat", counted(os.lstat))
    try:
        pairs = folder.plan_outputs(str(inputs), str(tmp_path / "out"))
        runs = folder.plan_network_runs(types.SimpleNamespace(tile_count=lambda height, width: height * width),
                                        [source for source, _ in pairs])
    finally:
        stats["planning"] = False
    monkeypatch.undo()
    assert stats["decodes"] == 0, "planning decoded images"
    assert len(pairs) == count
    assert runs[:3] == [64 * 48, 5 * 7, 1]  # PNG and BMP headers are read; TIFF (no header parser) counts 1
