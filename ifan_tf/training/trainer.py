"""The IFAN training loop, top to bottom: ``train(config, workdir)``.

1. strategy, seeds, the resolved config written to ``WORKDIR/config.json``;
2. networks, RAdam with the step-decay schedule, step counter (inside ``strategy.scope()``);
3. the input pipeline (one per worker, ``distribute_datasets_from_function``);
4. restore the latest checkpoint of ``WORKDIR`` if any (same optimizer state and step; in
   deterministic mode also the input position, so the losses continue exactly);
5. the loop: one distributed step, the non-finite guard, progress line and TensorBoard every
   ``log_every`` steps, images every ``image_every``, checkpoint + model directory every
   ``checkpoint_every`` steps (and ``checkpoint_every_minutes``), validation every ``eval.every``
   steps (and ``eval.every_minutes``) keeping the best checkpoint by PSNR; SIGTERM/SIGINT or the
   time budget end the loop with a checkpoint;
6. final checkpoint, validation and ``WORKDIR/model``.

Outputs in ``WORKDIR``: ``config.json``, ``checkpoints/`` (see ``checkpointing``), ``tensorboard/``,
``model/`` (latest weights) and ``model_best/`` (best validation PSNR), both model directories
that every mode of ``main.py`` loads, ``metrics.jsonl`` (logged training scalars) and
``validation.jsonl`` (validation scores with the training minutes they were reached at).
"""

import dataclasses
import json
import os
import time

import ml_collections
import tensorflow as tf
from absl import logging

from ifan_tf.data.file_patterns import split_file_patterns
from ifan_tf.data.pipeline import make_train_dataset
from ifan_tf.evaluation.evaluate import evaluate, skipped_lpips
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.model_dir import save_model_dir
from ifan_tf.training import strategy as strategy_lib
from ifan_tf.training.checkpointing import CheckpointKeeper, StopRequest
from ifan_tf.training.optimizer import RAdam
from ifan_tf.training.schedule import StepDecay
from ifan_tf.training.summaries import ProgressLine, Summaries, visual_batch
from ifan_tf.training.train_step import TrainState, forward_and_losses, make_distributed_train_step

CONFIG_FILE = "config.json"
MODEL_DIR = "model"
BEST_MODEL_DIR = "model_best"
METRICS_FILE = "metrics.jsonl"
VALIDATION_FILE = "validation.jsonl"
MAX_VISUALS = 2


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or gradient; the last good checkpoint was kept."""


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the final step, why it stopped, the last metrics and validations."""

    step: int
    stop_reason: str
    metrics: dict
    validations: list
    state: TrainState


def model_config_of(config):
    """The ``ModelConfig`` of a training config (validated)."""
    return ModelConfig.from_dict(config.model.to_dict())


