"""Input pipeline throughput: 256x256 training crops from 1680x1120 images, with and without cache.

Makes the data once with the synthetic generator (DPDD-sized 8-bit scenes), then measures each
mode in its own process so that the peak memory (max RSS) belongs to that mode alone:
  python -m benchmarks.input_pipeline [--data_dir=/tmp/ifan_input_benchmark] [--num_scenes=24]
(from the repository root, or anywhere once the package is installed with ``pip install .``).
Prints, per mode: startup time (shard check + graph building), examples per second in steady
state (after a warm-up that, with the cache, fills it), and peak memory.
"""
from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import time

from absl import app, flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

flags.DEFINE_string("data_dir", "/tmp/ifan_input_benchmark", "Where the benchmark data is made (reused).")
flags.DEFINE_integer("num_scenes", 24, "Synthetic 1680x1120 scenes.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_integer("crop_size", 256, "Training crop size.")
flags.DEFINE_integer("steps", 40, "Timed batches per mode.")
flags.DEFINE_list("modes", ["no_cache", "cache"], "Modes to measure.")
flags.DEFINE_string("run_mode", None, "Internal: measure one mode in this process and print JSON.")
FLAGS = flags.FLAGS
HEIGHT, WIDTH = 1120, 1680


def make_data(data_dir: pathlib.Path, num_scenes: int) -> str:
    from ifan_tf.data import dataset_writer
    from ifan_tf.synthesis import synthetic_dataset

    try:
        summary = dataset_writer.load_summary(data_dir)
        if summary["splits"]["train"]["num_examples"] == num_scenes:
            return str(data_dir / "train-*.tfrecord")
    except FileNotFoundError:
        pass
    print(f"making {num_scenes} synthetic {WIDTH}x{HEIGHT} scenes in {data_dir} ...", flush=True)
    start = time.perf_counter()
    synthetic_dataset.synthesize_dataset(data_dir, num_scenes, seed=0, image_size=(HEIGHT, WIDTH), examples_per_shard=4,
                                  overwrite=True, png_compression=3)
    print(f"  took {time.perf_counter() - start:.1f} s", flush=True)
    return str(data_dir / "train-*.tfrecord")


def measure(mode: str, pattern: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    from ifan_tf.data import pipeline

    start = time.perf_counter()
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=FLAGS.batch_size, crop_size=FLAGS.crop_size,
                                          cache=(mode == "cache"), seed=0)
    iterator = iter(dataset)
    next(iterator)
    startup = time.perf_counter() - start
    # Warm up: with the cache, one full pass over the scenes fills it.
    warmup = -(-FLAGS.num_scenes // FLAGS.batch_size) + 3 if mode == "cache" else 3
    start = time.perf_counter()
    for _ in range(warmup):
        next(iterator)
    warmup_time = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        batch = next(iterator)
    batch["image"].numpy()
    elapsed = time.perf_counter() - start
    return {
        "mode": mode,
        "startup_s": round(startup, 2),
        "warmup_batches": warmup,
        "warmup_s": round(warmup_time, 2),
        "examples_per_s": round(FLAGS.steps * FLAGS.batch_size / elapsed, 1),
        "batches_per_s": round(FLAGS.steps / elapsed, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }


def main(argv):
    del argv
    data_dir = pathlib.Path(FLAGS.data_dir)
    pattern = str(data_dir / "train-*.tfrecord")
    if FLAGS.run_mode:
        print(json.dumps(measure(FLAGS.run_mode, pattern)))
        return
    pattern = make_data(data_dir, FLAGS.num_scenes)
    record_bytes = sum(p.stat().st_size for p in data_dir.glob("train-*.tfrecord"))
    print(f"data: {FLAGS.num_scenes} scenes of {WIDTH}x{HEIGHT} (c, l, r, target as 8-bit PNG), "
          f"{record_bytes / 2**20:.0f} MiB of records; batch {FLAGS.batch_size}, crops {FLAGS.crop_size}, "
          f"{os.cpu_count()} cores")
    for mode in FLAGS.modes:
        command = [sys.executable, "-m", "benchmarks.input_pipeline", f"--run_mode={mode}", f"--data_dir={data_dir}",
                   f"--num_scenes={FLAGS.num_scenes}", f"--batch_size={FLAGS.batch_size}",
                   f"--crop_size={FLAGS.crop_size}", f"--steps={FLAGS.steps}"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if result.returncode != 0:
            print(result.stderr[-3000:])
            raise SystemExit(f"mode {mode} failed")
        numbers = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{mode:>9}: {numbers['examples_per_s']:7.1f} examples/s ({numbers['batches_per_s']} batches/s), "
              f"startup {numbers['startup_s']} s, warm-up {numbers['warmup_batches']} batches in "
              f"{numbers['warmup_s']} s, peak memory {numbers['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    app.run(main)
