"""Seconds per IFAN training step (forward, RBN, three losses, backward, clip, RAdam), and side-by-side ratios.

Usage (from the repository root):
  python -m benchmarks.train_step                                # paper and demo configs, this tree
  python -m benchmarks.train_step --configs=demo --precisions=float32,mixed_bfloat16 --steps=10
  python -m benchmarks.train_step --compare=/tmp/ifan-dce15df,. --rounds=3   # two source trees
  python -m benchmarks.train_step --profile_dir=/tmp/trace --configs=paper   # per-op costs
  python -m benchmarks.train_step --compare=/tmp/ifan-dce15df,. --configs=paper --batch_size=4   # less memory
  python -m benchmarks.train_step --compare=/tmp/ifan-dce15df,. --configs=demo --convolutions   # the ceiling
  python -m benchmarks.train_step --configs=demo --precisions=mixed_bfloat16 --steps=200 \
      --data='runs/demo/data/train-*.tfrecord' --compare=/tmp/ifan-OLD,.       # like a training run

Times the real distributed step of ``ifan_tf.training.train_step`` (default strategy) on random
batches, after one warm-up step (tracing and graph optimisation, reported separately). RAdam's
update count starts at ``--start_update`` (100), so the steps are rectified updates as in a run in
progress (the first five updates of a run are un-rectified, another computation).
``--configs=demo_shipped`` times each tree's own demo configuration (see ``CONFIG_VARIANTS``). With
``--data`` the batches come from the trainer's input pipeline (``make_distributed_dataset``, cached
and shuffled as in training) and each timed step includes fetching its batch, as in the trainer's
loop. The first 10 steps after the warm-up are not timed then. ``--noskip_non_finite`` times the step
that applies every update (``train.max_skipped_steps=0``).

``--batch_size=N`` replaces the configuration's batch size in every worker, e.g. to time the paper
step on a machine where an old tree's batch of 8 does not fit in memory.

``--convolutions`` then times, in the same process, only the convolutions the step runs (forward,
input and filter gradients: same shapes, dtypes, attributes and oneDNN kernels, read from the traced
graphs), once with the executor free to overlap independent ones and once one after another; the
faster of the two is "convolutions alone". No step that runs those convolutions can take less, so
with ``--compare`` the summary prints ``median step(A) / convolutions alone(B)``: the largest
speed-up over A that B can reach without faster convolution kernels or fewer convolutions. It also
measures this CPU's matrix-product rate per dtype (large square ``tf.matmul``) and prints the ceiling
if every one of B's convolutions ran at that rate: no kernel faster than the machine's matrix
product can beat it, so only fewer convolution FLOPs can.

``--compare=TREE_A,TREE_B`` measures two source trees (e.g. a ``git worktree add /tmp/ifan-OLD OLD``
of an older commit) in one run: every measurement is a fresh process with ``PYTHONPATH`` and the
working directory set to that tree, alternating A, B, B, A, ... per configuration and precision,
so both trees see the same machine load. It prints per-process medians, the median over all
timed steps of each tree and the speedup ``median(A) / median(B)``, with the load average. The
worker side only uses APIs that exist since the first training step (``build_train_state``,
``make_distributed_train_step``, ``configs/ifan.py``), so old trees can be measured.
"""

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("configs", ["paper", "demo"],
                  "Configurations: paper (configs/ifan.py), demo (demo,IFAN), demo_shipped (demo).")
flags.DEFINE_list("precisions", ["float32"], "float32, mixed_bfloat16, mixed_float16.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration and process (after one warm-up step).")
flags.DEFINE_list("compare", [], "Two source trees TREE_A,TREE_B to time side by side (speedup = A / B).")
flags.DEFINE_integer("rounds", 3, "With --compare: fresh processes per tree, configuration and precision.")
flags.DEFINE_string("profile_dir", "", "Write a TensorFlow profiler trace of one step here and print top op costs.")
flags.DEFINE_string("data", "", "TFRecord glob: time on batches from the training input pipeline (see above).")
flags.DEFINE_bool("skip_non_finite", True, "Time the step that skips non-finite updates (the default).")
flags.DEFINE_integer("start_update", 100, "RAdam's update count before the warm-up step: the timed steps are updates "
                     "start_update + 2, ... (RAdam's first 5 updates are un-rectified, a different computation).")
flags.DEFINE_integer("batch_size", 0, "Batch size instead of the configuration's (0 = the configuration's), in both "
                     "trees with --compare: e.g. the paper step on a machine where an old tree's batch 8 does not fit.")
flags.DEFINE_bool("convolutions", False, "Also time the step's convolutions alone, in the same process after the "
                  "step (benchmarks/step_convolutions.py); with --compare, print the ceiling of the speed-up that B's "
                  "convolutions leave: step(A) / convolutions alone(B).")
