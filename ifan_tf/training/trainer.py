"""The IFAN training loop, top to bottom: ``train(config, workdir)``.

1. strategy, the work directory's lock (a second training on it is refused, see
   ``workdir_lock``); a run already in ``WORKDIR`` (its ``config.json``) is compared with the new
   settings before anything is built, and a change its checkpoints cannot absorb is refused
   (``checkpointing.incompatible_changes``); seeds;
2. networks, RAdam with the step-decay schedule, step counter (inside ``strategy.scope()``);
3. the input pipeline (one per worker, ``distribute_datasets_from_function``);
4. restore the latest checkpoint of ``WORKDIR`` if any (same optimizer state and step; in
   deterministic mode also the input position, so the losses continue exactly); only then is the
   resolved config written (atomically) to ``WORKDIR/config.json``;
5. the periodic actions (``periodic_actions``), each with its schedule (``periodic.Every``):
   progress line and scalars every ``log_every`` steps, images every ``image_every``, checkpoint
   + model directory every ``checkpoint_every`` steps or ``checkpoint_every_minutes``, validation
   every ``eval.every`` steps or ``eval.every_minutes`` keeping the best checkpoint by PSNR;
6. the loop: one distributed step, the non-finite guard (``stability``), one vote of the workers on the time
   budget (``max_minutes``, SIGTERM/SIGINT) and the time-based schedules, the actions that are due;
7. final checkpoint, validation and ``WORKDIR/model`` (unless done at that step already).

With ``train.ema_decay`` > 0 the validations and both model directories use the moving average of
the network's weights (``weight_average``); the checkpoints hold the weights and the average.

Outputs in ``WORKDIR``: ``config.json``, ``checkpoints/`` (see ``checkpointing``), ``tensorboard/``,
``model/`` (latest weights) and ``model_best/`` (best validation PSNR), both model directories
that every mode of ``main.py`` loads, ``metrics.jsonl`` (logged training scalars) and
``validation.jsonl`` (validation scores with the training minutes they were reached at).
"""

import contextlib
import dataclasses
import json
import os
import time

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from ifan_tf.data.file_patterns import split_file_patterns
from ifan_tf.data.pipeline import make_train_dataset
from ifan_tf.io.atomic_write import write_json_atomic
from ifan_tf.model import precision as precision_lib
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.training import strategy as strategy_lib
from ifan_tf.training.checkpointing import (CHECKPOINT_DIR, CheckpointKeeper,  # noqa: F401 (raised by train)
                                            CheckpointMismatchError, StopRequest, check_resumable)
from ifan_tf.training.optimizer import RAdam
from ifan_tf.training.periodic import Every, TrainingClock, WorkerVote
from ifan_tf.training.periodic_actions import (BEST_MODEL_DIR, METRICS_FILE, MODEL_DIR, VALIDATION_FILE,  # noqa: F401
                                               CheckpointSaver, ProgressReport, StepOutput, TrainingImages, Validator)
from ifan_tf.training.schedule import ScheduleFitter, StepDecay, step_decay_of
from ifan_tf.training.stability import (CoolDown, LearningRateFactor, NonFiniteGuard,  # noqa: F401 (raised by train)
                                        NonFiniteLossError, ScaledSchedule)
from ifan_tf.training.summaries import SUMMARY_DIR, ProgressLine, Summaries
from ifan_tf.training.train_step import TrainState, can_skip_non_finite, make_distributed_train_step
from ifan_tf.training.weight_average import WeightAverage
from ifan_tf.training.workdir_lock import LOCK_FILE, WorkdirInUseError, WorkdirLock  # noqa: F401 (raised by train)

CONFIG_FILE = "config.json"
#: Every name ``train`` creates at the top of its work directory.
RUN_OUTPUTS = (CONFIG_FILE, CHECKPOINT_DIR, SUMMARY_DIR, MODEL_DIR, BEST_MODEL_DIR, METRICS_FILE, VALIDATION_FILE,
               LOCK_FILE)


