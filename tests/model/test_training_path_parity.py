"""The training step's fast path (factored filter map into the RBN) against the official PyTorch outputs.

``test_reference_parity.py`` feeds the RBN the dense filter map; the training step feeds it the
``LinearFilterMap`` of the training outputs. Same fixtures and tolerances, eager and graph mode.
"""

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.training import losses
from test_reference_parity import FIXTURES_DIR, RELATIVE_TOLERANCE, VARIANTS, load_variant, nhwc


@pytest.mark.parametrize("execution", ["eager", "graph"])
@pytest.mark.parametrize("mode", sorted(VARIANTS))
def test_reblurred_and_losses_through_the_factored_filter_map(mode, execution):
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES_DIR}")
    config, network, reblur_network, reference = load_variant(FIXTURES_DIR, mode)
    batch = {name: tf.constant(nhwc(reference[key])) for name, key in
             (("image", "C"), ("right", "R"), ("left", "L"), ("target", "GT"))}

    def forward(batch):
        outputs = network({"image": batch["image"], "right": batch["right"], "left": batch["left"]}, training=True)
        reblurred = reblur_network.call_on_filter_map(losses.reblur_input(batch["target"]), outputs["filter_map"])
        return reblurred, losses.compute_losses(config, outputs, batch, reblurred)

    if execution == "graph":
        forward = tf.function(forward)
    reblurred, loss_values = forward(batch)
    want = nhwc(reference["reblurred"])
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(reblurred.numpy() - want).max()) <= RELATIVE_TOLERANCE * scale
    for name in ("deblur", "disparity", "reblur"):
        np.testing.assert_allclose(float(loss_values[name]), float(reference[f"loss_{name}"]), rtol=1e-5)
