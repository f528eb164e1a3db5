"""Shared by the multi-replica and multi-worker tests (not a test module): a fixed 2-step problem.

``run_steps`` trains the tiny IFAN for ``len(batches)`` steps under a strategy, each step on one
fixed global batch that the strategy splits between its replicas, starting from given weights at
RAdam's update ``FIRST_UPDATE``, and returns the per-step metrics and the final weights.
"""
import numpy as np
import tensorflow as tf

GLOBAL_BATCH = 4
CROP = 32
NUM_STEPS = 2
#: RAdam's update number of the first step. With beta_2 = 0.999, update 5 is the last un-rectified one
#: (rho_5 = 4.996) and update 6 the first rectified one, which runs other code (fused kernels): the
#: two steps compare both paths across strategies.
FIRST_UPDATE = 5


def make_batches(seed=0):
    """``NUM_STEPS`` global batches: a smooth target, a blurred C, shifted L/R views, all in [0, 1]."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(NUM_STEPS):
        target = rng.uniform(size=(GLOBAL_BATCH, CROP, CROP, 3)).astype(np.float32)
        target = (target + np.roll(target, 1, axis=1) + np.roll(target, 1, axis=2)) / 3.0
        left = np.roll(target, 1, axis=2)
        right = np.roll(target, -1, axis=2)
        image = (left + right) / 2.0
        batches.append({"image": image, "left": left, "right": right, "target": target})
    return batches


def initial_weights(state):
    return {"network": [w.copy() for w in state.network.get_weights()],
            "reblur": [w.copy() for w in state.reblur_network.get_weights()]}


def set_weights(state, weights):
    state.network.set_weights(weights["network"])
    state.reblur_network.set_weights(weights["reblur"])


def flat_weights(state):
    return np.concatenate([np.ravel(w) for w in state.network.get_weights() + state.reblur_network.get_weights()])


def replica_slices(strategy, batch):
    """A distributed batch: replica i of the job gets examples [i*b, (i+1)*b) of the global batch."""
    if strategy.num_replicas_in_sync == 1:
        return {key: tf.constant(value) for key, value in batch.items()}
    per_replica = GLOBAL_BATCH // strategy.num_replicas_in_sync

    def value_fn(context):
        start = context.replica_id_in_sync_group * per_replica
        return {key: tf.constant(value[start:start + per_replica]) for key, value in batch.items()}

    return strategy.experimental_distribute_values_from_function(value_fn)


def run_steps(strategy, config, batches, weights, return_state=False):
    """Builds the state under ``strategy``, loads ``weights``, runs the steps; returns (metrics list, flat weights)
    and, with ``return_state``, the ``TrainState`` as well."""
    from ifan_tf.training.train_step import make_distributed_train_step
    from ifan_tf.training.trainer import build_train_state

    state = build_train_state(config, strategy)
    set_weights(state, weights)
    assert config.train.beta_2 == 0.999, "FIRST_UPDATE assumes beta_2 = 0.999"
    state.inner_optimizer.iterations.assign(FIRST_UPDATE - 1)
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=GLOBAL_BATCH,
                                          clip_norm=config.train.clip_norm)
    metrics = []
    for batch in batches:
        metrics.append({name: float(value) for name, value in step_fn(replica_slices(strategy, batch)).items()})
    return (metrics, flat_weights(state), state) if return_state else (metrics, flat_weights(state))
