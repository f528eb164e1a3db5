"""IFAN network: parameter counts, input sizes, training outputs, variants and initialisation."""

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import IFAN, build_ifan
from ifan_tf.model.reblur import build_reblurring_network

SMALL = ModelConfig(width=8, num_iterations=2)


def test_parameter_counts_equal_the_spec_for_n17():
    config = ModelConfig()
    assert config.filter_depth == 15232
    assert build_ifan(config).count_params() == 10_476_996
    rbn = build_reblurring_network(config)
    assert rbn.count_params() == 19_139_685
    assert rbn.reference_weights()[0][1].shape == (3, 3, 15232, 128)


@pytest.mark.parametrize("num_iterations, millions", [(8, 9.44), (26, 11.52), (35, 12.56), (44, 13.60)])
def test_parameter_counts_match_paper_table4(num_iterations, millions):
    count = build_ifan(ModelConfig(num_iterations=num_iterations)).count_params()
    assert round(count / 1e6, 2) == millions


def test_reference_weight_names_cover_the_release(fixtures_dir):
    """Every name in official_state_dict_keys.txt (N=17) is produced by the model, with its shape."""
    listing = (fixtures_dir.parent / "official_state_dict_keys.txt").read_text().splitlines()
    expected, section = {}, None
    for line in listing:
        if line.startswith("## Network"):
            section = "network"
        elif line.startswith("## RBN"):
            section = "rbn"
        elif section and "\t" in line:
            name, shape = line.split("\t")
            expected[(section, name)] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    config = ModelConfig()
    got = {}
    for section, module in (("network", build_ifan(config)), ("rbn", build_reblurring_network(config))):
        for name, variable, layout in module.reference_weights():
            shape = tuple(variable.shape)
            if layout in ("conv", "conv_transpose"):
                shape = (shape[3], shape[2], shape[0], shape[1])
            got[(section, name)] = shape
    assert got == expected


@pytest.mark.parametrize("batch, height, width", [(1, 8, 8), (3, 16, 40), (2, 24, 8)])
def test_any_batch_and_multiple_of_eight_sizes(batch, height, width):
    model = build_ifan(SMALL)
    image = tf.random.uniform([batch, height, width, 3])
    out = model(image, training=False)
    assert out.shape == (batch, height, width, 3)
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0


@pytest.mark.parametrize("shape", [(1, 12, 16, 3), (1, 16, 20, 3)])
def test_other_sizes_get_a_clear_error(shape):
    model = build_ifan(SMALL)
    with pytest.raises(ValueError, match="multiple of 8"):
        model(tf.zeros(shape), training=False)


def test_tf_function_with_unknown_height_and_width():
    model = build_ifan(SMALL)
    run = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None, None, 3])])
    for shape in ((1, 16, 24, 3), (2, 32, 8, 3)):
        image = tf.random.uniform(shape, seed=1)
        np.testing.assert_allclose(run(image).numpy(), model(image, training=False).numpy(), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 8"):
        run(tf.zeros([1, 12, 16, 3]))


def test_inference_streamed_iac_equals_training_path_clipped():
    model = build_ifan(SMALL.replace(iac_mode="checkpoint"))
    image = tf.random.uniform([2, 16, 16, 3], seed=3)
    unclipped = model({"image": image, "right": image, "left": image}, training=True)["deblurred"]
    np.testing.assert_allclose(model(image, training=False).numpy(), np.clip(unclipped.numpy(), 0, 1), atol=1e-5)


def test_training_outputs():
    config = SMALL
    model = build_ifan(config)
    image = tf.random.uniform([2, 16, 24, 3])
    outputs = model({"image": image, "right": image, "left": image}, training=True)
    assert outputs["deblurred"].shape == (2, 16, 24, 3)
    assert outputs["filters"].shape == (2, 2, 3, config.filter_depth)
    assert outputs["disparity"].shape == (2, 2, 3, 1)
    assert outputs["disparity_right"].shape == (2, 2, 3, 1)
    assert "disparity_right" not in model(image, training=True)  # no right view, no disparity branch



def test_training_disparities_are_the_dme_on_c_and_r():
    """``disparity`` and ``disparity_right`` are the filter encoder + DME on C and on R, ``filters`` F on C."""
    model = build_ifan(SMALL)
    image, right = (tf.random.uniform([2, 16, 24, 3], seed=s) for s in (4, 5))
    outputs = model({"image": image, "right": right, "left": image}, training=True)
    e_f, _ = model.filter_encoder(image)
    e_f_right, _ = model.filter_encoder(right)
    np.testing.assert_allclose(outputs["disparity"].numpy(), model.disparity_estimator(e_f).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["disparity_right"].numpy(), model.disparity_estimator(e_f_right).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["filters"].numpy(),
                               model.filter_predictor(e_f, model.disparity_estimator(e_f)).numpy(),
                               rtol=1e-5, atol=1e-6)

def test_dual_pixel_input_variant():
    config = SMALL.replace(dual_pixel_input=True)
    model = build_ifan(config)
    names = dict((name, var) for name, var, _ in model.reference_weights())
    assert names["kconv1_1.0.weight"].shape == (3, 3, 6, 8)
    assert names["conv1_1.0.weight"].shape == (3, 3, 3, 8)
    image, right, left = (tf.random.uniform([1, 16, 16, 3], seed=s) for s in (1, 2, 3))
    outputs = model({"image": image, "right": right, "left": left}, training=True)
    np.testing.assert_array_equal(outputs["disparity_right"].numpy(), outputs["disparity"].numpy())
    with pytest.raises(ValueError, match="dual-pixel"):
        model(image, training=False)


def test_table1_ablation_switches():
    baseline = build_ifan(SMALL.replace(use_iac=False, use_dme=False, use_rbn=False))
    assert not hasattr(baseline, "iac")
    names = {name: var for name, var, _ in baseline.reference_weights()}
    c = SMALL.feature_channels
    assert names["F.3.weight"].shape[-1] == c and names["DME.3.weight"].shape[-1] == c
    assert baseline(tf.zeros([1, 16, 16, 3]), training=False).shape == (1, 16, 16, 3)
    no_dme = build_ifan(SMALL.replace(use_dme=False))
    assert {n: v for n, v, _ in no_dme.reference_weights()}["DME.3.weight"].shape[-1] == c
    with pytest.raises(ValueError, match="use_rbn needs use_iac"):
        ModelConfig(use_iac=False, use_rbn=True)


def test_initialisation_is_glorot_with_gain_1_5_for_the_filter_predictor():
    model = build_ifan(ModelConfig(width=8, num_iterations=17))
    weights = {name: var.numpy() for name, var, _ in model.reference_weights()}
    for name, gain in (("F.1.stem.0.0.weight", 1.5), ("conv4_4.1.stem.0.0.weight", 1.0), ("conv1_2.0.weight", 1.0)):
        kernel = weights[name]
        fan_in, fan_out = np.prod(kernel.shape[:3]), kernel.shape[0] * kernel.shape[1] * kernel.shape[3]
        limit = gain * np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.95 * limit  # uniform on [-limit, limit]
        np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.1)
    assert all(np.all(weights[name] == 0) for name in weights if name.endswith(".bias"))


def test_keras_get_config_round_trip():
    model = build_ifan(SMALL.replace(iac_mode="checkpoint"))
    clone = IFAN.from_config(model.get_config())
    assert clone.config == model.config
