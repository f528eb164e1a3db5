"""One IFAN training step, written for one replica and run by a ``tf.distribute`` strategy.

The step (spec "Training-only parts" and "Optimisation and data"):

1. the deblurring network in training mode on ``{"image": C, "right": R, "left": L}``, giving the
   unclipped output, the filter map ``F`` and the DME's disparity on R;
2. the reblurring network on the predicted filters: ``SB = RBN(S, F)`` with S the nearest 1/8
   downsample of the ground truth;
3. the three losses ``L_deblur + L_disp + L_reblur`` (``ifan_tf.training.losses``: per-example MSEs divided
   by the GLOBAL batch size);
4. gradients of the deblurring network and the RBN together, global-norm clipping (0.5), one
   RAdam update. In a replica context the optimizer sums the replicas' gradients, so N replicas
   on B/N examples each make exactly the update of one replica on B examples;
5. with ``train.ema_decay`` > 0, the moving average of the network's weights follows the update
   (``weight_average``; not in the paper).

With ``mixed_float16`` the optimizer is a ``keras.optimizers.LossScaleOptimizer``: the loss is
scaled, the scaled gradients are clipped at ``clip_norm * scale`` (the same coefficient as
clipping the unscaled ones) and the loss-scale optimizer skips steps with non-finite gradients.
``mixed_bfloat16`` needs no loss scaling.

Without loss scaling, a step whose loss or gradient norm is not finite (on any replica) is
skipped as well (``skip_non_finite``, the default): weights, RAdam moments and its step count stay
as they were. What the trainer does then (the guard, undo and cool-down) is in ``stability``. The
skip runs the gradients and the update as two functions and decides on the host in between.
Multi-worker runs cannot hand the gradients from one function to the next: there the update is
always applied and the trainer stops at the first non-finite step.
"""

import dataclasses

import keras
import tensorflow as tf

from ifan_tf.training.gradient_clipping import TORCH_CLIP_EPSILON, clip_by_global_norm
from ifan_tf.training.losses import LOSS_NAMES, compute_losses, reblur_input
from ifan_tf.training.stability import UpdateUndo

#: Scalars returned by every step (losses, then these).
STEP_METRICS = LOSS_NAMES + ("grad_norm", "learning_rate", "finite")


@dataclasses.dataclass
class TrainState:
    """What the training step reads and updates (all created inside ``strategy.scope()``).

    Attributes:
      network: the IFAN deblurring network (``ifan_tf.model.ifan.IFAN``).
      reblur_network: the RBN, or None when the config has ``use_rbn=False``.
      optimizer: RAdam, possibly wrapped in a ``LossScaleOptimizer``.
      step: int64 scalar variable, number of completed training steps (the checkpoint's step).
      weight_average: a ``weight_average.WeightAverage`` of the network's weights, moved after every
        applied update; None (the default) when ``train.ema_decay`` is 0.
      learning_rate_factor: the ``stability.LearningRateFactor`` on the schedule when the run
        adjusts its learning rate (the demo); None (the default) for the paper's schedule alone.
    """

    network: keras.Model
    reblur_network: object
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    weight_average: object = None
    learning_rate_factor: object = None

    @property
    def trainable_variables(self):
        """Deblurring network weights followed by RBN weights (the reference clips them together)."""
        variables = list(self.network.trainable_variables)
        if self.reblur_network is not None:
            variables += list(self.reblur_network.trainable_variables)
        return variables

    @property
    def inner_optimizer(self):
        """RAdam itself (unwrapped from the loss-scale optimizer if there is one)."""
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)


def network_inputs(batch):
    """The model's input dict from a data batch (``image``, ``right``, ``left`` [B, H, W, 3] in [0, 1])."""
    return {"image": batch["image"], "right": batch["right"], "left": batch["left"]}


def forward_and_losses(state, model_config, batch, global_batch_size):
    """Forward pass in training mode and the three losses.

    Returns:
      ``(losses, outputs, reblurred)``: the loss dict of ``compute_losses`` (float32 scalars),
      the network's training outputs and SB ``[B, H/8, W/8, 3]`` (None without the RBN).
    """
    outputs = state.network(network_inputs(batch), training=True)
    reblurred = None
    if model_config.use_rbn:
        # The factored filter map: the RBN's first conv runs on F's 128 hidden channels instead of
        # its 15,232 channels (same numbers up to summation order); graph mode then never
        # computes the dense outputs["filters"].
        reblurred = state.reblur_network.call_on_filter_map(reblur_input(batch["target"]), outputs["filter_map"])
    losses = compute_losses(model_config, outputs, batch, reblurred, global_batch_size=global_batch_size)
    return losses, outputs, reblurred


