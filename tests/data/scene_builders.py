"""Scene and shard builders shared by the data tests (imported by conftest.py and tests)."""
import numpy as np
import tensorflow as tf

from ifan_tf.data import schema


def random_scene(rng, name, height=40, width=48, bit_depth=8, views=schema.VIEWS, with_defocus=False):
    """A scene of random pixels (uint8 or uint16) with the given views."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    high = 256 if bit_depth == 8 else 65536
    scene_views = {view: rng.integers(0, high, size=(height, width, 3), dtype=dtype) for view in views}
    defocus = {}
    if with_defocus:
        defocus = {"coc": rng.normal(size=(height, width)).astype(np.float32),
                   "disparity": rng.normal(size=(height, width)).astype(np.float32)}
    return schema.Scene(name, scene_views, bit_depth, defocus)


def write_records(path, records):
    """Writes serialized records (bytes) to a TFRecord file."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)