def make_optimizer(train_config):
    """RAdam with the step-decay schedule (spec values by default); loss scaling for float16."""
    schedule = StepDecay(train_config.learning_rate, tuple(train_config.lr_boundaries), train_config.lr_decay_factor)
    optimizer = RAdam(learning_rate=schedule, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
                      epsilon=train_config.epsilon, weight_decay=train_config.weight_decay)
    if train_config.precision == "mixed_float16":
        import keras

        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_train_state(config, strategy):
    """Networks, optimizer (built) and step counter, created in ``strategy.scope()``."""
    model_config = model_config_of(config)
    dtype = strategy_lib.check_precision(config.train.precision)
    with strategy.scope():
        network = build_ifan(model_config, dtype=dtype)
        reblur_network = build_reblurring_network(model_config, dtype=dtype) if model_config.use_rbn else None
        optimizer = make_optimizer(config.train)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step",
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        state = TrainState(network, reblur_network, optimizer, step)
        optimizer.build(state.trainable_variables)
    return state


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
    """Writes ``WORKDIR/config.json``; refuses a work directory that trains a different model."""
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isfile(path):
        with open(path) as handle:
            previous = json.load(handle)
        if previous.get("model") != json.loads(config.model.to_json()):
            raise ValueError(f"{workdir} holds a run of a different model ({path}: {previous.get('model')}); "
                             "use a new --workdir or the same model settings to resume")
        changed = sorted(k for k in ("data", "train", "eval") if previous.get(k) != json.loads(config[k].to_json_best_effort()))
        if changed:
            logging.warning("resuming %s with changed settings in %s", workdir, ", ".join(changed))
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _append_jsonl(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")


class _Clock:
    """Training time of this run, excluding validation (what ``max_minutes`` budgets)."""

    def __init__(self):
        self.start = time.monotonic()
        self.paused = 0.0

    def minutes(self):
        return (time.monotonic() - self.start - self.paused) / 60.0


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
    """
    config = ml_collections.ConfigDict(config)
    tc = config.train
    strategy = strategy or strategy_lib.choose_strategy()
    chief = strategy_lib.is_chief(strategy)
    num_workers = max(1, strategy_lib.cluster_workers()) if isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1
    for name in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if int(tc[name]) < 1:
            raise ValueError(f"train.{name} must be >= 1, got {tc[name]}")
    if tc.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"train.batch_size {tc.batch_size} is not divisible by the {strategy.num_replicas_in_sync} replicas")
    os.makedirs(workdir, exist_ok=True)
    strategy_lib.set_determinism(tc.seed, tc.deterministic)
    if chief:
        write_resolved_config(config, workdir)

    state = build_train_state(config, strategy)
    model_config = state.network.config
    # Deterministic runs replay the data stream from the seed; others reseed on every start.
    data_seed = tc.seed if tc.deterministic else None
    iterator = iter(make_distributed_dataset(config, strategy, data_seed))
    items = dict(network=state.network, optimizer=state.optimizer, step=state.step)
    if state.reblur_network is not None:
        items["reblur_network"] = state.reblur_network
    if tc.deterministic:
        items["data_iterator"] = iterator
    keeper = CheckpointKeeper(workdir, tf.train.Checkpoint(**items), keep=tc.keep_checkpoints, chief=chief,
                              worker_index=strategy_lib.worker_index(strategy))
    keeper.restore_latest()
    step = int(state.step.numpy())
    start_step = step
    summaries = Summaries(workdir, enabled=chief)
    step_fn = make_distributed_train_step(strategy, state, model_config, global_batch_size=tc.batch_size,
                                          clip_norm=tc.clip_norm, jit_compile=tc.jit_compile)

    @tf.function
    def visuals_fn(batch):
        batch = {key: value[:MAX_VISUALS] for key, value in batch.items()}
        _, outputs, reblurred = forward_and_losses(state, model_config, batch, MAX_VISUALS)
        return visual_batch(batch, outputs, reblurred)

    val_patterns = split_file_patterns(config.data.val)
    clock = _Clock()
    progress = ProgressLine(tc.num_steps, step, time.monotonic() + 60 * tc.max_minutes if tc.max_minutes else None)
    validations = []

    def agree(flags):
        """All workers take time-based decisions together (each has its own clock)."""
        if num_workers == 1:
            return flags
        values = strategy.experimental_distribute_values_from_function(
            lambda _: tf.constant([float(f) for f in flags]))
        return [bool(v > 0) for v in strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()]

    def save(current_step, metadata):
        keeper.save(current_step)
        if chief:
            save_model_dir(os.path.join(workdir, MODEL_DIR), state.network, state.reblur_network,
                           metadata=metadata, overwrite=True)

    def validate(current_step):
        if not val_patterns:
            return None
        paused = time.monotonic()
        summary = evaluate(state.network, val_patterns, max_images=config.eval.max_images or None,
                           lpips=skipped_lpips(), show_progress=False)
        clock.paused += time.monotonic() - paused
        output, given = summary["output"], summary["input"]
        record = {"step": current_step, "train_minutes": clock.minutes(), "psnr": output["psnr"],
                  "ssim": output["ssim"], "mae": output["mae"], "input_psnr": given["psnr"],
                  "input_ssim": given["ssim"]}
        validations.append(record)
        logging.info("validation at step %d (%.1f min): PSNR %.3f dB (input %.3f), SSIM %.4f (input %.4f)",
                     current_step, record["train_minutes"], record["psnr"], record["input_psnr"], record["ssim"],
                     record["input_ssim"])
        if chief:
            summaries.scalars(current_step, {k: v for k, v in record.items() if k != "step"}, split="val")
            _append_jsonl(os.path.join(workdir, VALIDATION_FILE), record)
        if agree([keeper.is_better(record["psnr"])])[0]:
            keeper.save_best(current_step, {"psnr": record["psnr"], "ssim": record["ssim"]})
            if chief:
                save_model_dir(os.path.join(workdir, BEST_MODEL_DIR), state.network, None,
                               metadata={"step": current_step, "validation": record}, overwrite=True)
        return record

    def metadata(current_step):
        return {"step": current_step, "variant": config.variant, "workdir": os.path.abspath(workdir)}

    last_checkpoint_minutes = last_eval_minutes = 0.0
    metrics, stop_reason = {}, "num_steps"
    logging.info("training from step %d to %d%s", step, tc.num_steps,
                 f" (at most {tc.max_minutes:g} min)" if tc.max_minutes else "")
    with StopRequest() as stop:
        while step < tc.num_steps:
            batch = next(iterator)
            metrics = {name: float(value) for name, value in step_fn(batch).items()}
            step += 1
            if metrics["finite"] < 1.0:
                summaries.scalars(step, metrics)
                summaries.flush()
                last = keeper.latest_checkpoint()
                raise NonFiniteLossError(
                    f"non-finite loss at step {step} (total {metrics['total']}, deblur {metrics['deblur']}, "
                    f"disparity {metrics['disparity']}, reblur {metrics['reblur']}, gradient norm {metrics['grad_norm']}); "
                    f"stopped without saving. Last good checkpoint: {last or 'none'}. Lower train.learning_rate, "
                    "check the data, or use float32.")
            if step % tc.log_every == 0 or step == start_step + 1:
                metrics["steps_per_second"] = progress.log(step, metrics)
                if chief:
                    summaries.scalars(step, metrics)
                    _append_jsonl(os.path.join(workdir, METRICS_FILE), {"step": step, **metrics})
            if chief and tc.image_every and step % tc.image_every == 0:
                summaries.images(step, visuals_fn(strategy.experimental_local_results(batch)[0]))
            minutes = clock.minutes()
            out_of_time, checkpoint_due, eval_due = agree([
                bool(tc.max_minutes) and minutes >= tc.max_minutes or stop.requested,
                bool(tc.checkpoint_every_minutes) and minutes - last_checkpoint_minutes >= tc.checkpoint_every_minutes,
                bool(config.eval.every_minutes) and minutes - last_eval_minutes >= config.eval.every_minutes])
            if out_of_time:
                stop_reason = stop.signal_name or "max_minutes"
                break
            if checkpoint_due or step % tc.checkpoint_every == 0:
                save(step, metadata(step))
                last_checkpoint_minutes = clock.minutes()
            if eval_due or (config.eval.every and step % config.eval.every == 0):
                validate(step)
                last_eval_minutes = clock.minutes()
        logging.info("stopping at step %d (%s) after %.1f min of training", step, stop_reason, clock.minutes())
        save(step, metadata(step))
        if not validations or validations[-1]["step"] != step:
            validate(step)
        if chief:
            summaries.flush()
    keeper.close()
    summaries.close()
    return TrainResult(step=step, stop_reason=stop_reason, metrics=metrics, validations=validations, state=state)
