"""Inference benchmark: seconds per image and peak memory of the paper model (N=17) on this machine.

    .venv/bin/python benchmarks/inference.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/inference.py --quick    # speed/memory at 1280x720 only
    .venv/bin/python benchmarks/inference.py --saved_model   # also through the exported SavedModel
    .venv/bin/python benchmarks/inference.py --serving_6000x4000   # 6000x4000 JPEG via deblur_encoded
    .venv/bin/python benchmarks/inference.py --export_tiles --before=/tmp/ifan-old   # tiled export vs another tree

Every measurement runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is honest:
TensorFlow, the model and the activations, nothing left over from another measurement. Weights
are random (Glorot, fixed seed): speed and memory do not depend on them. The bfloat16-vs-float32
PSNR uses the same random weights on a natural test image (scikit-image's bundled photos).

Reference points (official PyTorch code, same 2-core CPU): ~7 s per 1280x720 image, 4.4 GB peak
at 1680x1120.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"1280x720": (720, 1280), "1680x1120": (1120, 1680), "1920x1080": (1080, 1920), "4000x3000": (3000, 4000)}
UNTILED_TILE = 4096  # a tile budget of 16.8 MP: every --export_tiles size runs as one tile


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


def _test_image(height, width):
    """A defocused-looking natural image ``[H, W, 3]`` float32: bundled photos tiled, then blurred."""
    import cv2
    import numpy as np
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]
    rows = []
    for r in range(2):
        rows.append(np.concatenate([cv2.resize(photos[2 * r + c], (width // 2 + width % 2 * c, height // 2),
                                               interpolation=cv2.INTER_AREA) for c in range(2)], axis=1))
    rows[1] = cv2.resize(rows[1], (width, height - height // 2))
    image = np.concatenate(rows, axis=0).astype(np.float32) / 255
    return cv2.GaussianBlur(image, (0, 0), 2.5)


def _network(precision):
    import keras

    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    try:
        from ifan_tf.model.precision import keras_policy
    except ImportError:  # a tree from before the layout of ifan_tf/model/ (--export_tiles --before)
        from ifan_tf.precision import keras_policy

    keras.utils.set_random_seed(0)
    float_network = build_ifan(ModelConfig())
    if precision == "float32":
        return float_network
    network = build_ifan(ModelConfig(), dtype=keras_policy(precision))
    network.set_weights(float_network.get_weights())
    return network


def worker_speed(args):
    """Seconds per image (first call incl. tracing, then best/mean of ``runs``) and peak RSS."""
    import numpy as np

    from ifan_tf.inference.predictor import Predictor

    height, width = SIZES[args.size]
    image = _test_image(height, width)
    if args.saved_model:
        import tensorflow as tf

        model = tf.saved_model.load(args.saved_model)
        function = model.signatures["serving_default"]
        run = lambda: function(image=tf.constant(image[None]))["deblurred"].numpy()  # noqa: E731
    else:
        predictor = Predictor(_network(args.precision))
        run = lambda: predictor.deblur(image)  # noqa: E731
    started = time.perf_counter()
    run()
    first = time.perf_counter() - started
    times, cpu = [], []
    for _ in range(args.runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return {"first_s": first, "best_s": min(times), "mean_s": float(np.mean(times)), "cpu_s": float(np.mean(cpu)),
            "peak_rss_gb": _peak_rss_gb()}


def worker_psnr(args):
    """PSNR of the bfloat16 output against the float32 output (same weights) at 1280x720."""
    import numpy as np

    from ifan_tf.inference.predictor import Predictor

    image = _test_image(720, 1280)
    reference = Predictor(_network("float32")).deblur(image)
    low = Predictor(_network("bfloat16")).deblur(image)
    mse = float(np.mean((reference.astype(np.float64) - low) ** 2))
    return {"psnr_db": 10 * np.log10(1 / mse), "max_abs_diff": float(np.abs(reference - low).max())}


def worker_tiled(args):
    """Deblurs a 6000x4000 PNG file to a PNG file with automatic tiles for ``--budget_gb``."""
    import cv2
    import numpy as np

    from ifan_tf.inference.folder import predict_file
    from ifan_tf.inference.predictor import Predictor

    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "big.png"), os.path.join(folder, "big_deblurred.png")
        image = _test_image(4000, 6000)
        cv2.imwrite(source, np.rint(image[:, :, ::-1] * 255).astype(np.uint8))
        del image
        before = _peak_rss_gb()
        predictor = Predictor(_network(args.precision), memory_budget_gb=args.budget_gb)
        tile = predictor.tile_size_for(4000, 6000)
        started = time.perf_counter()
        predict_file(predictor, source, target)
        seconds = time.perf_counter() - started
        assert cv2.imread(target).shape == (4000, 6000, 3)
    return {"tile": tile, "tiles": predictor.tile_count(4000, 6000), "seconds": seconds,
            "peak_rss_gb": _peak_rss_gb(), "peak_rss_before_predict_gb": before}


def worker_export(args):
    """Exports the paper model with the tree's default limits, or with ``--tile`` (older trees too)."""
    from ifan_tf.serving.export import export_network
    from ifan_tf.serving.limits import ServingLimits

    limits = ServingLimits() if args.tile is None else ServingLimits(tile=args.tile)
    return {"path": export_network(_network(args.precision), args.export_dir, limits=limits),
            "tile": limits.tile, "tile_overlap": limits.tile_overlap}


