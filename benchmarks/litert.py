"""LiteRT benchmark: the paper model (N=17) as .tflite vs the SavedModel, accuracy, speed and size.

    .venv/bin/python -m benchmarks.litert              # everything (about 10 minutes on 2 busy cores)
    .venv/bin/python -m benchmarks.litert --runs=5     # more timed runs per measurement

One process, same machine, measured side by side: the paper model (``ModelConfig()``: width 32,
N=17, 10.5 M parameters, random Glorot weights with a fixed seed) is exported once as a TF Serving
SavedModel and as ``.tflite`` tile models (512x512: float32, float16, dynamic_int8). Printed:

- parity: max abs difference of the float32 ``.tflite`` vs the SavedModel on the same 512x512 tile
  (target <= 1e-4);
- PSNR of the float16 and dynamic_int8 models against the float32 one, on the tile and on a
  1280x720 image (target >= 40 dB for float16);
- latency per 512x512 tile and per 1280x720 image: LiteRT with 2 threads and XNNPACK (the image in
  6 tiles of 512 with overlap 32, ``ifan_tf.litert.runner``) next to the SavedModel with TensorFlow
  on 2 threads (whole image, and the same 6 tiles). Timed runs of all models are interleaved so a
  change of machine load hits them alike; best and median of ``--runs``;
- model sizes on disk.

The test image is the natural defocused-looking photo of ``benchmarks/inference.py``. Random
weights make the PSNR check weaker than it would be with trained weights (there are none here).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

TILE, OVERLAP, THREADS = 512, 32, 2
VARIANTS = ("none", "float16", "dynamic_int8")


def _psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _folder_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _timed(function, runs_by_name, name):
    started = time.perf_counter()
    result = function()
    runs_by_name.setdefault(name, []).append(time.perf_counter() - started)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (after one warm-up)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from benchmarks.inference import _test_image
    from ifan_tf.litert.export import export_network as export_litert
    from ifan_tf.litert.runner import LiteRTTileRunner, deblur_with_fixed_tiles
    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network as export_saved_model

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    load_before = os.getloadavg()
    keras.utils.set_random_seed(0)
    network = build_ifan(ModelConfig())
    print(f"paper model: {network.count_params():,} parameters (random weights); load average {load_before[0]:.1f}",
          flush=True)
    image = _test_image(720, 1280)
    tile_image = np.ascontiguousarray(image[104:104 + TILE, 384:384 + TILE])[None]

    folder = tempfile.mkdtemp(prefix="ifan-litert-bench-")
    started = time.perf_counter()
    saved_model_path = export_saved_model(network, os.path.join(folder, "saved_model"))
    serving = tf.saved_model.load(saved_model_path).signatures["serving_default"]
    print(f"SavedModel exported and loaded in {time.perf_counter() - started:.0f} s", flush=True)
    runners = {}
    for variant in VARIANTS:
        started = time.perf_counter()
        path = export_litert(network, os.path.join(folder, "litert"), tile=TILE, quantize=variant, tile_overlap=OVERLAP)
        runners[variant] = LiteRTTileRunner(path, num_threads=THREADS)
        print(f"LiteRT {variant} exported in {time.perf_counter() - started:.0f} s", flush=True)
    del network

    def saved_model_run(batch):
        return serving(image=tf.constant(batch))["deblurred"].numpy()

    tile_functions = {"SavedModel (TF)": lambda: saved_model_run(tile_image)}
    image_functions = {"SavedModel (TF), whole image": lambda: saved_model_run(image[None])[0],
                       f"SavedModel (TF), {TILE} tiles": lambda: deblur_with_fixed_tiles(
                           saved_model_run, image, TILE, OVERLAP)}
    for variant, runner in runners.items():
        tile_functions[f"LiteRT {variant}"] = lambda runner=runner: runner.run_tile(tile_image)
        image_functions[f"LiteRT {variant}, {TILE} tiles"] = lambda runner=runner: deblur_with_fixed_tiles(
            runner.run_tile, image, TILE, OVERLAP)

    tile_outputs = {name: function() for name, function in tile_functions.items()}  # warm-up
    tile_times = {}
    for _ in range(args.runs):
        for name, function in tile_functions.items():
            _timed(function, tile_times, name)
    print("tile timings done", flush=True)
    image_outputs = {name: function() for name, function in image_functions.items()}  # warm-up
    image_times = {}
    for _ in range(args.runs):
        for name, function in image_functions.items():
            _timed(function, image_times, name)
    load_after = os.getloadavg()

    reference_tile = tile_outputs["SavedModel (TF)"]
    float_tile = tile_outputs["LiteRT none"]
    float_image = image_outputs[f"LiteRT none, {TILE} tiles"]
    print()
    print(f"Parity, float32 .tflite vs SavedModel on one {TILE}x{TILE} tile: max abs difference "
          f"{np.abs(float_tile - reference_tile).max():.2e} (target <= 1e-4)")
    print(f"Parity, 1280x720 in {TILE} tiles: LiteRT float32 vs SavedModel on the same tiles: max abs "
          f"{np.abs(float_image - image_outputs[f'SavedModel (TF), {TILE} tiles']).max():.2e}; "
          f"vs the whole-image SavedModel: max abs "
          f"{np.abs(float_image - image_outputs['SavedModel (TF), whole image']).max():.2e}, PSNR "
          f"{_psnr(float_image, image_outputs['SavedModel (TF), whole image']):.1f} dB")
    print()
    print(f"{'model':<36} {'size MB':>8} {'PSNR tile':>10} {'PSNR 720p':>10} {'tile best s':>12} {'tile med s':>11} "
          f"{'720p best s':>12} {'720p med s':>11}")
    rows = [("SavedModel (TF)", _folder_bytes(saved_model_path), None, "SavedModel (TF), whole image")]
    rows.append(("SavedModel (TF), 512 tiles", None, None, f"SavedModel (TF), {TILE} tiles"))
    for variant, runner in runners.items():
        rows.append((f"LiteRT {variant}", os.path.getsize(runner.model_path), f"LiteRT {variant}",
                     f"LiteRT {variant}, {TILE} tiles"))
    for label, size, tile_name, image_name in rows:
        tile_name = tile_name or ("SavedModel (TF)" if label == "SavedModel (TF)" else None)
        tile_cell = tile_times.get(tile_name, [])
        psnr_tile = _psnr(tile_outputs[tile_name], float_tile) if tile_name and tile_name.startswith("LiteRT") else None
        psnr_image = _psnr(image_outputs[image_name], float_image) if image_name.startswith("LiteRT") else None
        print(f"{label:<36} {size / 1e6 if size else float('nan'):>8.1f} "
              f"{psnr_tile if psnr_tile is not None else float('nan'):>10.1f} "
              f"{psnr_image if psnr_image is not None else float('nan'):>10.1f} "
              f"{min(tile_cell) if tile_cell else float('nan'):>12.2f} "
              f"{np.median(tile_cell) if tile_cell else float('nan'):>11.2f} "
              f"{min(image_times[image_name]):>12.2f} {np.median(image_times[image_name]):>11.2f}")
    print(f"\n(PSNR against the float32 .tflite; {THREADS} threads everywhere, LiteRT with XNNPACK; "
          f"{args.runs} interleaved runs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
