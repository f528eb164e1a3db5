"""Fixtures for the data tests: small scenes written as TFRecord shards in the schema."""
import numpy as np
import pytest

from ifan_tf.data import schema
from scene_builders import random_scene, write_records


@pytest.fixture
def make_shards(tmp_path):
    """Writes `num_shards` shards of `per_shard` random scenes; returns (glob pattern, {name: scene})."""

    def make(num_shards=2, per_shard=3, seed=0, prefix="train", **scene_kwargs):
        rng = np.random.default_rng(seed)
        scenes = {}
        for shard in range(num_shards):
            records = []
            for index in range(per_shard):
                scene = random_scene(rng, f"{prefix}{shard}_{index}", **scene_kwargs)
                scenes[scene.name] = scene
                records.append(schema.scene_to_record(scene))
            write_records(tmp_path / f"{prefix}-{shard:05d}-of-{num_shards:05d}.tfrecord", records)
        return str(tmp_path / f"{prefix}-*.tfrecord"), scenes

    return make
