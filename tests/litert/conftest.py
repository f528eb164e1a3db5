"""LiteRT test fixtures: one tiny IFAN (width 8, N=2) exported once as a 64x64 float32 tile model."""
import keras
import pytest

from ifan_tf.litert.export import export_network
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan

TINY = ModelConfig(width=8, num_iterations=2)
TILE = 64


@pytest.fixture(scope="session")
def tiny_network():
    keras.utils.set_random_seed(3)
    return build_ifan(TINY)


@pytest.fixture(scope="session")
def tiny_export(tiny_network, tmp_path_factory):
    """Path of the tiny network's float32 ``.tflite`` (tile 64, overlap 16)."""
    return export_network(tiny_network, tmp_path_factory.mktemp("litert"), tile=TILE, tile_overlap=16)
