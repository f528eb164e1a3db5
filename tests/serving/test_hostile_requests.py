"""Requests a hostile client could send: each is INVALID_ARGUMENT (or made harmless) and the process lives.

Run through the loaded SavedModel's signature functions in a fresh process (like TF Serving, the
signature does not protect the graph: before the in-graph checks a rank-3 ``image`` aborted the
process inside oneDNN, a 250 KB PNG declaring 16000x16000 was decoded and run at full size).
"""
import json
import os
import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest

from hostile_inputs import corrupt_ihdr_png, gif_bytes, jpeg_bytes, png_bomb
from serving_test_images import TINY, png_bytes, random_pixels
from ifan_tf.inference.predictor import Predictor
from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving.export import export_network
from ifan_tf.serving.limits import ServingLimits

LIMITS = ServingLimits(max_pixels=96 * 96, max_batch=3, tile=64, tile_overlap=16)

# Fresh interpreter, TensorFlow only: runs each case and prints one JSON line per case as it goes,
# so a crash (the old behaviour) shows up as missing lines and a non-zero exit code.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import numpy as np, tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    cases = np.load(sys.argv[2], allow_pickle=False)
    for key in cases.files:
        signature, name = key.split("/")
        value = cases[key]
        if signature == "deblur_encoded":
            value = np.array([bytes(v) for v in value.reshape(-1)], object).reshape(value.shape)
        try:
            (output,) = model.signatures[signature](**{"image" if signature == "serving_default" else "image_bytes":
                                                      tf.constant(value)}).values()
            output = output.numpy()
            if signature == "serving_default":
                np.save(os.path.join(sys.argv[3], name + ".npy"), output)
            else:
                for i, png in enumerate(output):
                    open(os.path.join(sys.argv[3], f"{name}_{i}.png"), "wb").write(png)
            result = {"ok": True}
        except tf.errors.InvalidArgumentError as error:
            result = {"ok": False, "error": "INVALID_ARGUMENT", "message": error.message[:400]}
        except Exception as error:
            result = {"ok": False, "error": type(error).__name__, "message": str(error)[:400]}
        print("CASE " + json.dumps({"case": key, **result}), flush=True)
    print("ALIVE", flush=True)
