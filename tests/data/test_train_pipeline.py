"""Tests of make_train_dataset: shapes, determinism by seed, cache, views, distribution."""
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import pipeline

CROP = 32


def batches(dataset, count):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def test_batches_have_the_interface_shapes(make_shards):
    pattern, _ = make_shards(num_shards=2, per_shard=3)
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=4, crop_size=CROP, seed=0)
    assert set(dataset.element_spec) == {"image", "left", "right", "target"}
    for spec in dataset.element_spec.values():
        assert spec.shape.as_list() == [4, CROP, CROP, 3] and spec.dtype == tf.float32
    for batch in batches(dataset, 3):  # repeats past the 6 examples
        for value in batch.values():
            assert value.shape == (4, CROP, CROP, 3) and 0.0 <= value.min() and value.max() <= 1.0


@pytest.mark.parametrize("cache", [False, True])
def test_same_seed_gives_the_same_stream(make_shards, cache):
    pattern, _ = make_shards(num_shards=3, per_shard=3)
    make = lambda seed: pipeline.make_train_dataset(pattern, global_batch_size=2, crop_size=CROP, seed=seed,
                                                    cache=cache, shuffle_buffer=8)
    first, again, other = batches(make(5), 6), batches(make(5), 6), batches(make(6), 6)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["target"], c["target"]) for a, c in zip(first, other))


def test_crops_come_from_the_stored_pixels(make_shards):
    pattern, scenes = make_shards(num_shards=1, per_shard=2, height=CROP, width=CROP, bit_depth=16)
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=1, crop_size=CROP, augment=False, seed=1,
                                          repeat=False)
    stored = {tuple(np.rint(s.views["target"] * 1.0).ravel()[:8]): s for s in scenes.values()}
    seen = 0
    for batch in batches(dataset, 2):  # images exactly the crop size: the crop is the whole image
        target = np.rint(batch["target"][0] * 65535).astype(np.uint16)
        scene = stored[tuple(target.ravel()[:8].astype(float))]
        for key, view in (("image", "c"), ("left", "l"), ("right", "r"), ("target", "target")):
            np.testing.assert_array_equal(np.rint(batch[key][0] * 65535).astype(np.uint16), scene.views[view])
        seen += 1
    assert seen == 2


def test_one_epoch_without_repeat_drops_the_partial_batch(make_shards):
    pattern, _ = make_shards(num_shards=2, per_shard=3)
    for cache in (False, True):
        dataset = pipeline.make_train_dataset(pattern, global_batch_size=4, crop_size=CROP, repeat=False,
                                              cache=cache, seed=2)
        assert len(batches(dataset, 10)) == 1


def test_required_views_subset_and_missing_views(make_shards):
    pattern, _ = make_shards(num_shards=1, per_shard=2, views=("c", "target"))
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=2, crop_size=CROP,
                                          require_views=("c", "target"), seed=0)
    assert set(dataset.element_spec) == {"image", "target"}
    with pytest.raises(ValueError, match=r"lacks required views \['l', 'r'\]") as error:
        pipeline.make_train_dataset(pattern, global_batch_size=2, crop_size=CROP)
    assert "train-00000-of-00001.tfrecord" in str(error.value)


def test_images_smaller_than_the_crop_are_refused(make_shards):
    pattern, _ = make_shards(num_shards=1, per_shard=1, height=20, width=40)
    with pytest.raises(ValueError, match="crop_size 32 is larger than the smallest image"):
        pipeline.make_train_dataset(pattern, global_batch_size=1, crop_size=CROP)


def test_bit_depth_request_is_checked(make_shards):
    pattern, _ = make_shards(num_shards=1, per_shard=1, bit_depth=16)
    with pytest.raises(ValueError, match="bit_depth=8 was requested"):
        pipeline.make_train_dataset(pattern, global_batch_size=1, crop_size=CROP, bit_depth=8)
    dataset = pipeline.make_train_dataset(pattern, global_batch_size=1, crop_size=CROP, bit_depth=16, seed=0)
    assert next(iter(dataset))["image"].shape == (1, CROP, CROP, 3)


def test_input_context_splits_shards_and_batch(make_shards):
    pattern, _ = make_shards(num_shards=4, per_shard=2, height=CROP, width=CROP)
    names = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = pipeline.make_train_dataset(pattern, global_batch_size=4, crop_size=CROP, augment=False,
                                              repeat=False, seed=0, input_context=context)
        epoch = batches(dataset, 10)
        assert len(epoch) == 2 and epoch[0]["image"].shape[0] == 2  # per-replica batch of 2
        names.append({np.rint(b["target"][i] * 255).astype(np.uint8).tobytes() for b in epoch for i in range(2)})
    assert len(names[0]) == len(names[1]) == 4 and not names[0] & names[1]


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        pipeline.make_train_dataset(str(tmp_path / "nothing-*.tfrecord"), global_batch_size=1)