flags.DEFINE_bool("json", False, "Print one JSON line per measurement (used by --compare's workers).")
FLAGS = flags.FLAGS

# The demo's sizes with the full model (the demo itself trains without the disparity supervision;
# "IFAN" keeps the measurement comparable with trees from before that change). "demo_shipped" is
# each tree's own demo configuration, the step `make demo` runs: FR now, the full IFAN in trees from
# before 5f77b6c, so against those it measures the speed-up a demo user sees, model change included.
CONFIG_VARIANTS = {"paper": "", "demo": "demo,IFAN", "demo_shipped": "demo"}


def load_config(name, precision, batch_size=0):
    """The training config of ``name`` (see ``CONFIG_VARIANTS``) from the tree on PYTHONPATH, at ``precision``.

    ``batch_size`` > 0 replaces the configuration's batch size.
    """
    import importlib

    config = importlib.import_module("configs.ifan").get_config(CONFIG_VARIANTS[name])
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
                batch_size=0, convolutions=False):
    """Builds the train state and step of ``name`` at ``precision`` and times ``steps`` steps.

    RAdam's update count is set to ``start_update`` first, so that the steps are those of a run in
    progress (rectified updates). Returns a dict with ``warmup`` (s), ``times`` (s per step),
    ``params`` and a description. ``batch_size`` > 0 replaces the configuration's batch size.
    ``convolutions``: the dict also has ``convolutions``, the step's convolutions timed alone
    (``time_step_convolutions``).
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
    # Only passed when set, so that trees from before the skip can still be measured.
    step_options = dict(skip_non_finite=False) if not skip_non_finite else {}
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=batch_size,
                                          clip_norm=config.train.clip_norm, jit_compile=config.train.jit_compile,
                                          **step_options)
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
    result = {"config": name, "precision": precision, "warmup": warmup, "times": times, "description": description}
    if convolutions:  # after the peak RSS is read: the replay's own tensors are not the step's memory
        result["convolutions"] = time_step_convolutions(step_fn, max(steps, 5))
    return result


def time_step_convolutions(step_fn, calls):
    """The convolutions of the traced ``step_fn`` alone: a dict.

    ``overlapped`` / ``serial``: medians of ``calls`` calls with the executor free to run independent
    convolutions at once, and one after another; ``seconds`` is the smaller. ``gflop``: their work;
    ``matmul_rates``: this CPU's matrix-product GFLOP/s per dtype they use, measured now;
    ``floor_at_matmul_rate``: seconds they would take at those rates.
    """
    import importlib.util

    # By path: a worker measuring an older tree has that tree's ``benchmarks`` package on its path.
    location = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step_convolutions.py")
    module_spec = importlib.util.spec_from_file_location("step_convolutions", location)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    specs = module.step_convolutions(module.traced_graphs(step_fn))
    overlapped = module.time_convolutions(specs, calls)
    serial = module.time_convolutions(specs, calls, serial=True)
    medians = statistics.median(overlapped), statistics.median(serial)
    gflop = module.gflop_by_dtype(specs)
    rates = {dtype: module.matmul_rate(dtype) for dtype in gflop}
    return {"seconds": min(medians), "overlapped": medians[0], "serial": medians[1],
            "description": module.describe(specs), "gflop": sum(gflop.values()),
            "matmul_rates": rates, "floor_at_matmul_rate": module.floor_at_matmul_rate(specs, rates)}


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
    if "convolutions" in result:
        print(f"{'':22s} {_convolutions_line(result['convolutions'])}", flush=True)


def _convolutions_line(alone):
    rates = ", ".join(f"{dtype} {rate:.0f}" for dtype, rate in alone["matmul_rates"].items())
    return (f"convolutions alone {alone['seconds']:.3f} s (overlapped {alone['overlapped']:.3f}, serial "
            f"{alone['serial']:.3f}): {alone['description']}; {alone['gflop'] / alone['seconds']:.0f} GFLOP/s, "
            f"this CPU's matmul {rates} GFLOP/s: {alone['floor_at_matmul_rate']:.3f} s at that rate")


def run_worker(tree, name, precision, steps, attempts=2):
    """One fresh process timing ``name``/``precision`` with the ``ifan_tf`` of ``tree``; returns its result.

    A worker killed by the system (e.g. out of memory on a machine shared with other jobs) is
    started again, up to ``attempts`` times in all.
    """
    tree = os.path.abspath(tree)
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.abspath(__file__), "--json", f"--configs={name}", f"--precisions={precision}",
               f"--steps={steps}", f"--start_update={FLAGS.start_update}", f"--batch_size={FLAGS.batch_size}",
               f"--data={os.path.abspath(FLAGS.data) if FLAGS.data else ''}",
               f"--{'' if FLAGS.skip_non_finite else 'no'}skip_non_finite",
               f"--{'' if FLAGS.convolutions else 'no'}convolutions"]
    for attempt in range(1, attempts + 1):
        completed = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        if completed.returncode >= 0 or attempt == attempts:
            break
        print(f"  worker for {tree} ({name}, {precision}) was killed (signal {-completed.returncode}); "
              f"starting it again", flush=True)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark worker for {tree} ({name}, {precision}) failed with exit code "
                           f"{completed.returncode}:\n{completed.stderr[-3000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"benchmark worker for {tree} printed no result:\n{completed.stdout[-2000:]}")
    return json.loads(lines[-1])


def compare(trees, configs, precisions, steps, rounds):
    """Alternating fresh processes on two trees; prints medians and the speedup A / B per setting."""
    if len(trees) != 2:
        raise app.UsageError(f"--compare needs exactly two trees TREE_A,TREE_B, got {trees}")
    for tree in trees:
        if not os.path.isfile(os.path.join(tree, "ifan_tf", "training", "train_step.py")):
            raise app.UsageError(f"--compare: {tree} is not an ifan_tf source tree (no ifan_tf/training/train_step.py)")
    labels = {tree: f"{'AB'[i]}={os.path.abspath(tree)}" for i, tree in enumerate(trees)}
    print("comparing " + ", ".join(labels.values()), flush=True)
    summary = []
    for name in configs:
        for precision in precisions:
            times, alone, at_rate = ({tree: [] for tree in trees} for _ in range(3))
            for round_index in range(rounds):
                order = trees if round_index % 2 == 0 else trees[::-1]
                for tree in order:
                    load = os.getloadavg()[0]
                    result = run_worker(tree, name, precision, steps)
                    times[tree] += result["times"]
                    print(f"  round {round_index + 1} {labels[tree][0]} {name:5s} {precision:15s} load {load:4.1f} | "
                          f"warm-up {result['warmup']:5.1f} s | median {statistics.median(result['times']):.2f} "
                          f"s/step ({result['description']})", flush=True)
                    if "convolutions" in result:
                        alone[tree].append(result["convolutions"]["seconds"])
                        at_rate[tree].append(result["convolutions"]["floor_at_matmul_rate"])
                        print(f"    {_convolutions_line(result['convolutions'])}", flush=True)
            median_a, median_b = (statistics.median(times[tree]) for tree in trees)
            floors = [statistics.median(alone[tree]) if alone[tree] else None for tree in trees]
            floor_at_rate = statistics.median(at_rate[trees[1]]) if at_rate[trees[1]] else None  # B's
            summary.append((name, precision, median_a, median_b, floors, floor_at_rate))
            print(f"{name:5s} {precision:15s} A {median_a:.2f} s/step, B {median_b:.2f} s/step: "
                  f"B is {median_a / median_b:.2f}x faster than A", flush=True)
    print("summary (median s/step over all timed steps of all rounds; speedup = A / B):")
    for name, precision, median_a, median_b, floors, floor_at_rate in summary:
        line = f"  {name:5s} {precision:15s} A {median_a:6.2f}  B {median_b:6.2f}  speedup {median_a / median_b:.2f}x"
        if floors[1] is not None:
            line += (f" | convolutions alone A {floors[0]:.3f} B {floors[1]:.3f} s: ceiling of the speedup with "
                     f"B's convolutions {median_a / floors[1]:.2f}x, with them at this CPU's matmul rate "
                     f"({floor_at_rate:.3f} s) {median_a / floor_at_rate:.2f}x")
        print(line)


def main(argv):
    del argv
    if FLAGS.start_update < 0:
        raise app.UsageError(f"--start_update must be >= 0, got {FLAGS.start_update}")
    if FLAGS.batch_size < 0:
        raise app.UsageError(f"--batch_size must be >= 0 (0 = the configuration's), got {FLAGS.batch_size}")
    for name in FLAGS.configs:
        if name not in CONFIG_VARIANTS:
            raise app.UsageError(f"unknown config {name!r}: use {', '.join(CONFIG_VARIANTS)}")
    if FLAGS.compare:
        print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()}", flush=True)
        compare(FLAGS.compare, FLAGS.configs, FLAGS.precisions, FLAGS.steps, FLAGS.rounds)
        return
    import tensorflow as tf

    if not FLAGS.json:
        print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, "
              f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    for name in FLAGS.configs:
        for precision in FLAGS.precisions:
            result = time_config(name, precision, FLAGS.steps, FLAGS.profile_dir, FLAGS.data, FLAGS.skip_non_finite,
                                 FLAGS.start_update, FLAGS.batch_size, FLAGS.convolutions)
            if FLAGS.json:
                print(json.dumps(result), flush=True)
            else:
                print_measurement(result)


if __name__ == "__main__":
    app.run(main)
