"""``--mode=eval`` keeps going past bad shards and records, reports them, and exits 1."""
import os

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import schema
from ifan_tf.data.file_patterns import split_file_patterns
from ifan_tf.evaluation import evaluate as evaluate_lib
from ifan_tf.evaluation.lpips_metric import LpipsStatus
from ifan_tf.model.config import ModelConfig

NO_LPIPS = LpipsStatus(reason="not under test")


class FailingOnNameNetwork:
    """Identity network that raises for images whose top-left pixel is 0 (an unexpected error type)."""

    config = ModelConfig()

    def __call__(self, inputs, training=False):
        tf.debugging.assert_none_equal(inputs[0, 0, 0, 0], 0.0, message="network failed on this image")
        return inputs


def _shard(path, names_and_firsts):
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, first in names_and_firsts:
            image = rng.integers(1, 200, (16, 16, 3)).astype(np.uint8)
            image[0, 0, 0] = first
            writer.write(schema.scene_to_record(schema.Scene(name, {"c": image, "target": image + 1}, 8)))
    return str(path)


@pytest.mark.timeout(180, method="thread")
def test_bad_shards_and_records_are_reported_and_skipped(tmp_path):
    _shard(tmp_path / "a.tfrecord", [("good1", 5), ("fails", 0), ("good2", 7)])
    good = (tmp_path / "a.tfrecord").read_bytes()
    (tmp_path / "b.tfrecord").write_bytes(good[:-30])  # truncated: corrupt shard
    os.mkfifo(tmp_path / "c.tfrecord")
    os.symlink("/dev/zero", tmp_path / "d.tfrecord")
    _shard(tmp_path / "e.tfrecord", [("good3", 9)])
    summary = evaluate_lib.evaluate(FailingOnNameNetwork(), [str(tmp_path / "*.tfrecord")],
                                    output_dir=str(tmp_path / "out"), lpips=NO_LPIPS, show_progress=False)
    assert summary["count"] == 3
    failed = {item["source"].rsplit("/", 1)[-1]: item["error"] for item in summary["failed"]}
    assert set(failed) == {"a.tfrecord (scene 'fails')", "b.tfrecord", "c.tfrecord", "d.tfrecord"}
    assert "network failed on this image" in failed["a.tfrecord (scene 'fails')"]
    assert "FIFO" in failed["c.tfrecord"] and "character device" in failed["d.tfrecord"]


def test_one_glob_parser():
    assert split_file_patterns(" a/*.tfrecord, ,b/x-*.tfrecord ") == ["a/*.tfrecord", "b/x-*.tfrecord"]
    assert split_file_patterns(["a,b", "c"]) == ["a", "b", "c"]
    assert split_file_patterns(None) == [] and split_file_patterns("") == []