def _all_finite(tensors):
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def compute_gradients(state, model_config, batch, global_batch_size):
    """Forward, losses and backward: ``(losses, gradients)``, gradients of the (scaled) total loss.

    This is the part worth compiling with XLA (``jit_compile``): it holds no cross-replica
    communication. With a ``LossScaleOptimizer`` the gradients are those of the scaled loss.
    """
    optimizer = state.optimizer
    with tf.GradientTape() as tape:
        losses, _, _ = forward_and_losses(state, model_config, batch, global_batch_size)
        objective = losses["total"]
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            objective = optimizer.scale_loss(objective)
    return losses, tape.gradient(objective, state.trainable_variables)


def compute_update(state, model_config, batch, *, global_batch_size, clip_norm, gradient_fn=None):
    """Forward, losses, backward and clipping on this replica's part of the global batch.

    Args:
      state: ``TrainState``.
      model_config: the ``ModelConfig`` of the networks.
      batch: dict ``image``/``left``/``right``/``target`` ``[b, H, W, 3]`` float32 in [0, 1], b the
        per-replica batch size.
      global_batch_size: B, examples per step summed over replicas (loss normaliser).
      clip_norm: maximum global gradient norm (0.5 in the paper); None or <= 0 disables clipping.
      gradient_fn: ``batch -> (losses, gradients)``, e.g. an XLA-compiled ``compute_gradients``;
        None calls ``compute_gradients`` directly.
    Returns:
      ``(metrics, gradients)``: dict of float32 scalars named ``STEP_METRICS`` (the losses, global-batch
      means once summed over replicas; ``grad_norm`` before clipping; ``learning_rate`` of this
      update; ``finite`` 1.0 if the loss and, without loss scaling, the gradient norm are finite),
      and the clipped gradients aligned with ``state.trainable_variables``.
    """
    optimizer = state.optimizer
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    learning_rate = tf.cast(state.inner_optimizer.learning_rate, tf.float32)  # lr of this update
    if gradient_fn is None:
        losses, gradients = compute_gradients(state, model_config, batch, global_batch_size)
    else:
        losses, gradients = gradient_fn(batch)
    scale = tf.cast(optimizer.dynamic_scale, tf.float32) if loss_scaled else tf.constant(1.0)
    if clip_norm is not None and clip_norm > 0:
        # clip(g * s, c * s) = s * clip(g, c): clipping the scaled gradients is clipping the true ones
        gradients, norm = clip_by_global_norm(gradients, max_norm=clip_norm * scale,
                                              epsilon=TORCH_CLIP_EPSILON * scale)
    else:
        gradients, norm = clip_by_global_norm(gradients, max_norm=float("inf"))
    norm = norm / scale
    # With loss scaling, non-finite gradients are expected now and then: the loss-scale optimizer
    # skips that update and lowers the scale. Otherwise they would poison the weights.
    finite = tf.math.is_finite(losses["total"])
    if not loss_scaled:
        finite = tf.logical_and(finite, tf.math.is_finite(norm))
    metrics = dict(losses)
    metrics.update(grad_norm=norm, learning_rate=learning_rate, finite=tf.cast(finite, tf.float32))
    return metrics, gradients


def apply_update(state, gradients):
    """One optimizer update of ``state.trainable_variables`` with ``gradients`` (replica context)."""
    state.optimizer.apply_gradients(zip(gradients, state.trainable_variables))


def update_weight_average(state):
    """Moves ``state.weight_average`` (if any) to the weights just updated (cross-replica context).

    With loss scaling an update may have been skipped by the loss-scale optimizer; the average then
    moves towards unchanged weights, which is harmless.
    """
    if state.weight_average is not None:
        state.weight_average.update()


def train_step(state, model_config, batch, *, global_batch_size, clip_norm, gradient_fn=None):
    """One optimisation step on this replica, always applied (the reference's behaviour).

    ``compute_update`` then ``apply_update``; returns the metrics of ``compute_update``. With loss
    scaling the loss-scale optimizer still skips updates with non-finite gradients by itself.
    """
    metrics, gradients = compute_update(state, model_config, batch, global_batch_size=global_batch_size,
                                        clip_norm=clip_norm, gradient_fn=gradient_fn)
    apply_update(state, gradients)
    return metrics


