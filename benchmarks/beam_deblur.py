"""Beam deblurring throughput: images per second with 1 and 2 local workers, beside main.py --mode=predict.

    .venv/bin/python -m benchmarks.beam_deblur --quick          # tiny model, 16 images of 256x256 (~2 minutes)
    .venv/bin/python -m benchmarks.beam_deblur                  # paper model (N=17, random weights), 8 x 1280x720
    .venv/bin/python -m benchmarks.beam_deblur --images=24 --size=1920x1080 --workers=1,2,4 --json=out.json

Everything runs on one folder of generated JPEG photos (smooth random content: speed does not
depend on it), with one model saved both as a model directory (for predict) and as a SavedModel
export (for the pipeline; its default 1024 tile, so predict runs with ``--tile=1024`` to do the
same work). Each measurement is a fresh process, timed from start to exit (imports, model loading,
Beam's worker start-up included: what a user waits for) and, for the pipeline, also by the
pipeline's own summary line (from submission to the end). The pipeline's outputs are checked to
be byte-identical to predict's. Local workers share this machine's cores: with 2 cores, 2 workers
can at best double one worker's throughput, and TensorFlow in each worker already uses every core
(set ``TF_NUM_INTRAOP_THREADS`` to split them). ``docs/beam.md`` turns the numbers into a cluster size.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_model(folder, quick):
    """Model directory + SavedModel export of a random-weight IFAN (tiny with --quick, else the paper's)."""
    import keras
    import tensorflow as tf

    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network
    from ifan_tf.weights.model_dir import save_model_dir

    keras.utils.set_random_seed(0)
    network = build_ifan(ModelConfig(width=8, num_iterations=2) if quick else ModelConfig())
    network(tf.zeros([1, 16, 16, 3]))
    save_model_dir(os.path.join(folder, "model"), network)
    export_network(network, os.path.join(folder, "export"), warmup_requests=False)
    return os.path.join(folder, "model"), os.path.join(folder, "export")


def _make_photos(folder, count, height, width):
    import cv2
    import numpy as np

    from ifan_tf.io import image_io

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for index in range(count):
        noise = rng.uniform(0, 1, (height // 8, width // 8, 3)).astype(np.float32)
        image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        image_io.write_image(os.path.join(folder, f"photo_{index:04d}.jpg"), np.clip(image, 0, 1))


def _timed(command):
    started = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.time() - started
    if done.returncode != 0:
        sys.exit(f"benchmark command failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def _same_files(first, second):
    names = sorted(name for name in os.listdir(first) if name.endswith(".jpg"))
    return bool(names) and all(open(os.path.join(first, n), "rb").read() == open(os.path.join(second, n), "rb").read()
                               for n in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 16 images of 256x256")
    parser.add_argument("--images", type=int, default=None, help="number of images (default 16 quick, 8 otherwise)")
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT (default 256x256 quick, 1280x720 otherwise)")
    parser.add_argument("--workers", default="1,2", help="local worker counts to measure, comma-separated")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    count = args.images or (16 if args.quick else 8)
    width, height = map(int, (args.size or ("256x256" if args.quick else "1280x720")).split("x"))
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="beam-bench-") as work:
        model_dir, export_dir = _make_model(work, args.quick)
        photos = os.path.join(work, "photos")
        _make_photos(photos, count, height, width)
        megapixels = count * height * width / 1e6
        rows = []
        predicted = os.path.join(work, "predict")
        seconds, _ = _timed([python, "main.py", "--mode=predict", f"--model_dir={model_dir}", f"--input={photos}",
                             f"--output={predicted}", "--tile=1024"])
        rows.append({"run": "main.py --mode=predict", "wall_s": seconds, "pipeline_s": None, "identical": True})
        for workers in [int(w) for w in args.workers.split(",")]:
            output = os.path.join(work, f"beam{workers}")
            mode = "in_memory" if workers == 1 else "multi_processing"
            seconds, stdout = _timed([python, "-m", "ifan_tf.pipelines.deblur", f"--input={photos}",
                                      f"--output={output}", f"--model={export_dir}",
                                      f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"])
            inner = re.search(r" in ([0-9.]+) s on ", stdout)
            rows.append({"run": f"beam, {workers} worker(s) ({mode})", "wall_s": seconds,
                         "pipeline_s": float(inner.group(1)) if inner else None,
                         "identical": _same_files(predicted, output)})
    print(f"{count} JPEG images of {width}x{height} ({megapixels:.2f} Mpx), "
          f"{'tiny model (width 8, N=2)' if args.quick else 'paper model (N=17), float32'}, {os.cpu_count()} cores")
    print(f"{'run':<40} {'wall s':>8} {'img/s':>7} {'Mpx/s':>7} {'pipeline s':>11} {'img/s':>7}  same as predict")
    for row in rows:
        inner = row["pipeline_s"]
        inner_text = f"{inner:11.1f} {count / inner:7.2f}" if inner else f"{'-':>11} {'-':>7}"
        print(f"{row['run']:<40} {row['wall_s']:8.1f} {count / row['wall_s']:7.2f} {megapixels / row['wall_s']:7.3f} "
              f"{inner_text}  {'yes' if row['identical'] else 'NO'}")
        row.update(images=count, width=width, height=height, images_per_s=count / row["wall_s"])
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"quick": args.quick, "cores": os.cpu_count(), "rows": rows}, stream, indent=2)


if __name__ == "__main__":
    main()
