"""Cost of the shard check before a pipeline starts: framing and headers only vs. payloads too.

The shard check (`ifan_tf.data.shard_inspection`) reads every record once. Since it also checks
each PNG body and defocus map (`ifan_tf.data.integrity`: chunk CRCs and a bounded inflate), this
measures, in one run on the same shards, the check with and without those payload checks:
  python -m benchmarks.shard_inspection [--data_dir=/tmp/ifan_input_benchmark] [--num_scenes=24]
Uses the data of `benchmarks/input_pipeline.py` (synthetic 1680x1120 8-bit scenes with defocus
maps, made once if absent). Prints seconds per pass (best of --repeats) and MB of records read.
"""
from __future__ import annotations

import os
import pathlib
import time
from unittest import mock

from absl import app, flags


flags.DEFINE_string("data_dir", "/tmp/ifan_input_benchmark", "Where the benchmark data is made (reused).")
flags.DEFINE_integer("num_scenes", 24, "Synthetic 1680x1120 scenes (when the data is made here).")
flags.DEFINE_integer("repeats", 3, "Timed passes per variant (the best is printed).")
FLAGS = flags.FLAGS


def make_data(data_dir: pathlib.Path, num_scenes: int) -> list[str]:
    shards = sorted(data_dir.glob("train-*.tfrecord"))
    if shards:
        return [str(path) for path in shards]
    from data_prep import synthesize

    print(f"making {num_scenes} synthetic 1680x1120 scenes in {data_dir} ...", flush=True)
    synthesize.synthesize_dataset(data_dir, num_scenes, seed=0, image_size=(1120, 1680), examples_per_shard=4,
                                  overwrite=True, png_compression=3)
    return [str(path) for path in sorted(data_dir.glob("train-*.tfrecord"))]


def time_pass(shards: list[str], **checks) -> float:
    from ifan_tf.data import shard_inspection

    best = float("inf")
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        reports = shard_inspection.inspect_shards(shards, **checks)
        best = min(best, time.perf_counter() - start)
        assert all(report.is_clean for report in reports)
    return best


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    shards = make_data(pathlib.Path(FLAGS.data_dir), FLAGS.num_scenes)
    from ifan_tf.data import integrity

    megabytes = sum(os.path.getsize(path) for path in shards) / 1e6
    with mock.patch.object(integrity, "check_png_body", lambda data, where: None), \
            mock.patch.object(integrity, "check_inflated_size", lambda data, size, where, what: None):
        headers_only = time_pass(shards)
    training = time_pass(shards, check_defocus=False)  # what make_train_dataset checks: the 4 views' bodies
    everything = time_pass(shards)  # make_eval_dataset(include_defocus=True): bodies and defocus maps
    print(f"{len(shards)} shards, {megabytes:.0f} MB of records, best of {FLAGS.repeats}, {os.cpu_count()} CPUs:")
    print(f"  framing and headers only (before)         : {headers_only:.2f} s")
    print(f"  + PNG bodies (training check)             : {training:.2f} s ({training / headers_only:.2f}x)")
    print(f"  + PNG bodies and defocus maps (eval check): {everything:.2f} s ({everything / headers_only:.2f}x)")


if __name__ == "__main__":
    app.run(main)
