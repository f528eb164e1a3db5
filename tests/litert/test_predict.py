"""Predicting with a ``.tflite``: any size and bit depth, the SavedModel path's tiling, clear errors for bad models."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.inference.bounded import network_tile_runner
from ifan_tf.inference.padding import reflect_indices_tf
from ifan_tf.inference.tiling import tiled_deblur
from ifan_tf.litert import model_file
from ifan_tf.litert.export import convert_function
from ifan_tf.litert.model_file import LiteRTModelError
from ifan_tf.litert.runner import LiteRTPredictor, LiteRTTileRunner, deblur_with_fixed_tiles
from ifan_tf.model.ifan import build_ifan
from ifan_tf.modes import run_mode
from ifan_tf.weights.model_dir import save_model_dir
from tests.prediction_helpers import predict_flags, smooth_pixels

from conftest import TILE, TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_same_tiles_and_blending_as_the_saved_model_path(tiny_network, tiny_export):
    image = np.random.default_rng(1).uniform(0, 1, (100, 150, 3)).astype(np.float32)
    keras_tiled = np.clip(tiled_deblur(network_tile_runner(tiny_network), image, TILE, 16, fixed_tile=True), 0, 1)
    predictor = LiteRTPredictor(LiteRTTileRunner(tiny_export))
    assert predictor.tile_count(100, 150) == 6  # 2 x 3 tiles of 64 with overlap >= 16
    np.testing.assert_allclose(predictor.deblur(image), keras_tiled, rtol=0, atol=2e-5)


def test_an_image_smaller_than_the_tile_is_reflect_padded_to_it(tiny_network, tiny_export):
    image = np.random.default_rng(2).uniform(0, 1, (21, 37, 3)).astype(np.float32)
    runner = LiteRTTileRunner(tiny_export)
    output = LiteRTPredictor(runner).deblur(image)
    assert output.shape == image.shape
    # reflect-padded 21 -> 64 rows and 37 -> 64 columns (up to the fixed tile, one mirror map per axis)
    padded = image[reflect_indices_tf(21, 64).numpy()][:, reflect_indices_tf(37, 64).numpy()]
    expected = tiny_network(padded[None], training=False).numpy()[0, :21, :37]
    np.testing.assert_allclose(output, expected, atol=1e-5)
    calls = []
    deblur_with_fixed_tiles(lambda t: calls.append(t.shape) or t, image, TILE, 16)
    assert calls == [(1, TILE, TILE, 3)]


@pytest.mark.parametrize("shape, dtype", [((90, 140, 3), np.uint8), ((30, 45, 3), np.uint16), ((70, 20), np.uint8)])
def test_cli_keeps_size_and_bit_depth(tiny_export, tmp_path, capsys, shape, dtype):
    source, target = tmp_path / "in.png", tmp_path / "out.png"
    pixels = smooth_pixels(shape, dtype)
    assert cv2.imwrite(str(source), pixels)
    assert run_mode("predict", predict_flags(source, target, model=str(tiny_export), tile_overlap=None)) == 0
    assert "LiteRT none, tile 64" in capsys.readouterr().out
    result = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert result.shape == shape and result.dtype == dtype


def test_bad_model_files_give_errors_naming_the_file(tiny_export, tmp_path, capsys):
    source = tmp_path / "in.png"
    cv2.imwrite(str(source), smooth_pixels((16, 16, 3)))
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_text("hello, not a flatbuffer")
    with pytest.raises(LiteRTModelError, match=r"notes\.tflite: not a LiteRT/TFLite model"):
        LiteRTTileRunner(not_a_model)
    assert run_mode("predict", predict_flags(source, tmp_path / "o.png", model=str(not_a_model),
                                             tile_overlap=None)) == 2
    assert "notes.tflite: not a LiteRT/TFLite model" in capsys.readouterr().err
    with pytest.raises(LiteRTModelError, match=r"missing\.tflite: no such"):
        LiteRTTileRunner(tmp_path / "missing.tflite")

    no_json = tmp_path / "alone.tflite"
    shutil.copy(tiny_export, no_json)
    with pytest.raises(LiteRTModelError, match=r"alone\.json: missing; the LiteRT model .*alone\.tflite"):
        LiteRTTileRunner(no_json)
    shutil.copy(model_file.sidecar_path(tiny_export), tmp_path / "alone.json")
    LiteRTTileRunner(no_json)  # with its JSON it loads
    (tmp_path / "alone.json").write_text("{broken")
    with pytest.raises(LiteRTModelError, match=r"alone\.json: unreadable"):
        LiteRTTileRunner(no_json)

    # a valid TFLite model whose input is not [1, t, t, 3]: refused even with a matching JSON
    function = tf.function(lambda x: x * 0.5, input_signature=[tf.TensorSpec([1, 32, 48, 3], tf.float32)])
    data = convert_function(function.get_concrete_function())
    odd = tmp_path / "odd.tflite"
    odd.write_bytes(data)
    document = json.load(open(model_file.sidecar_path(tiny_export)))
    document.update(sha256=model_file.sha256_hex(data), tile=32)
    model_file.write_description(tmp_path / "odd.json", document)
    with pytest.raises(LiteRTModelError, match=r"odd\.tflite: expected one float32 input of shape \[1, 32, 32, 3\]"):
        LiteRTTileRunner(odd)
    # the JSON of another model
    shutil.copy(tmp_path / "odd.json", tmp_path / "alone.json")
    with pytest.raises(LiteRTModelError, match=r"alone\.json: describes another model file"):
        LiteRTTileRunner(no_json)


def test_fixed_tile_and_overlap_flags(tiny_export, tmp_path, capsys):
    source = tmp_path / "in.png"
    cv2.imwrite(str(source), smooth_pixels((16, 16, 3)))
    assert run_mode("predict", predict_flags(source, tmp_path / "o.png", tile=128, model=str(tiny_export),
                                             tile_overlap=None)) == 2
    assert "fixed at 64, not --tile=128" in capsys.readouterr().err
    assert run_mode("predict", predict_flags(source, tmp_path / "o.png", tile_overlap=60, model=str(tiny_export))) == 2
    assert "tile overlap must be between 0 and tile - 8" in capsys.readouterr().err
    assert LiteRTPredictor(LiteRTTileRunner(tiny_export), tile_overlap=24).tile_overlap == 24


@pytest.mark.slow
def test_export_and_predict_through_main(tmp_path):
    keras.utils.set_random_seed(6)
    model_dir = save_model_dir(tmp_path / "model", build_ifan(TINY))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    main = [sys.executable, os.path.join(REPO, "main.py")]
    exported = subprocess.run(main + ["--mode=export", "--format=litert", f"--model_dir={model_dir}",
                                      f"--export_dir={tmp_path / 'litert'}", "--tile=48", "--tile_overlap=8",
                                      "--quantize=float16"], env=env, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    path = tmp_path / "litert" / "ifan-t48-float16.tflite"
    assert json.load(open(tmp_path / "litert" / "ifan-t48-float16.json"))["tile_overlap"] == 8
    source = tmp_path / "in.png"
    cv2.imwrite(str(source), smooth_pixels((60, 100, 3), np.uint16))
    predicted = subprocess.run(main + ["--mode=predict", f"--model={path}", f"--input={source}",
                                       f"--output={tmp_path / 'out.png'}"], env=env, capture_output=True, text=True,
                               timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    result = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert result.shape == (60, 100, 3) and result.dtype == np.uint16
