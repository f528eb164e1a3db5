"""Tests of make_eval_dataset: whole images with names, in order, exact values."""
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import pipeline


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_whole_images_with_names_in_file_order(make_shards, bit_depth):
    pattern, scenes = make_shards(num_shards=2, per_shard=2, height=24, width=40, bit_depth=bit_depth,
                                  with_defocus=True)
    dataset = pipeline.make_eval_dataset(pattern, include_defocus=True)
    examples = list(dataset.as_numpy_iterator())
    assert [e["name"].decode() for e in examples] == list(scenes)  # shard order, record order
    scale = np.float32(2 ** bit_depth - 1)
    for example in examples:
        scene = scenes[example["name"].decode()]
        assert example["bit_depth"] == bit_depth
        for key, view in (("image", "c"), ("left", "l"), ("right", "r"), ("target", "target")):
            assert example[key].dtype == np.float32 and example[key].shape == (24, 40, 3)
            np.testing.assert_array_equal(example[key], scene.views[view].astype(np.float32) / scale)
        np.testing.assert_array_equal(example["disparity"], scene.defocus["disparity"])
        np.testing.assert_array_equal(example["coc"], scene.defocus["coc"])


def test_views_default_to_those_every_record_has(make_shards, tmp_path):
    pattern, _ = make_shards(num_shards=1, per_shard=2, views=("c", "l", "r"), prefix="pixeldp")
    dataset = pipeline.make_eval_dataset(pattern, batch=True)
    assert set(dataset.element_spec) == {"name", "bit_depth", "image", "left", "right"}
    first = next(iter(dataset))
    assert first["image"].shape == (1, 40, 48, 3) and first["name"].shape == (1,)
    only_c = pipeline.make_eval_dataset(pattern, views=["c"])
    assert set(only_c.element_spec) == {"name", "bit_depth", "image"}
    with pytest.raises(ValueError, match="lacks required views"):
        pipeline.make_eval_dataset(pattern, views=["c", "target"])


def test_mixed_bit_depths_decode_to_the_right_floats(make_shards):
    pattern8, scenes8 = make_shards(num_shards=1, per_shard=1, bit_depth=8, prefix="eight")
    pattern16, scenes16 = make_shards(num_shards=1, per_shard=1, bit_depth=16, prefix="sixteen", seed=1)
    examples = list(pipeline.make_eval_dataset([pattern8, pattern16]).as_numpy_iterator())
    assert [e["bit_depth"] for e in examples] == [8, 16]
    np.testing.assert_array_equal(examples[0]["image"],
                                  next(iter(scenes8.values())).views["c"].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(examples[1]["image"],
                                  next(iter(scenes16.values())).views["c"].astype(np.float32) / np.float32(65535))


def test_missing_defocus_maps_are_an_error_naming_the_shard_and_scene(make_shards):
    pattern, _ = make_shards(num_shards=1, per_shard=1)
    with pytest.raises(ValueError, match="without defocus maps.*train-00000-of-00001.tfrecord"):
        pipeline.make_eval_dataset(pattern, include_defocus=True)
    dataset = pipeline.make_eval_dataset(pattern, include_defocus=True, views=["c"], verify_records=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="lacks defocus map: coc") as error:
        list(dataset)
    assert "train0_0" in str(error.value) and "train-00000-of-00001.tfrecord" in str(error.value)
