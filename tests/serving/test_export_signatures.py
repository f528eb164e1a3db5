"""The exported SavedModel, loaded in a fresh Python process without ifan_tf, matches the in-memory model."""
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf

from serving_test_images import TINY, png_bytes, random_pixels
from ifan_tf.inference.predictor import Predictor
from ifan_tf.io import image_io
from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving.export import existing_versions, export_network

FLOAT_SIZES = [(1, 1), (7, 13), (8, 8), (1001, 777)]

# Runs in a fresh interpreter: only TensorFlow, NumPy and the SavedModel (ifan_tf must not be imported).
FRESH_PROCESS_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np, tensorflow as tf
    saved_model, inputs_path, outputs_path = sys.argv[1:4]
    model = tf.saved_model.load(saved_model)
    inputs = np.load(inputs_path, allow_pickle=False)
    results = {}
    for key in inputs.files:
        if key.startswith("float_"):
            out = model.signatures["serving_default"](image=tf.constant(inputs[key]))
            results[key] = out["deblurred"].numpy()
    encoded = [inputs[k].tobytes() for k in sorted(inputs.files) if k.startswith("bytes_")]
    out = model.signatures["deblur_encoded"](image_bytes=tf.constant(encoded))["png_bytes"].numpy()
    for key, png in zip(sorted(k for k in inputs.files if k.startswith("bytes_")), out):
        results[key] = np.frombuffer(png, np.uint8)
    try:
        model.signatures["deblur_encoded"](image_bytes=tf.constant([b"this is not an image"]))
        results["bad_error"] = np.array("no error")
    except tf.errors.InvalidArgumentError as error:
        results["bad_error"] = np.array("InvalidArgumentError: " + error.message[:500])
    # the same process keeps working after the error
    again = model.signatures["deblur_encoded"](image_bytes=tf.constant(encoded[:1]))["png_bytes"].numpy()
    results["after_error_same"] = np.array(again[0] == out[0])
    results["imported_ifan_tf"] = np.array(any(m.startswith("ifan_tf") for m in sys.modules))
    np.savez(outputs_path, **results)
