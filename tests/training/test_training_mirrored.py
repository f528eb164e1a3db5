"""RAdam + gradient clipping under tf.distribute.MirroredStrategy on 2 logical CPUs.

Logical devices must be configured before TensorFlow initialises its devices, which the other
tests in this process have already done, so the strategy runs in a subprocess that reports JSON.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np

from training_numpy_references import spec_radam, torch_style_clip

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

STRATEGY_SCRIPT = r"""
import json, os, sys
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from ifan_tf.training.gradient_clipping import clip_by_global_norm
from ifan_tf.training.optimizer import RAdam
from ifan_tf.training.schedule import StepDecay

problem = json.load(sys.stdin)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    variables = [keras.Variable(np.array(p, np.float32)) for p in problem["params"]]
    optimizer = RAdam(learning_rate=StepDecay(**problem["schedule"]), weight_decay=problem["weight_decay"])
    optimizer.build(variables)

@tf.function
def train_step(per_replica_gradients):
    def replica_step(gradients):
        clipped, norm = clip_by_global_norm(gradients, max_norm=problem["max_norm"])
        optimizer.apply_gradients(zip(clipped, variables))
        return norm
    return strategy.experimental_local_results(strategy.run(replica_step, args=(per_replica_gradients,)))

norms = []
for step_gradients in problem["gradients"]:
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: [tf.constant(g, tf.float32) for g in step_gradients[context.replica_id_in_sync_group]]
    )
    norms.append([float(n) for n in train_step(per_replica)])
json.dump({
    "replicas": strategy.num_replicas_in_sync,
    "iterations": int(optimizer.iterations.numpy()),
    "norms": norms,
    "params_per_device": [
        [component.numpy().tolist() for component in strategy.experimental_local_results(v.value)]
        for v in variables
    ],
}, sys.stdout)
"""


def test_two_replicas_match_the_spec_on_the_summed_clipped_gradient():
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (5,)]
    num_steps = 8
    params = [rng.uniform(-1.0, 1.0, shape) for shape in shapes]
    # Alternate large and small gradients so that some steps are clipped and some are not.
    gradients = [
        [[(1.0 if step % 2 == 0 else 0.02) * rng.standard_normal(shape) for shape in shapes] for _ in range(2)]
        for step in range(num_steps)
    ]
    problem = {
        "params": [p.tolist() for p in params],
        "gradients": [[[g.astype(np.float32).tolist() for g in replica] for replica in step] for step in gradients],
        "schedule": {"initial_learning_rate": 0.05, "boundaries": [4], "factor": 0.5},
        "weight_decay": 0.1,
        "max_norm": 0.5,
    }
    result = subprocess.run(
        [sys.executable, "-c", STRATEGY_SCRIPT],
        input=json.dumps(problem),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["replicas"] == 2
    assert report["iterations"] == num_steps

    # Keras sums the replicas' gradients; the reference clips the whole gradient, then steps.
    summed = [[np.float32(a).astype(np.float64) + np.float32(b) for a, b in zip(*step)] for step in gradients]
    clipped_and_norms = [torch_style_clip(step, 0.5) for step in summed]
    norms = [norm for _, norm in clipped_and_norms]
    assert min(norms) < 0.5 < max(norms)
    np.testing.assert_allclose(report["norms"], [[n, n] for n in norms], rtol=1e-5)
    expected = spec_radam(
        [np.float32(p) for p in params],
        [clipped for clipped, _ in clipped_and_norms],
        lambda t: 0.05 * 0.5 ** (t - 1 > 4),
        0.9,
        0.999,
        1e-8,
        0.1,
    )[-1]
    for per_device, wanted in zip(report["params_per_device"], expected):
        assert len(per_device) == 2
        np.testing.assert_array_equal(per_device[0], per_device[1])
        np.testing.assert_allclose(per_device[0], wanted, rtol=1e-5, atol=1e-6)