""")


def _cases():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 20, 24, 3)).astype(np.float32)
    bad_values = image.copy()
    bad_values[0, 2, 3] = [np.nan, np.inf, -np.inf]
    bad_values[0, 5, 5] = [1e30, -1e30, np.nan]
    tiled = random_pixels((90, 100, 3), seed=9)  # 9000 pixels <= max_pixels, larger than a 64 tile
    too_large = random_pixels((100, 100, 3), seed=8)
    as_bytes = lambda items: np.array([np.frombuffer(b, np.uint8) for b in items], object)  # noqa: E731
    return {
        "serving_default/rank3": rng.uniform(0, 1, (16, 16, 3)).astype(np.float32),
        "serving_default/rank5": rng.uniform(0, 1, (1, 1, 16, 16, 3)).astype(np.float32),
        "serving_default/four_channels": rng.uniform(0, 1, (1, 16, 16, 4)).astype(np.float32),
        "serving_default/empty_batch": np.zeros((0, 16, 16, 3), np.float32),
        "serving_default/empty_image": np.zeros((1, 0, 16, 3), np.float32),
        "serving_default/batch_too_large": rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32),
        "serving_default/too_many_pixels": too_large[None].astype(np.float32) / 255,
        "serving_default/non_finite": bad_values,
        "serving_default/tiled": tiled[None].astype(np.float32) / 255,
        "deblur_encoded/png_bomb": png_bomb(16000),
        "deblur_encoded/png_too_many_pixels": png_bytes(too_large),
        "deblur_encoded/jpeg_too_many_pixels": jpeg_bytes(too_large),
        "deblur_encoded/bmp_too_many_pixels": cv2.imencode(".bmp", too_large)[1].tobytes(),
        "deblur_encoded/bomb_after_valid": [png_bytes(tiled), png_bomb(2000)],
        "deblur_encoded/corrupt_png_header": corrupt_ihdr_png(),
        "deblur_encoded/truncated_jpeg": jpeg_bytes(tiled)[:300],
        "deblur_encoded/gif": gif_bytes(),
        "deblur_encoded/batch_too_large": [png_bytes(tiled)] * 4,
        "deblur_encoded/tiled": png_bytes(tiled),
        "deblur_encoded/bmp_valid": cv2.imencode(".bmp", tiled[:30, :20, ::-1])[1].tobytes(),
    }, as_bytes


@pytest.fixture(scope="module")
def limited_export(tmp_path_factory):
    keras.utils.set_random_seed(4)
    network = build_ifan(TINY)
    return network, export_network(network, tmp_path_factory.mktemp("limited"), limits=LIMITS)


def test_hostile_requests_are_invalid_argument_and_the_process_lives(limited_export, tmp_path):
    network, version_dir = limited_export
    cases, as_bytes = _cases()
    arrays = {}
    for key, value in cases.items():
        if key.startswith("deblur_encoded/"):
            value = [value] if isinstance(value, bytes) else value
            arrays[key] = np.array([np.frombuffer(v, np.uint8).tobytes() for v in value], np.bytes_)
        else:
            arrays[key] = value
    np.savez(tmp_path / "cases.npz", **arrays)
    (tmp_path / "run.py").write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(version_dir), str(tmp_path / "cases.npz"),
                             str(out)], env=env, capture_output=True, text=True, timeout=600)
    lines = {json.loads(line[5:])["case"]: json.loads(line[5:]) for line in result.stdout.splitlines()
             if line.startswith("CASE ")}
    assert result.returncode == 0 and "ALIVE" in result.stdout, (result.returncode, result.stderr[-2000:])

    invalid = {key: message for key, message in {
        "serving_default/rank3": "[batch, height, width, 3]",
        "serving_default/rank5": "[batch, height, width, 3]",
        "serving_default/four_channels": "3 (RGB) channels",
        "serving_default/empty_batch": "max_batch",
        "serving_default/empty_image": ">= 1",
        "serving_default/batch_too_large": "max_batch=3",
        "serving_default/too_many_pixels": "max_pixels=9216",
        "deblur_encoded/png_bomb": "max_pixels=9216",
        "deblur_encoded/png_too_many_pixels": "max_pixels=9216",
        "deblur_encoded/jpeg_too_many_pixels": "max_pixels=9216",
        "deblur_encoded/bmp_too_many_pixels": "max_pixels=9216",
        "deblur_encoded/bomb_after_valid": "max_pixels=9216",
        "deblur_encoded/corrupt_png_header": "corrupt PNG header",
        "deblur_encoded/truncated_jpeg": "",
        "deblur_encoded/gif": "not a PNG, JPEG or BMP image",
        "deblur_encoded/batch_too_large": "max_batch=3",
    }.items()}
    for key, message in invalid.items():
        assert key in lines, key
        assert lines[key]["error"] == "INVALID_ARGUMENT" and message in lines[key]["message"], lines[key]

    # non-finite values are made finite: the output is finite and in [0, 1]
    assert lines["serving_default/non_finite"]["ok"], lines["serving_default/non_finite"]
    output = np.load(out / "non_finite.npy")
    assert output.shape == cases["serving_default/non_finite"].shape
    assert np.all(np.isfinite(output)) and output.min() >= 0 and output.max() <= 1

    # an image larger than the export's tile runs in tiles in the graph, like predict with the same tiles
    expected = Predictor(network, tile=LIMITS.tile, tile_overlap=LIMITS.tile_overlap).deblur(
        cases["serving_default/tiled"][0])
    whole = Predictor(network).deblur(cases["serving_default/tiled"][0])
    assert lines["serving_default/tiled"]["ok"] and lines["deblur_encoded/tiled"]["ok"]
    tiled = np.load(out / "tiled.npy")[0]
    np.testing.assert_allclose(tiled, expected, atol=1e-5)
    assert np.abs(tiled - whole).max() > 1e-4  # really tiled (the untiled result differs near seams)
    assert lines["deblur_encoded/bmp_valid"]["ok"], lines["deblur_encoded/bmp_valid"]  # declared size read right
    assert cv2.imdecode(np.fromfile(out / "bmp_valid_0.png", np.uint8), cv2.IMREAD_UNCHANGED).shape == (30, 20, 3)
    served_png = cv2.imdecode(np.fromfile(out / "tiled_0.png", np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert np.abs(served_png.astype(int) - np.rint(expected * 255).astype(int)).max() <= 1
