"""Seconds per IFAN training step (forward, RBN, three losses, backward, clip, RAdam).

Usage (from the repository root):
  python -m benchmarks.train_step                                # paper and demo configs
  python -m benchmarks.train_step --configs=demo --precisions=float32,mixed_bfloat16 --steps=10
  python -m benchmarks.train_step --profile_dir=/tmp/trace --configs=paper   # per-op costs
  python -m benchmarks.train_step --configs=paper --batch_size=4             # less memory
  python -m benchmarks.train_step --configs=demo --precisions=mixed_bfloat16 --steps=200 \
      --data='runs/demo/data/train-*.tfrecord'                               # like a training run

Times the real distributed step of ``ifan_tf.training.train_step`` (default strategy) on random
batches, after one warm-up step (tracing and graph optimisation, reported separately). RAdam's
update count starts at ``--start_update`` (100), so the steps are rectified updates as in a run in
progress (the first five updates of a run are un-rectified, another computation).
``--configs=demo_shipped`` times the demo configuration itself (see ``CONFIG_VARIANTS``). With
``--data`` the batches come from the trainer's input pipeline (``make_distributed_dataset``, cached
and shuffled as in training) and each timed step includes fetching its batch, as in the trainer's
loop. The first 10 steps after the warm-up are not timed then. ``--noskip_non_finite`` times the step
that applies every update (``train.max_skipped_steps=0``).

``--batch_size=N`` replaces the configuration's batch size, e.g. to time the paper step on a
machine where its batch of 8 does not fit in memory.

Times vary with the machine's other jobs: compare figures measured in one sitting, on one machine
(docs/results/training_speed.md).
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("configs", ["paper", "demo"],
                  "Configurations: paper (configs/ifan.py), demo (demo,IFAN), demo_shipped (demo).")
flags.DEFINE_list("precisions", ["float32"], "float32, mixed_bfloat16, mixed_float16.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration and precision (after one warm-up step).")
flags.DEFINE_string("profile_dir", "", "Write a TensorFlow profiler trace of one step here and print top op costs.")
flags.DEFINE_string("data", "", "TFRecord glob: time on batches from the training input pipeline (see above).")
flags.DEFINE_bool("skip_non_finite", True, "Time the step that skips non-finite updates (the default).")
flags.DEFINE_integer("start_update", 100, "RAdam's update count before the warm-up step: the timed steps are updates "
                     "start_update + 2, ... (RAdam's first 5 updates are un-rectified, a different computation).")
flags.DEFINE_integer("batch_size", 0, "Batch size instead of the configuration's (0 = the configuration's), e.g. "
                     "the paper step on a machine where its batch of 8 does not fit.")
FLAGS = flags.FLAGS

# "demo": the demo's sizes with the full model (the demo itself trains without the disparity
# supervision); "demo_shipped": the demo configuration itself, the step `make demo` runs (FR).
CONFIG_VARIANTS = {"paper": "", "demo": "demo,IFAN", "demo_shipped": "demo"}


def load_config(name, precision, batch_size=0):
    """The training config of ``name`` (see ``CONFIG_VARIANTS``) at ``precision``.

    ``batch_size`` > 0 replaces the configuration's batch size.
    """
    from configs import ifan as ifan_configs

    config = ifan_configs.get_config(CONFIG_VARIANTS[name])
    config.train.precision = precision
    if batch_size:
        config.train.batch_size = batch_size
    return config


def random_batch(batch_size, crop):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    return {key: tf.constant(rng.uniform(size=(batch_size, crop, crop, 3)).astype(np.float32))
            for key in ("image", "left", "right", "target")}


def time_config(name, precision, steps, profile_dir="", data="", skip_non_finite=True, start_update=100,
                batch_size=0):
    """Builds the train state and step of ``name`` at ``precision`` and times ``steps`` steps.

    RAdam's update count is set to ``start_update`` first, so that the steps are those of a run in
    progress (rectified updates). Returns a dict with ``warmup`` (s), ``times`` (s per step),
    ``params`` and a description. ``batch_size`` > 0 replaces the configuration's batch size.
    """
    import numpy as np
    import tensorflow as tf

    from ifan_tf.training.train_step import make_distributed_train_step
    from ifan_tf.training.trainer import build_train_state

    config = load_config(name, precision, batch_size)
    strategy = tf.distribute.get_strategy()
    state = build_train_state(config, strategy)
    # A step of a run in progress: RAdam's first updates (rho_t < 5) skip the adaptive step.
    getattr(state.optimizer, "inner_optimizer", state.optimizer).iterations.assign(start_update)
    batch_size, crop = config.train.batch_size, config.data.crop_size
    if data:
        from ifan_tf.training.trainer import make_distributed_dataset

        config.data.train = data
        iterator = iter(make_distributed_dataset(config, strategy, 0))
        next_batch = lambda: next(iterator)  # noqa: E731
    else:
        batch = random_batch(batch_size, crop)
        next_batch = lambda: batch  # noqa: E731
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=batch_size,
                                          clip_norm=config.train.clip_norm, jit_compile=config.train.jit_compile,
                                          skip_non_finite=skip_non_finite,
                                          keep_undo_copy=bool(config.train.get("undo_overflowing_updates", False)))
    start = time.perf_counter()
    float(step_fn(next_batch())["total"])
    warmup = time.perf_counter() - start
    for _ in range(10 if data else 0):
        float(step_fn(next_batch())["total"])
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step_fn(next_batch())["total"])
        times.append(time.perf_counter() - start)
    if profile_dir:
        profile_step(lambda: float(step_fn(next_batch())["total"]), profile_dir)
    import resource

    params = sum(int(np.prod(v.shape)) for v in state.trainable_variables)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    description = (f"batch {batch_size} {crop}x{crop} N={config.model.num_iterations} width={config.model.width} "
                   f"params={params / 1e6:.2f}M, peak RSS {peak_gib:.1f} GiB, "
                   f"{'input pipeline' if data else 'fixed batch'}, {'skip' if skip_non_finite else 'no skip'}, "
                   f"updates from {start_update + 1}")
    return {"config": name, "precision": precision, "warmup": warmup, "times": times, "description": description}


def profile_step(run_step, logdir, top=25):
    """Traces one call of ``run_step`` with the TF profiler into ``logdir`` and prints the top op costs.

    Op times are summed over threads (ops overlap, so the sum exceeds the wall time); grouped by op
    type and by the first levels of the op's name scope (``grad`` = backward pass).
    """
    import collections
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    run_step()
    wall = time.perf_counter() - start
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as handle:
        space.ParseFromString(handle.read())
    by_type, by_scope = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("__") or " " in name.split(":")[0]:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if op_type in ("Process", "Run") or not op_type:
                    continue
                seconds = event.duration_ps / 1e12
                by_type[op_type] += seconds
                backward = "gradient" in op_name or "Grad" in op_type
                parts = [p for p in op_name.split("/") if p not in ("replica_fn", "StatefulPartitionedCall")]
                by_scope[("grad " if backward else "fwd  ") + "/".join(parts[:3])] += seconds
    print(f"profiled step: {wall:.2f} s wall (profiling adds overhead); op seconds summed over threads: "
          f"{sum(by_type.values()):.2f}; trace in {logdir}")
    for label, counter in (("op type", by_type), ("scope", by_scope)):
        for key, seconds in counter.most_common(top):
            print(f"  {label:7s} {key:70s} {seconds:7.2f} s")


def print_measurement(result):
    times = result["times"]
    print(f"{result['config']:6s} {result['precision']:15s} {result['description']} | warm-up {result['warmup']:.1f} s | "
          f"median {statistics.median(times):.2f} s/step, min {min(times):.2f} s/step over {len(times)} steps",
          flush=True)


def main(argv):
    del argv
    if FLAGS.start_update < 0:
        raise app.UsageError(f"--start_update must be >= 0, got {FLAGS.start_update}")
    if FLAGS.batch_size < 0:
        raise app.UsageError(f"--batch_size must be >= 0 (0 = the configuration's), got {FLAGS.batch_size}")
    for name in FLAGS.configs:
        if name not in CONFIG_VARIANTS:
            raise app.UsageError(f"unknown config {name!r}: use {', '.join(CONFIG_VARIANTS)}")
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    for name in FLAGS.configs:
        for precision in FLAGS.precisions:
            print_measurement(time_config(name, precision, FLAGS.steps, FLAGS.profile_dir, FLAGS.data,
                                          FLAGS.skip_non_finite, FLAGS.start_update, FLAGS.batch_size))


if __name__ == "__main__":
    app.run(main)
