import keras
import pytest

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.weights.model_dir import save_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny single-image model directory (width 8, N=3), seeded."""
    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "m"
    save_model_dir(path, build_ifan(ModelConfig(width=8, num_iterations=3)))
    return path
