"""The Keras IFAN reproduces the official PyTorch outputs in ../shared/fixtures (both IAC variants).

Tolerance: max |difference| <= 2e-5 x max(1, max |reference value|). A correct float32 port matches
to ~1e-6 (the convolutions sum in a different order); a layout or wiring bug shows up as >= 1e-3.
Losses are compared with a relative tolerance of 1e-5.
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.training import losses
from ifan_tf.weights.reference_checkpoint import check_and_assign, infer_model_config, read_state_dict, split_state_dict

VARIANTS = {"checkpoint": "official_small_checkpoint_iac", "separable": "official_small_separable_iac"}
RELATIVE_TOLERANCE = 2e-5
FIXTURES_DIR = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures"  # ../shared/fixtures


def nhwc(array):
    return np.transpose(array, (0, 2, 3, 1))


def load_variant(fixtures_dir, mode):
    state = read_state_dict(fixtures_dir / f"{VARIANTS[mode]}_weights.npz")
    network_state, reblur_state = split_state_dict(state)
    config = infer_model_config(network_state, reblur_state, iac_mode=mode)
    network = build_ifan(config)
    check_and_assign(network, network_state, "fixture")
    reblur_network = build_reblurring_network(config)
    check_and_assign(reblur_network, reblur_state, "fixture")
    reference = dict(np.load(fixtures_dir / f"{VARIANTS[mode]}_io.npz"))
    return config, network, reblur_network, reference


def run_everything(config, network, reblur_network, reference, execution="eager"):
    """Runs every reference computation eagerly or inside ``tf.function`` (graph rewrites differ)."""
    batch = {name: tf.constant(nhwc(reference[key])) for name, key in
             (("image", "C"), ("right", "R"), ("left", "L"), ("target", "GT"))}

    def train_forward(image, right, left, target):
        outputs = network({"image": image, "right": right, "left": left}, training=True)
        return outputs, reblur_network(losses.reblur_input(target), outputs["filters"])

    def eval_forward(image):
        return network(image, training=False)

    if execution == "graph":
        train_forward, eval_forward = tf.function(train_forward), tf.function(eval_forward)
    outputs, reblurred = train_forward(batch["image"], batch["right"], batch["left"], batch["target"])
    warped, left_down = losses.disparity_pair(outputs["disparity_right"], batch["right"], batch["left"])
    results = {
        "result_eval": eval_forward(batch["image"]),
        "result_train": outputs["deblurred"],
        "filters": outputs["filters"],
        "disparity_right": outputs["disparity_right"],
        "right_warped": warped,
        "left_down": left_down,
        "reblurred": reblurred,
    }
    return results, losses.compute_losses(config, outputs, batch, reblurred)


@pytest.fixture(scope="module", params=[(mode, execution) for mode in sorted(VARIANTS) for execution in ("eager", "graph")],
                ids=lambda param: "-".join(param))
def variant_results(request):
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES_DIR} (they live in ../shared/fixtures)")
    mode, execution = request.param
    config, network, reblur_network, reference = load_variant(FIXTURES_DIR, mode)
    results, loss_values = run_everything(config, network, reblur_network, reference, execution)
    return f"{mode}/{execution}", config, reference, results, loss_values


@pytest.mark.parametrize("name", ["result_eval", "result_train", "filters", "disparity_right", "right_warped",
                                  "left_down", "reblurred"])
def test_tensor_matches_reference(variant_results, name):
    mode, _, reference, results, _ = variant_results
    want = nhwc(reference[name])
    got = np.asarray(results[name])
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    difference = float(np.abs(got - want).max())
    assert difference <= RELATIVE_TOLERANCE * scale, f"{mode}/{name}: max |diff| {difference:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("name", ["deblur", "disparity", "reblur"])
def test_loss_matches_reference(variant_results, name):
    _, _, reference, _, loss_values = variant_results
    np.testing.assert_allclose(float(loss_values[name]), float(reference[f"loss_{name}"]), rtol=1e-5)


def test_total_loss_is_the_sum(variant_results):
    _, _, reference, _, loss_values = variant_results
    want = sum(float(reference[f"loss_{name}"]) for name in ("deblur", "disparity", "reblur"))
    np.testing.assert_allclose(float(loss_values["total"]), want, rtol=1e-5)


def test_checkpoint_and_separable_modes_differ_where_they_should(fixtures_dir):
    """Same weights: the filter map and disparity agree, the IAC-dependent outputs do not."""
    outputs = {}
    for mode in VARIANTS:
        config, network, reblur_network, reference = load_variant(fixtures_dir, mode)
        outputs[mode], _ = run_everything(config, network, reblur_network, reference)
    for same in ("filters", "disparity_right", "right_warped"):
        np.testing.assert_array_equal(np.asarray(outputs["checkpoint"][same]), np.asarray(outputs["separable"][same]))
    for different in ("result_train", "reblurred"):
        gap = np.abs(np.asarray(outputs["checkpoint"][different]) - np.asarray(outputs["separable"][different])).max()
        assert gap > 1e-2, f"{different} should depend on the IAC mode (gap {gap})"
    # And each mode's result is only right for its own reference.
    separable_reference = np.load(fixtures_dir / f"{VARIANTS['separable']}_io.npz")["result_train"]
    assert np.abs(np.asarray(outputs["checkpoint"]["result_train"]) - nhwc(separable_reference)).max() > 1e-2
