"""Child process of test_multi_replica.py: 1 replica vs MirroredStrategy on 2 logical CPU devices.

Logical devices must be configured before TensorFlow initialises, hence a separate process.
Prints one JSON line: per-step metrics of both runs and the weight differences.
"""
import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from distributed_equivalence import initial_weights, make_batches, run_steps  # noqa: E402
from tiny_training_setup import tiny_config  # noqa: E402

from ifan_tf.training.strategy import choose_strategy  # noqa: E402
from ifan_tf.training.trainer import build_train_state  # noqa: E402

config = tiny_config("unused")
keras.utils.set_random_seed(0)
start = initial_weights(build_train_state(config, tf.distribute.get_strategy()))
batches = make_batches()
start_flat = np.concatenate([np.ravel(w) for w in start["network"] + start["reblur"]])

# With a moving average of the weights (train.ema_decay, the demo's): it follows the same updates
# under both strategies, and it does not change the weights' own trajectory.
ema_config = tiny_config("unused", train__ema_decay=0.5)
single_metrics, single_weights, single_state = run_steps(tf.distribute.get_strategy(), ema_config, batches, start,
                                                         return_state=True)
mirrored = choose_strategy(devices=["/cpu:0", "/cpu:1"])
mirrored_metrics, mirrored_weights, mirrored_state = run_steps(mirrored, ema_config, batches, start,
                                                               return_state=True)
averages = [np.concatenate([np.ravel(v.numpy()) for v in state.weight_average.averages])
            for state in (single_state, mirrored_state)]
network_weights = np.concatenate([np.ravel(w) for w in mirrored_state.network.get_weights()])
# A step that is not finite on one replica only is skipped on both; the update before it can be undone.
from distributed_equivalence import GLOBAL_BATCH, flat_weights, replica_slices, set_weights  # noqa: E402

from ifan_tf.training.train_step import make_distributed_train_step  # noqa: E402

state = build_train_state(config, mirrored)
set_weights(state, start)
step_fn = make_distributed_train_step(mirrored, state, state.network.config, global_batch_size=GLOBAL_BATCH,
                                      clip_norm=config.train.clip_norm, keep_undo_copy=True)
step_fn(replica_slices(mirrored, batches[0]))
after_first = flat_weights(state)
poisoned = dict(batches[1], target=batches[1]["target"].copy())
poisoned["target"][GLOBAL_BATCH // 2:] = np.inf  # the second replica's examples only
skipped = step_fn(replica_slices(mirrored, poisoned))
skip_report = {
    "finite": float(skipped["finite"]),
    "weight_change": float(np.max(np.abs(flat_weights(state) - after_first))),
    "iterations": int(state.inner_optimizer.iterations.numpy()),
}
step_fn.update_undo.undo()
skip_report["undone_difference"] = float(np.max(np.abs(flat_weights(state) - start_flat)))
skip_report["undone_iterations"] = int(state.inner_optimizer.iterations.numpy())

print(json.dumps({
    "ema_difference": float(np.max(np.abs(averages[0] - averages[1]))),
    "ema_from_weights": float(np.max(np.abs(averages[1] - network_weights))),
    "skip": skip_report,
    "replicas": mirrored.num_replicas_in_sync,
    "single": single_metrics, "mirrored": mirrored_metrics,
    "max_weight_difference": float(np.max(np.abs(single_weights - mirrored_weights))),
    "max_weight_change": float(np.max(np.abs(single_weights - start_flat))),
}))
sys.stdout.flush()
