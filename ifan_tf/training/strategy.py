"""Choosing the ``tf.distribute`` strategy of a training run.

- ``TF_CONFIG`` naming more than one worker -> ``MultiWorkerMirroredStrategy`` (one process per
  host, each using all its GPUs; collectives over gRPC/NCCL);
- otherwise several visible GPUs -> ``MirroredStrategy`` over all of them;
- otherwise the default strategy (one CPU or one GPU, no replica machinery).

Seeding and op determinism are global TensorFlow settings; they are applied here too, before
any model or strategy is built.
"""

import json
import os

import keras
import tensorflow as tf
from absl import logging

def cluster_workers(tf_config=None):
    """Number of workers (``worker`` + ``chief``) in ``TF_CONFIG`` (a JSON string; default: the env)."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text:
        return 0
    try:
        cluster = json.loads(text).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' entry: {error}") from error
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def choose_strategy(devices=None):
    """The strategy for this process (see module docstring).

    Args:
      devices: explicit device names for a ``MirroredStrategy`` (e.g. ``["/cpu:0", "/cpu:1"]`` on
        logical CPU devices); None = choose automatically.
    Returns:
      A ``tf.distribute.Strategy``.
    """
    if devices:
        strategy = tf.distribute.MirroredStrategy(list(devices))
    elif cluster_workers() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif len(tf.config.list_logical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logging.info("distribution: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief(strategy):
    """Whether this process writes shared outputs (checkpoints, summaries, model directory)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def worker_index(strategy):
    """This process's index among the workers (0 on a single host)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    return int(resolver.task_id or 0)


def set_determinism(seed, deterministic):
    """Seeds Python, numpy and TF (``keras.utils.set_random_seed``); optionally deterministic ops."""
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
