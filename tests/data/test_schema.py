"""Tests of the TFRecord schema: bit-exact round trips in Python and in the graph."""
import numpy as np
import pytest
import tensorflow as tf

from scene_builders import random_scene
from ifan_tf.data import schema


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_python_round_trip_is_bit_exact(bit_depth):
    scene = random_scene(np.random.default_rng(1), "scene_a", 19, 23, bit_depth, with_defocus=True)
    restored = schema.record_to_scene(schema.scene_to_record(scene))
    assert restored.name == "scene_a" and restored.bit_depth == bit_depth
    assert set(restored.views) == set(schema.VIEWS)
    for view in schema.VIEWS:
        assert restored.views[view].dtype == scene.views[view].dtype
        np.testing.assert_array_equal(restored.views[view], scene.views[view])
    for name in schema.DEFOCUS_MAPS:
        np.testing.assert_array_equal(restored.defocus[name], scene.defocus[name])


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_graph_decoding_matches_the_pixels(bit_depth):
    scene = random_scene(np.random.default_rng(2), "scene_b", 11, 9, bit_depth, views=("c", "target"),
                         with_defocus=True)
    parsed = schema.parse_record(tf.constant(schema.scene_to_record(scene)))
    assert parsed["name"].numpy() == b"scene_b"
    assert (int(parsed["height"]), int(parsed["width"]), int(parsed["bit_depth"])) == (11, 9, bit_depth)
    assert [v.decode() for v in parsed["views"].numpy()] == ["c", "target"]
    assert parsed["image/l"].numpy() == b"" and parsed["image/r"].numpy() == b""
    dtype = tf.uint8 if bit_depth == 8 else tf.uint16
    for view in ("c", "target"):
        pixels = schema.decode_view(parsed[schema.image_key(view)], dtype).numpy()
        np.testing.assert_array_equal(pixels, scene.views[view])
        expected = scene.views[view].astype(np.float32) / np.float32(2 ** bit_depth - 1)
        np.testing.assert_array_equal(schema.to_float(tf.constant(pixels)).numpy(), expected)
    for name in schema.DEFOCUS_MAPS:
        decoded = schema.decode_defocus_tensor(parsed[schema.defocus_key(name)], parsed["height"], parsed["width"])
        np.testing.assert_array_equal(decoded.numpy(), scene.defocus[name])


def test_eight_bit_png_read_as_sixteen_bit_gives_the_same_floats():
    scene = random_scene(np.random.default_rng(3), "s", 5, 7, 8, views=("c",))
    png = schema.parse_record(tf.constant(schema.scene_to_record(scene)))["image/c"]
    as8 = schema.to_float(schema.decode_view(png, tf.uint8)).numpy()
    as16 = schema.to_float(schema.decode_view(png, tf.uint16)).numpy()
    np.testing.assert_array_equal(as8, as16)


def test_serialisation_is_deterministic():
    scene = random_scene(np.random.default_rng(4), "s", 8, 8, 16, with_defocus=True)
    assert schema.scene_to_record(scene) == schema.scene_to_record(scene)


def test_invalid_scenes_are_refused():
    rng = np.random.default_rng(5)
    good = random_scene(rng, "s", 8, 8, 8)
    with pytest.raises(ValueError, match="bit depth 16"):
        schema.encode_scene(schema.Scene("s", good.views, 16))
    mixed = dict(good.views, l=np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="one size"):
        schema.encode_scene(schema.Scene("s", mixed, 8))
    with pytest.raises(ValueError, match="subset"):
        schema.encode_scene(schema.Scene("s", {"left": good.views["l"]}, 8))
    with pytest.raises(ValueError, match="defocus map coc"):
        schema.encode_scene(schema.Scene("s", good.views, 8, {"coc": np.zeros((3, 3), np.float32)}))
    with pytest.raises(ValueError, match="not a tf.train.Example"):
        schema.parse_scene_bytes(b"\x07garbage", "shard.tfrecord record 3")
