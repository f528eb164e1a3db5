"""The three losses: values, switches, and correct scaling under a 2-replica MirroredStrategy."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.config import ModelConfig
from ifan_tf.training import losses

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_per_example_mse_and_global_reduction():
    prediction = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3))
    target = tf.zeros_like(prediction)
    per_example = losses.per_example_mse(prediction, target).numpy()
    np.testing.assert_allclose(per_example, [np.mean(np.arange(12.0) ** 2), np.mean(np.arange(12.0, 24) ** 2)])
    # Divides by the *global* batch size, not the local one.
    np.testing.assert_allclose(losses.reduce_over_global_batch(per_example, global_batch_size=4).numpy(),
                               per_example.sum() / 4)


def test_disabled_losses_are_zero_and_required_inputs_are_checked():
    batch = {"image": tf.zeros([1, 16, 16, 3]), "target": tf.ones([1, 16, 16, 3])}
    outputs = {"deblurred": tf.zeros([1, 16, 16, 3])}
    values = losses.compute_losses(ModelConfig(use_dme=False, use_rbn=False), outputs, batch)
    assert float(values["deblur"]) == 1.0 and float(values["disparity"]) == 0 and float(values["reblur"]) == 0
    assert float(values["total"]) == 1.0
    with pytest.raises(ValueError, match="right view"):
        losses.compute_losses(ModelConfig(use_rbn=False), outputs, batch)
    with pytest.raises(ValueError, match="RBN output"):
        losses.compute_losses(ModelConfig(use_dme=False), outputs, batch)


TWO_REPLICA_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.model.reblur import build_reblurring_network
    from ifan_tf.training import losses
    import keras

    config = ModelConfig(width=4, num_iterations=2, reblur_iterations=2)
    rng = np.random.default_rng(0)
    batch = {k: rng.uniform(size=(4, 16, 16, 3)).astype(np.float32) for k in ("image", "right", "left", "target")}

    def losses_and_grads(network, rbn, batch, global_batch_size):
        with tf.GradientTape() as tape:
            out = network(batch, training=True)
            sb = rbn(losses.reblur_input(batch["target"]), out["filters"])
            values = losses.compute_losses(config, out, batch, sb, global_batch_size)
        variables = network.trainable_variables + rbn.trainable_variables
        return values, tape.gradient(values["total"], variables)

    keras.utils.set_random_seed(1)
    network, rbn = build_ifan(config), build_reblurring_network(config)
    single, single_grads = losses_and_grads(network, rbn, batch, 4)
    weights = [v.numpy() for v in network.weights + rbn.weights]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        network2, rbn2 = build_ifan(config), build_reblurring_network(config)
        for v, w in zip(network2.weights + rbn2.weights, weights):
            v.assign(w)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(4)
    per_replica_batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(b):
        values, grads = losses_and_grads(network2, rbn2, b, 4)
        return values, grads

    values, grads = strategy.run(step, args=(per_replica_batch,))
    summed = {k: float(strategy.reduce("SUM", v, axis=None)) for k, v in values.items()}
    summed_grads = [strategy.reduce("SUM", g, axis=None).numpy() for g in grads]
    grad_gap = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(summed_grads, single_grads))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "single": {k: float(v) for k, v in single.items()},
                      "summed": summed, "grad_gap": grad_gap}))
""")


def test_two_replica_losses_and_gradients_equal_one_replica_on_the_global_batch():
    """Per-replica losses summed across 2 replicas equal the 1-replica loss (relative 1e-5), and so do gradients."""
    result = subprocess.run([sys.executable, "-c", TWO_REPLICA_SCRIPT], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for name in ("deblur", "disparity", "reblur", "total"):
        np.testing.assert_allclose(report["summed"][name], report["single"][name], rtol=1e-5)
    assert report["single"]["disparity"] > 0 and report["single"]["reblur"] > 0
    assert report["grad_gap"] < 1e-5