def is_run_output(name):
    """Whether ``name`` (an entry of a work directory) is one that ``train`` creates, including the
    hidden temporary names of its atomic writes (``.model.tmp-*``, ``.config.json.*.tmp``)."""
    return name in RUN_OUTPUTS or any(name.startswith(f".{output}.") for output in RUN_OUTPUTS)


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the final step, why it stopped, the last metrics and validations.

    ``state.network`` holds the weights of ``WORKDIR/model``: the weight average when
    ``train.ema_decay`` > 0 (then ``state.weight_average.averages`` hold the last iterate).
    """

    step: int
    stop_reason: str
    metrics: dict
    validations: list
    state: TrainState


def model_config_of(config):
    """The ``ModelConfig`` of a training config (validated)."""
    return ModelConfig.from_dict(config.model.to_dict())


def make_optimizer(train_config, learning_rate_factor=None):
    """RAdam with the step-decay schedule (spec values by default); loss scaling for float16.

    ``learning_rate_factor``: a float32 scalar variable multiplying the schedule
    (``stability.ScaledSchedule``), or None for the paper's schedule alone.
    """
    schedule = StepDecay(train_config.learning_rate, tuple(train_config.lr_boundaries), train_config.lr_decay_factor)
    if learning_rate_factor is not None:
        schedule = ScaledSchedule(schedule, learning_rate_factor)
    optimizer = RAdam(learning_rate=schedule, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
                      epsilon=train_config.epsilon, weight_decay=train_config.weight_decay)
    if precision_lib.needs_loss_scaling(train_config.precision):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_train_state(config, strategy):
    """Networks, optimizer (built) and step counter, created in ``strategy.scope()``."""
    model_config = model_config_of(config)
    dtype = precision_lib.keras_policy(config.train.precision, what="train.precision")
    with strategy.scope():
        network = build_ifan(model_config, dtype=dtype)
        reblur_network = build_reblurring_network(model_config, dtype=dtype) if model_config.use_rbn else None
        factor = None
        if adjusts_learning_rate(config.train):
            factor = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="learning_rate_factor",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        optimizer = make_optimizer(config.train, factor)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        ema_decay = float(config.train.get("ema_decay", 0.0))
        weight_average = WeightAverage(network.trainable_variables, ema_decay) if ema_decay > 0 else None
        state = TrainState(network, reblur_network, optimizer, step, weight_average,
                           LearningRateFactor(factor) if factor is not None else None)
        optimizer.build(state.trainable_variables)
        reblur_lr_scale = float(config.train.get("reblur_lr_scale", 1.0))
        if reblur_network is not None and reblur_lr_scale != 1.0:
            state.inner_optimizer.scale_learning_rate(reblur_network.trainable_variables, reblur_lr_scale)
    return state


def adjusts_learning_rate(train_config):
    """Whether the run moves its learning rate off the paper's schedule (the demo's settings
    ``lr_boundaries_follow_time`` and ``undo_cooldown_steps``)."""
    return (bool(train_config.get("lr_boundaries_follow_time", False))
            or (bool(train_config.get("undo_overflowing_updates", False))
                and int(train_config.get("undo_cooldown_steps", 0)) > 0))


def make_distributed_dataset(config, strategy, seed):
    """The training input of every worker: per-replica batches of augmented crops."""
    patterns = split_file_patterns(config.data.train)
    if not patterns:
        raise ValueError("config.data.train is empty: give the training TFRecords (a glob)")

    def dataset_fn(input_context):
        return make_train_dataset(
            patterns, global_batch_size=config.train.batch_size, crop_size=config.data.crop_size,
            augment=config.data.augment, cache=config.data.cache, shuffle_buffer=config.data.shuffle_buffer,
            seed=seed, skip_corrupt=config.data.skip_corrupt, bit_depth=config.data.bit_depth or None,
            input_context=input_context)

    return strategy.distribute_datasets_from_function(dataset_fn)


def write_resolved_config(config, workdir):
    """Writes ``WORKDIR/config.json`` atomically (call once the checkpoint, if any, is restored)."""
    write_json_atomic(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json_best_effort()), sort_keys=True)


def check_train_config(train_config, num_replicas):
    """Refuses step counts below 1 and a batch that the replicas cannot share evenly."""
    for name in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if int(train_config[name]) < 1:
            raise ValueError(f"train.{name} must be >= 1, got {train_config[name]}")
    if int(train_config.max_skipped_steps) < 0:
        raise ValueError(f"train.max_skipped_steps must be >= 0, got {train_config.max_skipped_steps}")
    reblur_lr_scale = float(train_config.get("reblur_lr_scale", 1.0))
    if not 0.0 < reblur_lr_scale < float("inf"):
        raise ValueError(f"train.reblur_lr_scale must be a finite number > 0, got {train_config.reblur_lr_scale}")
    if int(train_config.get("undo_cooldown_steps", 0)) < 0:
        raise ValueError(f"train.undo_cooldown_steps must be >= 0, got {train_config.undo_cooldown_steps}")
    if int(train_config.get("undo_cooldown_steps", 0)) > 0 and not train_config.get("undo_overflowing_updates", False):
        raise ValueError(f"train.undo_cooldown_steps={train_config.undo_cooldown_steps} needs "
                         "train.undo_overflowing_updates=True (the cool-down follows an undo)")
    ema_decay = float(train_config.get("ema_decay", 0.0))
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1) (0 = no weight average), got {train_config.ema_decay}")
    if train_config.batch_size % num_replicas:
        raise ValueError(f"train.batch_size {train_config.batch_size} is not divisible by the {num_replicas} replicas")


def make_checkpoint_keeper(workdir, state, iterator, train_config, strategy):
    """The run's ``CheckpointKeeper``: networks, optimizer, step (and the input position when deterministic)."""
    items = dict(network=state.network, optimizer=state.optimizer, step=state.step)
    if state.reblur_network is not None:
        items["reblur_network"] = state.reblur_network
    if state.weight_average is not None:
        items["weight_average"] = state.weight_average
    if train_config.deterministic:
        items["data_iterator"] = iterator
    return CheckpointKeeper(workdir, items, optional=("weight_average",), keep=train_config.keep_checkpoints,
                            chief=strategy_lib.is_chief(strategy), worker_index=strategy_lib.worker_index(strategy))


