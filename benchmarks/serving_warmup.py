"""First-request latency of a served export with and without TF Serving's warm-up replay, side by side.

    python -m benchmarks.serving_warmup              # paper model (random weights), default limits, 3 rounds
    python -m benchmarks.serving_warmup --quick      # tiny model, tile 128, 1 round: a check that it runs

The model (``--model``: ``paper`` N=17 width 32, ``demo`` width 16 N=8, ``tiny`` width 8 N=3) is
exported once with random weights and its warm-up file (``ifan_tf.serving.warmup``). Each round
starts two fresh "server" processes that import only TensorFlow and tensorflow_serving's protos
(never ifan_tf), in alternating order: ``warm`` loads the SavedModel and replays
``assets.extra/tf_serving_warmup_requests`` as TF Serving does before marking the version
AVAILABLE; ``cold`` only loads it. Both then send the same requests, of other sizes than the
warm-up ones (as real traffic would): a JPEG photo to ``deblur_encoded`` (about 1.5 tiles of
pixels, tiled) and a float image to ``serving_default`` (3/4 of a tile, whole), each twice: the
first call of a signature is its first request, the second the steady state. Printed: medians
over the rounds of the time to AVAILABLE (load + warm-up), every latency, and the ratio of the
cold to the warm first request.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

SERVER = textwrap.dedent("""
    import json, os, sys, time
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import numpy as np, tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    version_dir, inputs_path, mode = sys.argv[1:4]
    started = time.perf_counter()
    model = tf.saved_model.load(version_dir)
    load_s = time.perf_counter() - started
    records, started = 0, time.perf_counter()
    if mode == "warm":
        path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
        for record in tf.data.TFRecordDataset(path):
            request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
            model.signatures[request.model_spec.signature_name](
                **{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
            records += 1
    warmup_s = time.perf_counter() - started
    inputs = np.load(inputs_path, allow_pickle=False)
    calls = [("deblur_encoded", {"image_bytes": tf.constant([inputs["jpeg"].tobytes()])}),
             ("serving_default", {"image": tf.constant(inputs["image"])})]
    latency = {}
    for signature, arguments in calls:
        for label in ("first", "steady"):
            started = time.perf_counter()
            (output,) = model.signatures[signature](**arguments).values()
            output.numpy()
            latency[f"{label} {signature}"] = time.perf_counter() - started
    print("RESULT " + json.dumps({"load_s": load_s, "warmup_s": warmup_s, "records": records, "latency": latency,
                                  "imported_ifan_tf": any(m.startswith("ifan_tf") for m in sys.modules)}), flush=True)
""")


def _round8(value):
    return max(8, int(round(value / 8)) * 8)


def request_sizes(tile):
    """``{"jpeg": (h, w), "image": (h, w)}``: a 4:3 photo of ~1.5 tiles (tiled) and a 3/4-tile float image."""
    return {"jpeg": (_round8(1.05 * tile), _round8(1.4 * tile)), "image": (_round8(0.75 * tile), tile)}


def _inputs(tile):
    import cv2
    import numpy as np
    import skimage.data

    sizes = request_sizes(tile)
    photo = skimage.data.astronaut()  # a different photo than the warm-up's
    height, width = sizes["jpeg"]
    jpeg = cv2.imencode(".jpg", cv2.resize(photo[:, :, ::-1], (width, height), interpolation=cv2.INTER_CUBIC),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    height, width = sizes["image"]
    image = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255
    return {"jpeg": jpeg.reshape(-1), "image": image}


def _export(model, tile, folder):
    import keras

    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network
    from ifan_tf.serving.limits import ServingLimits

    configs = {"tiny": ModelConfig(width=8, num_iterations=3), "demo": ModelConfig(width=16, num_iterations=8),
               "paper": ModelConfig()}
    keras.utils.set_random_seed(0)
    return export_network(build_ifan(configs[model]), os.path.join(folder, "export"), limits=ServingLimits(tile=tile))


def _serve(script, version_dir, inputs, mode, folder):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, script, version_dir, inputs, mode], env=env, capture_output=True,
                            text=True, cwd=folder)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} server process failed (exit code {result.returncode}):\n{result.stderr[-3000:]}")
    outcome = json.loads(lines[-1][len("RESULT "):])
    if outcome["imported_ifan_tf"]:
        raise RuntimeError("the server process imported ifan_tf")
    return outcome


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="paper", choices=("tiny", "demo", "paper"))
    parser.add_argument("--tile", type=int, default=1024, help="export tile (a budget of tile*tile pixels)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one warm and one cold process")
    parser.add_argument("--quick", action="store_true", help="tiny model, tile 128, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.tile, args.rounds = "tiny", 128, 1
    import numpy as np

    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    results = {"warm": [], "cold": []}
    with tempfile.TemporaryDirectory() as folder:
        version_dir = _export(args.model, args.tile, folder)
        with open(os.path.join(version_dir, "assets.extra", "ifan_tf.json")) as stream:
            warmups = json.load(stream)["warmup_requests"]
        inputs = os.path.join(folder, "inputs.npz")
        np.savez(inputs, **_inputs(args.tile))
        script = os.path.join(folder, "server.py")
        with open(script, "w") as stream:
            stream.write(SERVER)
        for index in range(args.rounds):
            for mode in (("warm", "cold") if index % 2 == 0 else ("cold", "warm")):
                results[mode].append(_serve(script, version_dir, inputs, mode, folder))
                print(f"round {index + 1} {mode}: {json.dumps(results[mode][-1]['latency'])}", flush=True)
    sizes = request_sizes(args.tile)
    described = ", ".join(f"{w['signature']} {w['image_size'][0]}x{w['image_size'][1]}" for w in warmups)
    print(f"model {args.model}, tile {args.tile}, {args.rounds} round(s) of fresh processes in alternating order; "
          f"warm-up records: {described}")
    median = lambda mode, get: statistics.median(get(r) for r in results[mode])  # noqa: E731
    print(f"{'':44s} {'with warm-up':>13s} {'without':>10s} {'ratio':>7s}")
    available = {mode: median(mode, lambda r: r["load_s"] + r["warmup_s"]) for mode in results}
    print(f"{'time to AVAILABLE (load + warm-up replay)':44s} {available['warm']:12.2f}s {available['cold']:9.2f}s")
    names = {"deblur_encoded": "deblur_encoded JPEG {}x{}".format(*sizes["jpeg"]),
             "serving_default": "serving_default float {}x{}".format(*sizes["image"])}
    for key in results["warm"][0]["latency"]:
        label, signature = key.split(" ")
        warm, cold = (median(mode, lambda r: r["latency"][key]) for mode in ("warm", "cold"))
        print(f"{label + ' ' + names[signature]:44s} {warm:12.3f}s {cold:9.3f}s {cold / warm:6.1f}x")
    first = [k for k in results["warm"][0]["latency"] if k.startswith("first ")]
    ratio = (sum(median("cold", lambda r: r["latency"][k]) for k in first)
             / sum(median("warm", lambda r: r["latency"][k]) for k in first))
    print(f"first requests without / with warm-up: {ratio:.1f}x; warm-up adds "
          f"{available['warm'] - available['cold']:.1f} s to the time to AVAILABLE")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
