"""Child process of test_trainer_resume.py (deterministic ops are a process-wide switch).

Run A trains 4 steps without a break; run B trains 2 steps, stops, and the same call with
num_steps=4 resumes it. Both keep a moving average of the weights (``train.ema_decay``, the demo's),
so one pair of runs checks the paper's state (weights, RAdam, step, input position) and the
average. Prints one JSON line with both runs' per-step losses and the largest difference of their
final weights and averages.
"""
import json
import os
import sys

import numpy as np

from tiny_training_setup import tiny_config

from ifan_tf.training.trainer import METRICS_FILE, train

train_glob, root = sys.argv[1], sys.argv[2]


def losses(workdir):
    with open(os.path.join(workdir, METRICS_FILE)) as handle:
        records = [json.loads(line) for line in handle]
    return {record["step"]: [record["total"], record["deblur"], record["disparity"], record["reblur"]]
            for record in records}


def weights(result):
    state = result.state
    return np.concatenate([np.ravel(w) for w in state.network.get_weights() + state.reblur_network.get_weights()]
                          + [np.ravel(v.numpy()) for v in state.optimizer.variables])


def config(num_steps, **overrides):
    return tiny_config(train_glob, train__deterministic=True, train__num_steps=num_steps, data__augment=True,
                       **overrides)


def averages(result):
    # after train() the network holds the average and the averages the last weights: both are compared
    return np.concatenate([weights(result)] + [np.ravel(v.numpy()) for v in result.state.weight_average.averages])


uninterrupted = train(config(4, train__ema_decay=0.5), os.path.join(root, "a"))
first_part = train(config(2, train__ema_decay=0.5), os.path.join(root, "b"))
resumed = train(config(4, train__ema_decay=0.5), os.path.join(root, "b"))
print(json.dumps({
    "max_ema_difference": float(np.max(np.abs(averages(uninterrupted) - averages(resumed)))),
    "uninterrupted": losses(os.path.join(root, "a")), "resumed": losses(os.path.join(root, "b")),
    "steps": [uninterrupted.step, first_part.step, resumed.step],
    "max_weight_difference": float(np.max(np.abs(weights(uninterrupted) - weights(resumed)))),
}))