""")


def _encoded_inputs():
    """name -> (encoded bytes, decoded expectation source) for every supported input layout."""
    rgb8 = random_pixels((21, 30, 3), np.uint8, seed=1)
    jpeg = cv2.imencode(".jpg", np.ascontiguousarray(rgb8[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return {
        "bytes_a_rgb8": png_bytes(rgb8),
        "bytes_b_gray8": png_bytes(random_pixels((17, 9), np.uint8, seed=2)),
        "bytes_c_rgba8": png_bytes(random_pixels((16, 24, 4), np.uint8, seed=3)),
        "bytes_d_rgb16": png_bytes(random_pixels((13, 11, 3), np.uint16, seed=4)),
        "bytes_e_gray16": png_bytes(random_pixels((9, 5), np.uint16, seed=5)),
        "bytes_f_jpeg": jpeg,
        "bytes_g_tiny": png_bytes(random_pixels((1, 1, 3), np.uint8, seed=6)),
    }


def _run_fresh_process(version_dir, inputs, tmp_path):
    inputs_path, outputs_path = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inputs_path, **inputs)
    script = tmp_path / "load_saved_model.py"
    script.write_text(FRESH_PROCESS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script), str(version_dir), str(inputs_path), str(outputs_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(outputs_path)


def test_saved_model_in_fresh_process_matches_in_memory_model(exported, tmp_path):
    network, _, version_dir = exported
    rng = np.random.default_rng(0)
    float_inputs = {f"float_{h}x{w}": rng.uniform(0, 1, (2 if h < 100 else 1, h, w, 3)).astype(np.float32)
                    for h, w in FLOAT_SIZES}
    encoded = _encoded_inputs()
    inputs = dict(float_inputs)
    inputs.update({k: np.frombuffer(v, np.uint8) for k, v in encoded.items()})
    results = _run_fresh_process(version_dir, inputs, tmp_path)

    assert not results["imported_ifan_tf"]
    predictor = Predictor(network)
    for key, batch in float_inputs.items():
        expected = np.stack([predictor.run_whole(image) for image in batch])
        assert results[key].shape == batch.shape, key  # every size comes back at its own size
        np.testing.assert_allclose(results[key], expected, atol=1e-5, err_msg=key)

    for key, data in encoded.items():
        source = image_io.decode_with_layout(data, key)  # JPEG too: the graph decodes with OpenCV's IDCT
        expected = image_io.to_pixels(predictor.run_whole(source.rgb), source)
        returned = cv2.imdecode(results[key], cv2.IMREAD_UNCHANGED)
        assert returned.dtype == expected.dtype, key  # same bit depth as the input
        if returned.ndim == 3:
            returned = returned[:, :, [2, 1, 0, 3][: returned.shape[2]]]
        assert returned.shape == expected.shape, key  # same size and layout (gray, RGB, RGBA)
        np.testing.assert_array_equal(returned, expected, err_msg=key)  # exact after quantisation
    rgba = image_io.decode_with_layout(encoded["bytes_c_rgba8"], "rgba")
    returned_rgba = cv2.imdecode(results["bytes_c_rgba8"], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(returned_rgba[:, :, 3], rgba.alpha)  # alpha passes through unchanged

    assert str(results["bad_error"]).startswith("InvalidArgumentError"), str(results["bad_error"])
    assert "not a PNG, JPEG or BMP image" in str(results["bad_error"])
    assert bool(results["after_error_same"])


def test_saved_model_cli_lists_both_signatures(exported):
    _, _, version_dir = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", str(version_dir), "--all"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert "signature_def['serving_default']" in text and "signature_def['deblur_encoded']" in text
    default = text.split("signature_def['serving_default']")[1]
    assert "inputs['image'] tensor_info:" in default and "outputs['deblurred'] tensor_info:" in default
    assert "unknown_rank: true" in default or "shape: unknown_rank" in default  # checked in the graph
    encoded = text.split("signature_def['deblur_encoded']")[1].split("signature_def[")[0]
    assert "inputs['image_bytes'] tensor_info:" in encoded and "outputs['png_bytes'] tensor_info:" in encoded
    assert "dtype: DT_STRING" in encoded and "shape: (-1)" in encoded


def test_export_versions_are_atomic_and_never_clobbered(tmp_path):
    network = build_ifan(TINY)
    first = export_network(network, tmp_path)
    second = export_network(network, tmp_path)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert existing_versions(tmp_path) == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]  # no temporary folders left behind
    info = json.loads((tmp_path / "2" / "assets.extra" / "ifan_tf.json").read_text())
    assert info["model"]["num_iterations"] == TINY.num_iterations and info["version"] == 2
    with pytest.raises(FileExistsError, match="already exists"):
        export_network(network, tmp_path, version=1)
    with pytest.raises(ValueError, match="positive integer"):
        export_network(network, tmp_path, version=0)


def test_dual_pixel_models_are_refused(tmp_path):
    network = build_ifan(TINY.replace(dual_pixel_input=True))
    with pytest.raises(ValueError, match="dual-pixel"):
        export_network(network, tmp_path)
    with pytest.raises(ValueError, match="dual-pixel"):
        Predictor(network)


def test_export_mode_bfloat16(tmp_path, capsys):
    import types

    from ifan_tf.modes import run_mode
    from ifan_tf.weights.model_dir import save_model_dir

    network = build_ifan(TINY)
    save_model_dir(tmp_path / "model", network)
    flags = types.SimpleNamespace(model_dir=str(tmp_path / "model"), export_dir=str(tmp_path / "exports"),
                                  export_version=7, precision="bfloat16", overwrite=False, max_pixels=5000,
                                  max_batch=2, tile=None, tile_overlap=32)
    assert run_mode("export", flags) == 0
    assert "docker run" in capsys.readouterr().out
    info = json.loads((tmp_path / "exports" / "7" / "assets.extra" / "ifan_tf.json").read_text())
    assert info["compute_dtype"] == "bfloat16" and info["precision"] == "bfloat16"
    assert info["limits"] == {"max_pixels": 5000, "max_batch": 2, "tile": 1024, "tile_overlap": 32}
    bad = types.SimpleNamespace(**{**vars(flags), "export_version": 8, "tile": 100})
    assert run_mode("export", bad) == 2 and "multiple of 8" in capsys.readouterr().err
    assert not (tmp_path / "exports" / "8").exists()
    image = np.random.default_rng(1).uniform(0, 1, (1, 12, 20, 3)).astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "exports" / "7")).signatures["serving_default"]
    low = served(image=tf.constant(image))["deblurred"].numpy()
    reference = Predictor(network).run_whole(image[0])
    assert low.dtype == np.float32 and low.shape == image.shape
    assert 10 * np.log10(1 / np.mean((low[0] - reference) ** 2)) > 35  # bfloat16 compute, float32 interface
