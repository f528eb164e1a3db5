"""TF Serving warm-up requests written by the export: read back with TF Serving's protos and replayed
against the SavedModel in a fresh process that never imports ifan_tf, as the server does at load."""
import json
import os
import subprocess
import sys
import textwrap
import types

import cv2
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving_test_images import TINY
from ifan_tf.inference.tiling import tile_count
from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving import warmup
from ifan_tf.serving.export import export_network
from ifan_tf.serving.limits import ServingLimits

SMALL_TILE = ServingLimits(tile=64, tile_overlap=16, max_batch=2)

# A fresh interpreter: TensorFlow and tensorflow_serving's protos only. Replays every record of the
# warm-up file like TF Serving (PredictRequest -> the signature it names) and saves the outputs.
REPLAY_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np, tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    version_dir, outputs_path = sys.argv[1:3]
    model = tf.saved_model.load(version_dir)
    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    outputs, records = {}, []
    for index, record in enumerate(tf.data.TFRecordDataset(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        result = model.signatures[request.model_spec.signature_name](**inputs)
        records.append({"type": log.WhichOneof("log_type"), "signature": request.model_spec.signature_name,
                        "model_name": request.model_spec.name,
                        "inputs": {name: [list(t.shape), t.dtype.name] for name, t in inputs.items()}})
        for name, value in result.items():
            value = value.numpy()
            outputs[f"{index}/{name}"] = (np.frombuffer(value[0], np.uint8) if value.dtype == object else value)
    outputs["records"] = np.array(json.dumps(records))
    outputs["imported_ifan_tf"] = np.array(any(m == "ifan_tf" or m.startswith("ifan_tf.") for m in sys.modules))
    np.savez(outputs_path, **outputs)
""")


@pytest.fixture(scope="module")
def small_tile_export(tmp_path_factory):
    """A tiny IFAN exported with 64-pixel tiles (so the warm-up photo is small and tiled)."""
    network = build_ifan(TINY)
    return export_network(network, tmp_path_factory.mktemp("warm"), limits=SMALL_TILE)


def _records(version_dir):
    path = os.path.join(version_dir, warmup.WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def _encoded_image(log):
    (data,) = tf.make_ndarray(log.predict_log.request.inputs["image_bytes"])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), data


def test_records_are_prediction_logs_within_the_limits(small_tile_export):
    logs = _records(small_tile_export)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert [r.model_spec.signature_name for r in requests] == ["serving_default", "deblur_encoded"]
    assert [sorted(r.inputs) for r in requests] == [["image"], ["image_bytes"]]
    image = tf.make_ndarray(requests[0].inputs["image"])
    assert image.shape == (1, 64, 64, 3) and image.dtype == np.float32  # one tile, batch 1
    assert len(requests[0].inputs["image"].float_val) == 1  # stored once, whatever the size
    pixels, data = _encoded_image(logs[1])
    height, width = pixels.shape[:2]
    assert data[:3] == b"\xff\xd8\xff" and pixels.shape[2] == 3  # an RGB JPEG
    assert (height, width) == (56, 80) and height * width > 64 * 64
    assert tile_count(height, width, 64, 16) > 1  # the graph runs it in tiles
    info = json.loads(open(os.path.join(small_tile_export, "assets.extra", "ifan_tf.json")).read())
    assert [r["signature"] for r in info["warmup_requests"]] == ["serving_default", "deblur_encoded"]
    assert info["warmup_requests"][1]["image_size"] == [56, 80]


def test_replay_in_a_fresh_process_without_ifan_tf(small_tile_export, tmp_path):
    script, outputs_path = tmp_path / "replay.py", tmp_path / "outputs.npz"
    script.write_text(REPLAY_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(script), str(small_tile_export), str(outputs_path)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(outputs_path)
    assert not bool(outputs["imported_ifan_tf"])
    records = json.loads(str(outputs["records"]))
    assert [(r["type"], r["signature"]) for r in records] == [("predict_log", "serving_default"),
                                                              ("predict_log", "deblur_encoded")]
    assert records[0]["inputs"] == {"image": [[1, 64, 64, 3], "float32"]}
    assert records[1]["inputs"] == {"image_bytes": [[1], "string"]}
    deblurred = outputs["0/deblurred"]
    assert deblurred.shape == (1, 64, 64, 3) and deblurred.dtype == np.float32
    assert np.isfinite(deblurred).all() and deblurred.min() >= 0 and deblurred.max() <= 1
    png = outputs["1/png_bytes"]
    assert png[:8].tobytes() == b"\x89PNG\r\n\x1a\n"
    returned = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert returned.shape == (56, 80, 3) and returned.dtype == np.uint8  # the photo's size, 8-bit RGB


def test_default_export_warms_a_full_tile_and_a_tiled_photo(exported):
    _, _, version_dir = exported  # default limits: tile 1024, max_pixels 40 MP
    logs = _records(version_dir)
    image = logs[0].predict_log.request.inputs["image"]
    assert [d.size for d in image.tensor_shape.dim] == [1, 1024, 1024, 3]
    pixels, _ = _encoded_image(logs[1])
    assert pixels.shape == (840, 1256, 3) and tile_count(840, 1256, 1024, 32) > 1
    size = os.path.getsize(os.path.join(version_dir, warmup.WARMUP_FILE))
    assert size < 1_000_000, size  # small next to the weights: a JPEG and one float value


@pytest.mark.parametrize("max_pixels", [1, 2, 5000, 64 * 64, 64 * 64 + 1, 200_000])
def test_sizes_respect_max_pixels(max_pixels):
    limits = ServingLimits(tile=64, max_pixels=max_pixels)
    side = warmup.float_image_side(limits)
    height, width = warmup.encoded_image_size(limits)
    assert 1 <= side <= 64 and side * side <= max_pixels
    assert height >= 1 and width >= 1 and height * width <= max_pixels
    if max_pixels >= 56 * 80:
        assert (height, width) == (56, 80)  # the smallest tiled 3:2 photo fits
    else:
        assert height * width > max_pixels // 2  # the largest the export accepts, run whole


def test_nowarmup_requests_leaves_the_file_out(tmp_path, capsys):
    from ifan_tf.modes import run_mode
    from ifan_tf.weights.model_dir import save_model_dir

    save_model_dir(tmp_path / "model", build_ifan(TINY))
    flags = types.SimpleNamespace(model_dir=str(tmp_path / "model"), export_dir=str(tmp_path / "exports"),
                                  export_version=None, precision="float32", overwrite=False, max_pixels=None,
                                  max_batch=None, tile=64, tile_overlap=16, warmup_requests=False)
    assert run_mode("export", flags) == 0
    assert "warm-up requests: none" in capsys.readouterr().out
    assert not (tmp_path / "exports" / "1" / warmup.WARMUP_FILE).exists()
    info = json.loads((tmp_path / "exports" / "1" / "assets.extra" / "ifan_tf.json").read_text())
    assert "warmup_requests" not in info


def test_missing_serving_package_is_a_clear_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="tensorflow-serving-api.*--nowarmup_requests"):
        export_network(build_ifan(TINY), tmp_path / "exports", limits=SMALL_TILE)
    assert not (tmp_path / "exports").exists()


def test_stand_in_server_replays_the_warmup_at_load(rest_server):
    _, fake = rest_server  # the session's export (default limits) as TF Serving would load it
    assert fake.warmup_records == 2 and fake.requests == 0


def test_stand_in_replay_skips_a_missing_file_and_fails_on_a_bad_record(small_tile_export, tmp_path):
    from warmup_replay import replay_warmup

    model = tf.saved_model.load(str(small_tile_export))
    assert replay_warmup(model, small_tile_export) == 2
    copy = tmp_path / "1"
    (copy / "assets.extra").mkdir(parents=True)
    assert replay_warmup(model, copy) == 0  # no file: nothing to replay, like TF Serving
    log = _records(small_tile_export)[0]
    log.predict_log.request.inputs["image"].CopyFrom(tf.make_tensor_proto(0.5, tf.float32, shape=[3, 8, 8, 3]))
    with tf.io.TFRecordWriter(str(copy / warmup.WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())  # batch 3 > max_batch 2: TF Serving would fail the load
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch=2"):
        replay_warmup(model, copy)