def train(config, workdir, strategy=None):
    """Trains IFAN as ``config`` says, resuming from ``workdir`` if it holds a checkpoint.

    Args:
      config: an ``ml_collections.ConfigDict`` from ``configs/ifan.py``.
      workdir: the run's work directory (created if needed).
      strategy: a ``tf.distribute.Strategy``; None chooses one (``strategy.choose_strategy``).
    Returns:
      ``TrainResult``.
    Raises:
      NonFiniteLossError: a step produced a non-finite loss (nothing saved after the last good
        checkpoint).
      WorkdirInUseError: another live training holds ``workdir``.
      CheckpointMismatchError: ``workdir`` holds a run whose checkpoints cannot absorb the changes
        of ``config`` (nothing in ``workdir`` changed).
    """
    config = ml_collections.ConfigDict(config)
    tc = config.train
    strategy = strategy or strategy_lib.choose_strategy()
    chief = strategy_lib.is_chief(strategy)
    check_train_config(tc, strategy.num_replicas_in_sync)
    os.makedirs(workdir, exist_ok=True)
    # Only the chief writes into the work directory; the other workers of its cluster share it.
    with WorkdirLock(workdir, "training") if chief else contextlib.nullcontext():
        return _train(config, workdir, strategy, chief)


def _train(config, workdir, strategy, chief):
    tc = config.train
    num_workers = max(1, strategy_lib.cluster_workers()) if isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1
    # Before anything is built, the run already in WORKDIR (every worker reads the shared WORKDIR).
    check_resumable(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json_best_effort()), workdir)
    strategy_lib.set_determinism(tc.seed, tc.deterministic)

    # The parts: state, input, checkpoints (restored), summaries, clock and the periodic actions.
    state = build_train_state(config, strategy)
    # Deterministic runs replay the data stream from the seed; others reseed on every start.
    iterator = iter(make_distributed_dataset(config, strategy, tc.seed if tc.deterministic else None))
    keeper = make_checkpoint_keeper(workdir, state, iterator, tc, strategy)
    keeper.restore_latest()
    if chief:  # config.json describes the run in WORKDIR only from here on
        write_resolved_config(config, workdir)
    step = start_step = int(state.step.numpy())
    skip_non_finite = tc.max_skipped_steps > 0 and can_skip_non_finite(strategy)
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=tc.batch_size,
                                          clip_norm=tc.clip_norm, jit_compile=tc.jit_compile,
                                          skip_non_finite=skip_non_finite,
                                          keep_undo_copy=bool(tc.get("undo_overflowing_updates", False)))
    lr_factor = state.learning_rate_factor
    cool_down = None
    if step_fn.update_undo is not None and tc.get("undo_cooldown_steps", 0) > 0:
        cool_down = CoolDown(lr_factor, tc.undo_cooldown_steps, tc.lr_decay_factor)
    guard = NonFiniteGuard(tc.max_skipped_steps, updates_skipped=skip_non_finite, update_undo=step_fn.update_undo,
                           cool_down=cool_down, iterations=state.inner_optimizer.iterations)
    fit_schedule = ScheduleFitter(tc, step_decay_of(state.optimizer), lr_factor, num_workers)
    summaries = Summaries(workdir, enabled=chief)
    clock = TrainingClock()
    vote = WorkerVote(strategy, num_workers)
    deadline = time.monotonic() + 60 * tc.max_minutes if tc.max_minutes else None
    checkpoint = CheckpointSaver(
        Every(steps=tc.checkpoint_every, minutes=tc.checkpoint_every_minutes), keeper, state, workdir, chief,
        metadata={"variant": config.variant, "workdir": os.path.abspath(workdir)})
    validation = Validator(
        Every(steps=config.eval.every, minutes=config.eval.every_minutes), split_file_patterns(config.data.val),
        config.eval.max_images or None, clock, vote, keeper, state, summaries, workdir, chief)
    actions = [
        ProgressReport(Every(steps=tc.log_every, first_step=True), ProgressLine(tc.num_steps, step, deadline),
                       summaries, workdir, chief),
        TrainingImages(Every(steps=tc.image_every), strategy, state.network, state.reblur_network, summaries, chief),
        checkpoint,
        validation,
    ]

    output, stop_reason = StepOutput({}, None), "num_steps"
    logging.info("training from step %d to %d%s", step, tc.num_steps,
                 f" (at most {tc.max_minutes:g} min)" if tc.max_minutes else "")
    with StopRequest() as stop:
        while step < tc.num_steps:
            batch = next(iterator)
            if lr_factor is not None:
                lr_factor.apply(int(state.inner_optimizer.iterations.numpy()))
            output = StepOutput({name: float(value) for name, value in step_fn(batch).items()}, batch)
            step += 1
            skipped = guard.check(step, output.metrics, summaries, keeper)
            minutes = clock.minutes()
            if fit_schedule.enabled:
                fit_schedule(step, minutes, int(state.inner_optimizer.iterations.numpy()))
            # Time-based decisions are voted on by all workers together (one collective per step).
            out_of_time, *time_due = vote.any(
                [bool(tc.max_minutes) and minutes >= tc.max_minutes or stop.requested]
                + [action.every.due_by_time(minutes) for action in actions])
            if out_of_time:
                stop_reason = stop.signal_name or "max_minutes"
            for action, due_by_time in zip(actions, time_due):
                if skipped:  # nothing is logged or saved from a skipped step; time-due actions run next step
                    break
                if due_by_time or action.every.due_by_steps(step, start_step):
                    action(step, output)
                    action.every.ran(clock.minutes())
            if out_of_time:
                break
        logging.info("stopping at step %d (%s) after %.1f min of training", step, stop_reason, clock.minutes())
        checkpoint(step)  # both do nothing if they already ran at this step
        validation(step)
        summaries.flush()
    keeper.close()
    summaries.close()
    if state.weight_average is not None:
        state.weight_average.swap()  # the returned network holds what WORKDIR/model holds
    return TrainResult(step=step, stop_reason=stop_reason, metrics=output.metrics, validations=validation.records,
                       state=state)
