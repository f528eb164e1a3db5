"""``--mode=predict`` on files and folders: formats, bit depths, layouts, safety rules, the real CLI."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ifan_tf.inference.folder import plan_outputs
from ifan_tf.inference.predictor import Predictor
from ifan_tf.io import image_io
from ifan_tf.modes import run_mode
from tests.prediction_helpers import predict_flags, smooth_pixels

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(path, pixels):  # pixels in RGB(A) order
    image_io.write_pixels(path, pixels)


def _read(path):  # OpenCV directly: an independent check of what image_io wrote
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return pixels if pixels.ndim == 2 else pixels[:, :, [2, 1, 0, 3][: pixels.shape[2]]]


def test_folder_of_every_format(model_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    cases = {
        "rgb8.png": smooth_pixels((21, 13, 3), seed=1),
        "gray8.png": smooth_pixels((9, 17), seed=2),
        "rgba8.png": smooth_pixels((16, 16, 4), seed=3),
        "rgb16.png": smooth_pixels((10, 11, 3), np.uint16, seed=4),
        "nested/photo.jpg": smooth_pixels((24, 40, 3), seed=5),
        "tiny.png": smooth_pixels((1, 1, 3), seed=6),
    }
    for name, pixels in cases.items():
        _write(inputs / name, pixels)
    (inputs / "notes.txt").write_text("not an image, ignored")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    code = run_mode("predict", predict_flags(inputs, out, model_dir=str(model_dir)))
    captured = capsys.readouterr()
    assert code == 1 and "broken.png" in captured.err  # the broken file is reported, the rest is written
    assert "deblurred 6 of 7 images" in captured.out
    predictor = Predictor.from_model_dir(model_dir)
    for name, pixels in cases.items():
        result = _read(out / name)
        assert result.shape == pixels.shape and result.dtype == pixels.dtype, name  # size, layout, bit depth
        if not name.endswith(".jpg"):  # lossless output: exactly the library's prediction
            source = image_io.read_with_layout(inputs / name)
            np.testing.assert_array_equal(result, image_io.to_pixels(predictor.deblur(source.rgb), source), name)
    np.testing.assert_array_equal(_read(out / "rgba8.png")[:, :, 3], cases["rgba8.png"][:, :, 3])  # alpha kept
    assert not (out / "notes.txt").exists()
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no temporary files left


def test_refuses_to_overwrite_inputs_and_outputs(model_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _write(inputs / "a.png", smooth_pixels((8, 8, 3)))
    before = (inputs / "a.png").read_bytes()
    for target, overwrite in [(inputs, True), (inputs / "a.png", True), (inputs / ".." / "in" / "a.png", True)]:
        source = inputs if target == inputs else inputs / "a.png"
        assert run_mode("predict", predict_flags(source, target, overwrite=overwrite, model_dir=str(model_dir))) == 2
        assert "refusing to overwrite" in capsys.readouterr().err
    assert (inputs / "a.png").read_bytes() == before
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    assert run_mode("predict", predict_flags(inputs / "a.png", out, model_dir=str(model_dir))) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert run_mode("predict", predict_flags(inputs / "a.png", out, overwrite=True, model_dir=str(model_dir))) == 0
    assert _read(out).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="unsupported output file type"):
        plan_outputs(str(inputs / "a.png"), str(tmp_path / "x.webp"))
    with pytest.raises(FileNotFoundError):
        plan_outputs(str(tmp_path / "missing"), str(tmp_path / "o"))


def test_tiled_prediction_in_cli_and_real_entry_point(model_dir, tmp_path):
    source = tmp_path / "big.png"
    _write(source, smooth_pixels((90, 130, 3), seed=7))
    tiled = tmp_path / "tiled.png"
    assert run_mode("predict", predict_flags(source, tiled, tile=48, tile_overlap=16, model_dir=str(model_dir))) == 0
    whole = tmp_path / "whole.png"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, os.path.join(REPO, "main.py"), "--mode=predict", f"--model_dir={model_dir}",
                             f"--input={source}", f"--output={whole}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    difference = np.abs(_read(tiled).astype(int) - _read(whole).astype(int))
    # 48-pixel tiles on the tiny random model (2 x 5 balanced tiles of 56x40) measured 4 levels at most (3 with
    # the earlier plan's larger, uneven overlaps); real tile sizes stay within 1 level (see test_tiled_prediction.py)
    assert _read(tiled).shape == (90, 130, 3) and difference.max() <= 4
