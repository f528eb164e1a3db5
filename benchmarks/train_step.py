"""Seconds per training step of IFAN on this machine (forward, RBN, three losses, backward, clip, RAdam).

Usage:
  python benchmarks/train_step.py                         # paper (batch 8, 256x256, N=17) and demo configs
  python benchmarks/train_step.py --configs=demo --precisions=float32,mixed_bfloat16 --steps=10

Times the real distributed step of ``ifan_tf.training.train_step`` (default strategy) on random
batches, after one warm-up step (tracing and graph optimisation, reported separately). Prints
one line per configuration and precision: median and min seconds per step over ``--steps``.
The official PyTorch code takes ~27 s per paper-configuration step on 2 CPU cores (float32).
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import ifan as ifan_configs  # noqa: E402

flags.DEFINE_list("configs", ["paper", "demo"], "Configurations: paper (configs/ifan.py) and/or demo (:demo).")
flags.DEFINE_list("precisions", ["float32"], "float32, mixed_bfloat16, mixed_float16.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration (after one warm-up step).")
FLAGS = flags.FLAGS


def time_config(name, precision, steps):
    from ifan_tf.training.train_step import make_distributed_train_step
    from ifan_tf.training.trainer import build_train_state

    config = ifan_configs.get_config("demo" if name == "demo" else None)
    config.train.precision = precision
    strategy = tf.distribute.get_strategy()
    state = build_train_state(config, strategy)
    batch_size, crop = config.train.batch_size, config.data.crop_size
    rng = np.random.default_rng(0)
    batch = {key: tf.constant(rng.uniform(size=(batch_size, crop, crop, 3)).astype(np.float32))
             for key in ("image", "left", "right", "target")}
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=batch_size,
                                          clip_norm=config.train.clip_norm, jit_compile=config.train.jit_compile)
    start = time.perf_counter()
    float(step_fn(batch)["total"])
    warmup = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step_fn(batch)["total"])
        times.append(time.perf_counter() - start)
    params = sum(int(np.prod(v.shape)) for v in state.trainable_variables)
    print(f"{name:6s} {precision:15s} batch {batch_size} {crop}x{crop} N={config.model.num_iterations} "
          f"width={config.model.width} params={params / 1e6:.2f}M | warm-up {warmup:.1f} s | "
          f"median {statistics.median(times):.2f} s/step, min {min(times):.2f} s/step over {steps} steps", flush=True)


def main(argv):
    del argv
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    for name in FLAGS.configs:
        if name not in ("paper", "demo"):
            raise app.UsageError(f"unknown config {name!r}: use paper and/or demo")
        for precision in FLAGS.precisions:
            time_config(name, precision, FLAGS.steps)


if __name__ == "__main__":
    app.run(main)