def worker_big_jpeg(args):
    """Writes the 6000x4000 test image as a JPEG (quality 95) to ``--image``."""
    import cv2
    import numpy as np

    image = _test_image(4000, 6000)
    cv2.imwrite(args.image, np.rint(image[:, :, ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return {"bytes": os.path.getsize(args.image)}


def worker_serving_encoded(args):
    """Loads the SavedModel (TensorFlow only) and sends ``--image`` through ``deblur_encoded`` once."""
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(args.saved_model)
    function = model.signatures["deblur_encoded"]
    with open(args.image, "rb") as stream:
        data = stream.read()
    started = time.perf_counter()
    png = function(image_bytes=tf.constant([data]))["png_bytes"].numpy()[0]
    seconds = time.perf_counter() - started
    shape = tf.io.extract_jpeg_shape(data).numpy().tolist()
    decoded = tf.io.decode_png(png).numpy()
    assert list(decoded.shape) == shape and np.isfinite(decoded).all()
    return {"seconds": seconds, "peak_rss_gb": _peak_rss_gb(), "png_bytes": len(png),
            "imported_ifan_tf": any(m.startswith("ifan_tf") for m in sys.modules)}


WORKERS = {"speed": worker_speed, "psnr": worker_psnr, "tiled": worker_tiled, "export": worker_export,
           "big_jpeg": worker_big_jpeg, "serving_encoded": worker_serving_encoded}


def _spawn(*options, tree=REPO):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.path.abspath(tree)}
    result = subprocess.run([sys.executable, os.path.abspath(__file__), *options], env=env, capture_output=True,
                            text=True, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker {options} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _export_tiles(args):
    """Seconds per image of three exports side by side (fresh processes, alternating), then memory."""
    sizes = args.sizes.split(",")
    unknown = [size for size in sizes if size not in SIZES]
    if unknown or args.rounds < 1 or args.runs < 1:
        raise SystemExit(f"error: --sizes must be among {sorted(SIZES)} and --rounds/--runs >= 1 "
                         f"(got {args.sizes!r}, {args.rounds}, {args.runs})")
    if args.before and not os.path.isdir(os.path.join(args.before, "ifan_tf")):
        raise SystemExit(f"error: --before={args.before}: not a checkout of this project (no ifan_tf/ in it)")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        exports = {"default": _spawn("--worker=export", f"--export_dir={folder}/default"),
                   "untiled": _spawn("--worker=export", f"--export_dir={folder}/untiled", f"--tile={UNTILED_TILE}")}
        if args.before:
            exports["before"] = _spawn("--worker=export", f"--export_dir={folder}/before", tree=args.before)
        for name, export in exports.items():
            print(f"export {name}: tile {export['tile']}, overlap {export['tile_overlap']}", flush=True)
        for size in sizes:
            height, width = SIZES[size]
            if REPO not in sys.path:
                sys.path.insert(0, REPO)
            from ifan_tf.inference.tiling import tile_count

            times = {name: {"best": [], "mean": []} for name in exports}
            for round_index in range(args.rounds):
                order = list(exports) if round_index % 2 == 0 else list(reversed(exports))
                for name in order:
                    r = _spawn("--worker=speed", f"--saved_model={exports[name]['path']}", f"--size={size}",
                               f"--runs={args.runs}")
                    times[name]["best"].append(r["best_s"])
                    times[name]["mean"].append(r["mean_s"])
            # The best call of each process is the least disturbed by other load; the ratio compares minima.
            untiled = min(times["untiled"]["best"])
            for name, values in times.items():
                tiles = tile_count(height, width, exports[name]["tile"], exports[name]["tile_overlap"]) \
                    if name != "before" else "?"
                print(f"{size:>9} {name:>8} (tile {exports[name]['tile']}, {tiles} tiles): best "
                      f"{', '.join(f'{v:.2f}' for v in values['best'])} s/image, mean "
                      f"{', '.join(f'{v:.2f}' for v in values['mean'])} (per process, {args.runs} calls each); "
                      f"{min(values['best']) / untiled:.3f}x untiled (best)", flush=True)
        if not args.skip_memory:
            image = os.path.join(folder, "big.jpg")
            _spawn("--worker=big_jpeg", f"--image={image}")
            r = _spawn("--worker=serving_encoded", f"--saved_model={exports['default']['path']}", f"--image={image}")
            print(f"6000x4000 JPEG through the default export's deblur_encoded: {r['seconds']:.1f} s, "
                  f"peak RSS {r['peak_rss_gb']:.2f} GB (fresh process)", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--size", default="1280x720", choices=sorted(SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget_gb", type=float, default=2.5, help="memory budget of the 6000x4000 run")
    parser.add_argument("--saved_model", nargs="?", const="export", default=None,
                        help="also time the exported SavedModel's serving_default (worker: its path)")
    parser.add_argument("--export_dir")
    parser.add_argument("--image", help="worker: the 6000x4000 JPEG")
    parser.add_argument("--serving_6000x4000", action="store_true",
                        help="only: a 6000x4000 JPEG through the exported SavedModel's deblur_encoded "
                             "(float32, default export limits: in-graph tiles), peak RSS of a fresh process")
    parser.add_argument("--quick", action="store_true", help="1280x720 speed/memory only")
    parser.add_argument("--export_tiles", action="store_true",
                        help="only: the default SavedModel export's serving_default against an untiled export "
                             f"(tile {UNTILED_TILE}) and the default export of --before, alternating fresh processes; "
                             "then the default export's peak RSS on a 6000x4000 JPEG")
    parser.add_argument("--before", help="with --export_tiles: another checkout (e.g. a git worktree) to compare")
    parser.add_argument("--sizes", default="1280x720,1920x1080,4000x3000", help="with --export_tiles")
    parser.add_argument("--rounds", type=int, default=2, help="with --export_tiles: alternations per size")
    parser.add_argument("--tile", type=int, help="worker export: the tile limit (default: the tree's default)")
    parser.add_argument("--skip_memory", action="store_true", help="with --export_tiles: no 6000x4000 run")
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    if args.export_tiles:
        _export_tiles(args)
        return

    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other processes slow the wall-clock numbers; cpu_s is this process's CPU time)")
    if args.serving_6000x4000:
        with tempfile.TemporaryDirectory() as folder:
            image = os.path.join(folder, "big.jpg")
            size = _spawn("--worker=big_jpeg", f"--image={image}")["bytes"]
            path = _spawn("--worker=export", f"--precision={args.precision}", f"--export_dir={folder}/export")["path"]
            r = _spawn("--worker=serving_encoded", f"--saved_model={path}", f"--image={image}")
            print(f"SavedModel deblur_encoded, 6000x4000 JPEG ({size / 1e6:.1f} MB), {args.precision}, default "
                  f"export limits: {r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB "
                  f"(fresh process, ifan_tf imported: {r['imported_ifan_tf']})", flush=True)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        return
    sizes = ["1280x720"] if args.quick else ["1280x720", "1680x1120"]
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            r = _spawn("--worker=speed", f"--precision={precision}", f"--size={size}", f"--runs={args.runs}")
            print(f"{size:>9} {precision:>8}: {r['best_s']:.2f} s/image best, {r['mean_s']:.2f} mean of {args.runs} "
                  f"(first call {r['first_s']:.1f} s incl. tracing; cpu {r['cpu_s']:.2f} s), "
                  f"peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    if not args.quick:
        r = _spawn("--worker=psnr")
        print(f"bfloat16 vs float32 at 1280x720: PSNR {r['psnr_db']:.1f} dB, max |diff| {r['max_abs_diff']:.4f}",
              flush=True)
        for precision in ("float32", "bfloat16"):
            r = _spawn("--worker=tiled", f"--precision={precision}", f"--budget_gb={args.budget_gb}")
            print(f"6000x4000 {precision:>8}, budget {args.budget_gb} GB -> {r['tiles']} tiles of {r['tile']}: "
                  f"{r['seconds']:.1f} s (PNG in, PNG out), peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    if args.saved_model:
        with tempfile.TemporaryDirectory() as folder:
            for precision in ("float32", "bfloat16"):
                path = _spawn("--worker=export", f"--precision={precision}", f"--export_dir={folder}/{precision}")["path"]
                r = _spawn("--worker=speed", f"--saved_model={path}", f"--runs={args.runs}")
                print(f"SavedModel {precision:>8} 1280x720: {r['best_s']:.2f} s/image best (first {r['first_s']:.1f} s), "
                      f"peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
