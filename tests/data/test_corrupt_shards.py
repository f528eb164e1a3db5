"""Corrupt, truncated and malformed shards: a clear error naming the shard, or skip and count."""
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import pipeline, schema, shard_inspection
from scene_builders import random_scene, write_records

CROP = 16


def good_records(count, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    return [schema.scene_to_record(random_scene(rng, f"scene{seed}_{i}", 24, 24, **kwargs)) for i in range(count)]


def names(dataset):
    return sorted(e["name"].decode() for e in dataset.as_numpy_iterator())


@pytest.fixture
def truncated_shard(tmp_path):
    """Shard 0: 3 good records; shard 1: 3 records, cut in the middle of the third."""
    write_records(tmp_path / "set-00000-of-00002.tfrecord", good_records(3, seed=0))
    bad = write_records(tmp_path / "set-00001-of-00002.tfrecord", good_records(3, seed=1))
    data = open(bad, "rb").read()
    sizes = [len(r) + 16 for r in good_records(3, seed=1)]
    open(bad, "wb").write(data[: sizes[0] + sizes[1] + sizes[2] // 2])
    return str(tmp_path / "set-*.tfrecord"), bad


def test_truncated_shard_is_named(truncated_shard):
    pattern, bad = truncated_shard
    with pytest.raises(shard_inspection.CorruptShardError) as error:
        pipeline.make_train_dataset(pattern, global_batch_size=2, crop_size=CROP)
    message = str(error.value)
    assert bad in message and "truncated record" in message and "2 records readable" in message
    assert "set-00000-of-00002" not in message
    with pytest.raises(shard_inspection.CorruptShardError, match="set-00001-of-00002"):
        pipeline.make_eval_dataset(pattern)


def test_truncated_shard_is_skipped_and_counted(truncated_shard, caplog):
    pattern, _ = truncated_shard
    assert names(pipeline.make_eval_dataset(pattern, skip_corrupt=True)) == [
        "scene0_0", "scene0_1", "scene0_2", "scene1_0", "scene1_1"]
    sources = pipeline.inspect_sources(pipeline.resolve_files(pattern), skip_corrupt=True)
    assert sources.skipped_records == 1 and sources.limits == [3, 2]
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=5, crop_size=CROP, repeat=False,
                                          skip_corrupt=True, seed=0)
    assert [b["image"].shape[0] for b in dataset] == [5]  # exactly the 5 readable examples


def test_flipped_bits_are_detected(tmp_path):
    path = write_records(tmp_path / "flip-00000-of-00001.tfrecord", good_records(3))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40  # inside the second record's data: its CRC no longer matches
    open(path, "wb").write(bytes(data))
    with pytest.raises(shard_inspection.CorruptShardError, match="corrupted record") as error:
        pipeline.make_eval_dataset(path)
    assert "flip-00000-of-00001.tfrecord" in str(error.value)
    assert names(pipeline.make_eval_dataset(path, skip_corrupt=True)) == ["scene0_0"]


def test_malformed_records_are_named_and_skippable(tmp_path):
    records = good_records(4)
    example = tf.train.Example.FromString(records[1])  # a PNG cut short inside an intact record
    png = example.features.feature["image/l"].bytes_list.value[0]
    example.features.feature["image/l"].bytes_list.value[0] = png[: len(png) // 2]
    records[1] = example.SerializeToString()
    records[2] = b"not an example at all"
    path = write_records(tmp_path / "odd-00000-of-00001.tfrecord", records)
    with pytest.raises(shard_inspection.CorruptShardError) as error:
        pipeline.make_eval_dataset(path)
    message = str(error.value)
    assert "odd-00000-of-00001.tfrecord" in message and "record 1" in message and "record 2" in message
    assert "view l PNG data is truncated" in message
    assert names(pipeline.make_eval_dataset(path, skip_corrupt=True)) == ["scene0_0", "scene0_3"]
    dataset = pipeline.make_train_dataset(path, global_batch_size=2, crop_size=CROP, skip_corrupt=True,
                                          repeat=False, seed=0)
    assert len(list(dataset)) == 1


def test_unverified_reading_still_names_the_shard_of_a_bad_record(tmp_path):
    rng = np.random.default_rng(0)
    partial = schema.scene_to_record(random_scene(rng, "no_views", 24, 24, views=("c",)))
    path = write_records(tmp_path / "raw-00000-of-00001.tfrecord", good_records(1) + [partial])
    dataset = pipeline.make_train_dataset(path, global_batch_size=2, crop_size=CROP, verify_records=False,
                                          seed=0, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="lacks view: l") as error:
        list(dataset)
    assert "raw-00000-of-00001.tfrecord" in str(error.value) and "no_views" in str(error.value)


def test_a_shard_with_nothing_usable(tmp_path):
    path = write_records(tmp_path / "junk-00000-of-00001.tfrecord", [b"junk"])
    with pytest.raises(shard_inspection.CorruptShardError, match="no usable record"):
        pipeline.make_eval_dataset(path, skip_corrupt=True)