def can_skip_non_finite(strategy):
    """Whether ``make_distributed_train_step`` can skip updates under ``strategy``.

    The decision is taken on the host between the gradient and the update functions, from
    ``finite`` reduced over all replicas, so every replica takes the same one (one or several
    local replicas). Not multi-worker: there the gradients cannot be handed from one function to
    the next (the update's all-reduce finds no destinations), so updates are always applied.
    """
    return not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _reduce_metrics(strategy, per_replica):
    metrics = {}
    for name in LOSS_NAMES:
        metrics[name] = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
    for name in ("grad_norm", "learning_rate"):
        metrics[name] = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica[name], axis=None)
    mean_finite = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica["finite"], axis=None)
    metrics["finite"] = tf.cast(mean_finite >= 1.0, tf.float32)  # 1 only if every replica was finite
    return metrics


@dataclasses.dataclass
class DistributedTrainStep:
    """What ``make_distributed_train_step`` builds: call it with a distributed batch for the metrics.

    Attributes:
      run: ``distributed_batch -> dict`` of float32 scalar tensors (``STEP_METRICS``).
      update_undo: the ``stability.UpdateUndo`` holding the state before the last applied update
        (``keep_undo_copy``), else None.
    """

    run: object
    update_undo: UpdateUndo = None

    def __call__(self, distributed_batch):
        return self.run(distributed_batch)


def make_distributed_train_step(strategy, state, model_config, *, global_batch_size, clip_norm, jit_compile=False,
                                skip_non_finite=True, keep_undo_copy=False):
    """The training step run on every replica: ``step_fn(distributed_batch) -> metrics``.

    Args:
      strategy: the ``tf.distribute.Strategy`` the state was created under.
      state, model_config, global_batch_size, clip_norm: see ``compute_update``.
      jit_compile: compile forward and backward with XLA (meant for GPUs; slow on CPU). Clipping
        and the optimizer update (which communicate between replicas) stay outside.
      skip_non_finite: without loss scaling, apply no update (weights, RAdam moments and step count
        unchanged) when the loss or the gradient norm of any replica is not finite. False applies
        every update, as the reference does. With loss scaling the loss-scale optimizer skips.
      keep_undo_copy: when the step skips non-finite updates itself, also keep a copy of the state
        before each update (``stability.UpdateUndo``, one more copy of weights and moments).
    Returns:
      ``DistributedTrainStep``, called with a distributed batch: losses summed over replicas
      (= global-batch means), gradient norm and learning rate (identical on all replicas),
      ``finite`` 1.0 only if every replica was finite. Increments ``state.step`` (skipped steps
      count too).

    Skipping runs two ``tf.function``s, gradients then update, and decides on the host in between
    (one scalar read per step, which the trainer makes anyway). A ``tf.cond`` around the update in
    one function would keep it on the device but cannot hold the optimizer's cross-replica sum,
    and on CPU it made tracing and graph optimisation of the demo's first step take ~60 s
    instead of ~12 s and every step slower.
    """
    gradient_fn = None
    if jit_compile:
        gradient_fn = tf.function(lambda batch: compute_gradients(state, model_config, batch, global_batch_size),
                                  jit_compile=True)
    step_args = dict(global_batch_size=global_batch_size, clip_norm=clip_norm, gradient_fn=gradient_fn)
    loss_scaled = isinstance(state.optimizer, keras.optimizers.LossScaleOptimizer)

    if not skip_non_finite or loss_scaled or not can_skip_non_finite(strategy):
        @tf.function
        def step_fn(distributed_batch):
            per_replica = strategy.run(lambda batch: train_step(state, model_config, batch, **step_args),
                                       args=(distributed_batch,))
            update_weight_average(state)
            state.step.assign_add(1)
            return _reduce_metrics(strategy, per_replica)

        # With loss scaling the loss-scale optimizer skips by itself and nothing saves a copy:
        # an undo would restore a stale one.
        return DistributedTrainStep(step_fn)

    update_undo = None
    if keep_undo_copy:
        with strategy.scope():
            update_undo = UpdateUndo(state)

    @tf.function
    def gradient_step(distributed_batch):
        per_replica_metrics, per_replica_gradients = strategy.run(
            lambda batch: compute_update(state, model_config, batch, **step_args), args=(distributed_batch,))
        state.step.assign_add(1)
        return _reduce_metrics(strategy, per_replica_metrics), per_replica_gradients

    @tf.function
    def update_step(per_replica_gradients):
        # One grouped control input: ``control_dependencies`` on the list itself would give each of
        # the update's ~8,000 ops ~500 control edges (a minute of graph optimisation on CPU).
        with tf.control_dependencies([tf.group(*update_undo.save())] if update_undo is not None else []):
            strategy.run(lambda gradients: apply_update(state, gradients), args=(per_replica_gradients,))
        update_weight_average(state)

    def step_fn(distributed_batch):
        metrics, gradients = gradient_step(distributed_batch)
        if float(metrics["finite"]) >= 1.0:
            update_step(gradients)
        return metrics

    return DistributedTrainStep(step_fn, update_undo)
