"""LiteRT export: parity with the Keras model on a tile, builtin ops only, the JSON, quantized variants, errors."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.litert import model_file
from ifan_tf.litert.export import LiteRTExportError, convert_function, export_network, operator_names
from ifan_tf.litert.runner import LiteRTTileRunner
from ifan_tf.model.ifan import build_ifan

from conftest import TILE, TINY


def _tile(seed=0, size=TILE):
    return np.random.default_rng(seed).uniform(0, 1, (1, size, size, 3)).astype(np.float32)


def test_float32_export_matches_keras_on_a_tile(tiny_network, tiny_export):
    runner = LiteRTTileRunner(tiny_export)
    for seed in (0, 1):
        image = _tile(seed)
        expected = tiny_network(image, training=False).numpy()
        np.testing.assert_allclose(runner.run_tile(image), expected, rtol=0, atol=1e-5)
    # without XNNPACK (LiteRT's own kernels) too
    plain = LiteRTTileRunner(tiny_export, num_threads=1, use_xnnpack=False)
    np.testing.assert_allclose(plain.run_tile(_tile(0)), tiny_network(_tile(0), training=False).numpy(), atol=1e-5)


def test_checkpoint_mode_network_matches_too(tmp_path):
    keras.utils.set_random_seed(8)
    network = build_ifan(TINY.replace(iac_mode="checkpoint", num_iterations=1))
    runner = LiteRTTileRunner(export_network(network, tmp_path, tile=32, tile_overlap=8))
    image = _tile(2, 32)
    np.testing.assert_allclose(runner.run_tile(image), network(image, training=False).numpy(), atol=1e-5)


def test_the_model_uses_builtin_ops_only_and_the_json_describes_it(tiny_export):
    data = open(tiny_export, "rb").read()
    ops = operator_names(data)
    assert not [op for op in ops if op.startswith("CUSTOM") or "VAR" in op], ops  # no Flex, weights are constants
    # the XNNPACK-friendly IAC (tile_graph.py): no MIRROR_PAD, no 7-way SPLIT, no run-time FC weights
    assert not {"MIRROR_PAD", "SPLIT", "FULLY_CONNECTED"} & set(ops), ops
    assert os.path.basename(tiny_export) == "ifan-t64-float32.tflite"
    with open(model_file.sidecar_path(tiny_export)) as handle:
        document = json.load(handle)
    assert document["tile"] == TILE and document["tile_overlap"] == 16 and document["quantize"] == "none"
    assert document["input"]["shape"] == [1, TILE, TILE, 3] and document["output"]["dtype"] == "float32"
    assert document["model"] == TINY.to_dict() and document["builtin_ops"] == ops
    assert document["sha256"] == model_file.sha256_hex(data)
    assert not [n for n in os.listdir(os.path.dirname(tiny_export)) if n.startswith(".")]  # no temp files left


@pytest.mark.parametrize("quantize, min_psnr, max_ratio", [("float16", 60.0, 0.55), ("dynamic_int8", 30.0, 0.35)])
def test_quantized_variants_export_and_run(tiny_network, tiny_export, tmp_path, quantize, min_psnr, max_ratio):
    path = export_network(tiny_network, tmp_path, tile=TILE, quantize=quantize)
    assert os.path.basename(path) == f"ifan-t{TILE}-{quantize}.tflite"
    runner = LiteRTTileRunner(path)
    assert runner.description["quantize"] == quantize
    image = _tile(4)
    reference = LiteRTTileRunner(tiny_export).run_tile(image)
    output = runner.run_tile(image)
    assert output.shape == image.shape and output.dtype == np.float32
    psnr = 10 * np.log10(1 / np.mean((output.astype(np.float64) - reference) ** 2))
    assert psnr >= min_psnr, psnr
    assert os.path.getsize(path) <= max_ratio * os.path.getsize(tiny_export)  # smaller weights


def test_bad_export_arguments_are_refused_before_converting(tiny_network, tiny_export, tmp_path):
    for tile in (60, 8, 4096):
        with pytest.raises(ValueError, match="multiple of 8 between 16 and 2048"):
            export_network(tiny_network, tmp_path, tile=tile)
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_network(tiny_network, tmp_path, tile=TILE, quantize="int4")
    with pytest.raises(ValueError, match="tile overlap"):
        export_network(tiny_network, tmp_path, tile=TILE, tile_overlap=60)
    before = open(tiny_export, "rb").read()
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_network(tiny_network, os.path.dirname(tiny_export), tile=TILE, tile_overlap=16)
    assert open(tiny_export, "rb").read() == before


def test_an_op_without_a_builtin_kernel_is_named():
    function = tf.function(lambda x: tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"),
                           input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32)])
    with pytest.raises(LiteRTExportError, match=r"my_model.tflite.*ExtractImagePatches.*Flex.*tile_graph\.py"):
        convert_function(function.get_concrete_function(), source="my_model.tflite")
