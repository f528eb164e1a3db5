"""Every registered Keras layer of ifan_tf.model round-trips through get_config/from_config (like
keras-hub's ``run_layer_test``: same class, same number of weights, same output with the same
weights), and the IFAN model saves to and loads from a ``.keras`` file."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.blocks import Conv, Head, ReferenceSequential, ResBlock, UpConv
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.iac import IterativeAdaptiveConvolution
from ifan_tf.model.ifan import IFAN, build_ifan
from ifan_tf.model.reblur import ReblurringNetwork, build_reblurring_network

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = ModelConfig(width=4, num_iterations=2, reblur_iterations=2)


def uniform(*shape, seed=0):
    return tf.random.stateless_uniform(shape, seed=[seed, 1])


LAYERS = {
    "Conv": (lambda: Conv(6, 3, stride=2, activation=True, gain=1.5, name="c"), lambda: (uniform(1, 8, 10, 4),)),
    "ResBlock": (lambda: ResBlock(4, 2, 3, gain=0.5, name="r"), lambda: (uniform(2, 6, 6, 4),)),
    "UpConv": (lambda: UpConv(5, name="u"), lambda: (uniform(1, 4, 6, 3),)),
    "ReferenceSequential": (
        lambda: ReferenceSequential([Conv(4, 3, name="a"), ResBlock(4, 1, name="b"), UpConv(2, name="c")], name="s"),
        lambda: (uniform(1, 6, 6, 3),)),
    "Head": (lambda: Head(4, 7, 3, 1, gain=1.5, out_kernel_size=1, out_activation=True, name="h"),
             lambda: (uniform(1, 6, 6, 5),)),
    "IterativeAdaptiveConvolution": (
        lambda: IterativeAdaptiveConvolution(2, 3, 3, mode="checkpoint", act_last=False, name="iac"),
        lambda: (uniform(1, 5, 6, 3), uniform(1, 5, 6, 42, seed=1))),
    "IFAN": (lambda: build_ifan(TINY.replace(iac_mode="checkpoint")), lambda: (uniform(1, 16, 16, 3),)),
    "ReblurringNetwork": (lambda: build_reblurring_network(TINY),
                          lambda: (uniform(1, 2, 3, 3), uniform(1, 2, 3, TINY.filter_depth, seed=2))),
}


def test_every_registered_model_layer_is_tested():
    registered = {name.split(">", 1)[1] for name in keras.saving.get_custom_objects()
                  if name.startswith("ifan_tf>")}
    model_layers = {name for name in registered
                    if name in {cls.__name__ for cls in (Conv, Head, ReferenceSequential, ResBlock, UpConv,
                                                         IterativeAdaptiveConvolution, IFAN, ReblurringNetwork)}}
    assert model_layers == set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_get_config_round_trip(name):
    make_layer, make_inputs = LAYERS[name]
    layer, inputs = make_layer(), make_inputs()
    want = layer(*inputs)
    assert layer.weights or name == "IterativeAdaptiveConvolution"
    clones = (type(layer).from_config(layer.get_config()),
              keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)))
    for clone in clones:
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()
        clone(*inputs)  # builds
        assert len(clone.weights) == len(layer.weights)
        assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in layer.weights]
        clone.set_weights(layer.get_weights())
        np.testing.assert_array_equal(clone(*inputs).numpy(), want.numpy())


@pytest.mark.parametrize("cls", [IFAN, ReblurringNetwork])
def test_networks_keep_their_dtype_policy(cls):
    network = cls(TINY, dtype="mixed_bfloat16")
    clone = cls.from_config(network.get_config())
    assert clone.dtype_policy.name == "mixed_bfloat16"
    assert clone.config == TINY


def test_layers_have_weights_after_build_without_a_forward_pass():
    network = IFAN(TINY)
    network.build((None, None, None, 3))
    assert network.count_params() == build_ifan(TINY).count_params() > 0
    rbn = ReblurringNetwork(TINY)
    rbn.build((None, None, None, 3), (None, None, None, TINY.filter_depth))
    assert rbn.count_params() > 0


LOAD_SCRIPT = """
import sys
import keras
import numpy as np
import ifan_tf.model.ifan  # registers the classes
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]), training=False)))
"""


def test_keras_file_round_trip_in_this_and_a_fresh_process(tmp_path):
    model = build_ifan(TINY)
    image = uniform(2, 16, 24, 3, seed=4).numpy()
    want = model(image, training=False).numpy()
    path = tmp_path / "ifan.keras"
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, IFAN) and loaded.config == TINY
    np.testing.assert_array_equal(loaded(image, training=False).numpy(), want)

    np.save(tmp_path / "image.npy", image)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(tmp_path / "image.npy"), str(tmp_path / "out.npy")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)
