"""Serving load benchmark: concurrent mixed requests against an exported SavedModel.

    .venv/bin/python benchmarks/serving_load.py                       # tiny model, 200 requests, 8 threads
    .venv/bin/python benchmarks/serving_load.py --model=demo --requests=400 --concurrency=16

A model with random weights is exported (``--model``: ``tiny`` width 8 N=3, ``demo`` width 16 N=8,
``paper`` N=17) with the default export limits, then a fresh "server" process that imports only
TensorFlow loads the SavedModel and serves ``--requests`` requests from ``--concurrency`` threads
calling its signature functions, the way TF Serving runs one session from many request threads.
The requests mix valid images (PNG and float tensors, checked against the first answer for the
same input), wrong shapes, corrupt bytes, a GIF and decompression bombs (a ~250 KB PNG declaring
16000x16000). It prints the request counts, concurrency, peak RSS of the server process and the
latency percentiles of valid and rejected requests; it fails if a valid request is not answered
identically, a bad one is not INVALID_ARGUMENT, or the server dies.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = textwrap.dedent("""
    import concurrent.futures, json, os, resource, sys, time
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import numpy as np, tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    inputs = np.load(sys.argv[2], allow_pickle=False)
    requests, concurrency = int(sys.argv[3]), int(sys.argv[4])
    kinds = sorted(inputs.files)

    def call(kind):
        signature, _, expect = kind.split("/")
        value = inputs[kind]
        if signature == "deblur_encoded":
            value = [bytes(value.tobytes())]
            arguments = {"image_bytes": tf.constant(value)}
        else:
            arguments = {"image": tf.constant(value)}
        started = time.perf_counter()
        try:
            (output,) = model.signatures[signature](**arguments).values()
            outcome = ("OK", output.numpy())
        except tf.errors.InvalidArgumentError:
            outcome = ("INVALID_ARGUMENT", None)
        except Exception as error:
            outcome = (type(error).__name__, None)
        return kind, expect, outcome, time.perf_counter() - started

    reference = {kind: call(kind)[2][1] for kind in kinds if kind.endswith("/valid")}
    schedule = [kinds[i % len(kinds)] for i in range(requests)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(call, schedule))
    wall = time.perf_counter() - started
    failures, latency = [], {"valid": [], "bad": []}
    for kind, expect, (status, output), seconds in results:
        if expect == "valid":
            same = status == "OK" and (output.dtype == object and list(output) == list(reference[kind])
                                       or output.dtype != object and np.array_equal(output, reference[kind]))
            if not same:
                failures.append(f"{kind}: {status}")
            latency["valid"].append(seconds)
        else:
            if status != "INVALID_ARGUMENT":
                failures.append(f"{kind}: {status}")
            latency["bad"].append(seconds)
    percentiles = {group: [float(np.percentile(values, q)) for q in (50, 90, 99)] for group, values in latency.items()}
    print("RESULT " + json.dumps({
        "requests": len(results), "valid": len(latency["valid"]), "bad": len(latency["bad"]), "wall_s": wall,
        "failures": failures, "percentiles": percentiles,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}), flush=True)
""")


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side=16000):
    """A valid gray PNG of ``side x side`` zeros (16000: 256 MB of pixels in ~250 KB)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def _request_inputs(size):
    """name ``signature/kind/expect`` -> array (uint8 bytes for encoded inputs)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.uniform(0, 1, (size, size, 3)).astype(np.float32), (0, 0), 2)
    pixels = np.rint(image * 255).astype(np.uint8)
    png = cv2.imencode(".png", pixels)[1].tobytes()
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    corrupt = bytearray(png)
    corrupt[12:16] = b"IHDX"
    as_array = lambda data: np.frombuffer(data, np.uint8)  # noqa: E731
    return {
        "deblur_encoded/png/valid": as_array(png),
        "deblur_encoded/jpeg/valid": as_array(jpeg),
        "serving_default/float/valid": image[None],
        "serving_default/rank3/bad": image,
        "serving_default/channels/bad": np.zeros((1, 8, 8, 4), np.float32),
        "serving_default/batch/bad": np.zeros((64, 8, 8, 3), np.float32),
        "deblur_encoded/corrupt_header/bad": as_array(bytes(corrupt)),
        "deblur_encoded/truncated_jpeg/bad": as_array(jpeg[:200]),
        "deblur_encoded/gif/bad": as_array(b"GIF89a\x04\x00\x04\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00\x00"
                                           b"\x00\x00\x04\x00\x04\x00\x00\x02\x04\x84\x8f\xa9\x0b\x00;"),
        "deblur_encoded/png_bomb/bad": as_array(png_bomb(16000)),
    }


def _export(model, folder):
    import keras

    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network

    configs = {"tiny": ModelConfig(width=8, num_iterations=3), "demo": ModelConfig(width=16, num_iterations=8),
               "paper": ModelConfig()}
    keras.utils.set_random_seed(0)
    return export_network(build_ifan(configs[model]), os.path.join(folder, "export"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", choices=("tiny", "demo", "paper"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=128, help="side of the valid test images")
    args = parser.parse_args()
    import numpy as np

    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        version_dir = _export(args.model, folder)
        inputs = os.path.join(folder, "inputs.npz")
        np.savez(inputs, **_request_inputs(args.image_size))
        script = os.path.join(folder, "server.py")
        with open(script, "w") as stream:
            stream.write(SERVER)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        result = subprocess.run([sys.executable, script, version_dir, inputs, str(args.requests),
                                 str(args.concurrency)], env=env, capture_output=True, text=True, cwd=folder)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        print(f"server process died (exit code {result.returncode}):\n{result.stderr[-3000:]}", file=sys.stderr)
        return 1
    r = json.loads(lines[-1][len("RESULT "):])
    valid, bad = r["percentiles"]["valid"], r["percentiles"]["bad"]
    print(f"model {args.model}, {r['requests']} requests ({r['valid']} valid {args.image_size}x{args.image_size}, "
          f"{r['bad']} bad: wrong shapes, corrupt bytes, GIF, 16000x16000 PNG bombs), concurrency "
          f"{args.concurrency}, {r['wall_s']:.1f} s wall ({r['requests'] / r['wall_s']:.1f} requests/s)")
    print(f"latency valid: p50 {valid[0] * 1e3:.0f} ms, p90 {valid[1] * 1e3:.0f} ms, p99 {valid[2] * 1e3:.0f} ms; "
          f"bad: p50 {bad[0] * 1e3:.0f} ms, p90 {bad[1] * 1e3:.0f} ms, p99 {bad[2] * 1e3:.0f} ms")
    print(f"server peak RSS {r['peak_rss_gb']:.2f} GB; server alive at the end; "
          f"wrong answers: {len(r['failures'])}")
    for failure in r["failures"][:20]:
        print(f"  {failure}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
