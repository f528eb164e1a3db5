"""The periodic actions of the training loop, one job each, all called the same way.

Every action has a name, a schedule ``every`` (``periodic.Every``) and is called as
``action(step, output)`` after a training step, ``output`` being that step's ``StepOutput``:

- ``ProgressReport``: the console progress line, the scalar summaries and ``metrics.jsonl``;
- ``TrainingImages``: input / output / ground truth / disparity / reblurred images in TensorBoard
  (a forward pass only, no losses);
- ``CheckpointSaver``: the training checkpoint and the model directory ``WORKDIR/model``;
- ``Validator``: the held-out scores (``validation.jsonl``, TensorBoard ``val``), keeping the best
  checkpoint and ``WORKDIR/model_best``.

With a weight average (``train.ema_decay``) the validation and the model directories use the
averaged weights; the training checkpoints hold both.

Actions that other workers must join (checkpoint, validation) run on every worker; the others
write only on the chief.
"""

import dataclasses
import json
import os

import tensorflow as tf
from absl import logging

from ifan_tf.evaluation.evaluate import evaluate, skipped_lpips
from ifan_tf.training.losses import reblur_input
from ifan_tf.training.periodic import Every
from ifan_tf.training.summaries import visual_batch
from ifan_tf.training.train_step import network_inputs
from ifan_tf.training.weight_average import swapped_in
from ifan_tf.weights.model_dir import save_model_dir

MODEL_DIR = "model"
BEST_MODEL_DIR = "model_best"
METRICS_FILE = "metrics.jsonl"
VALIDATION_FILE = "validation.jsonl"
MAX_VISUALS = 2


@dataclasses.dataclass
class StepOutput:
    """What a training step leaves for the actions.

    Attributes:
      metrics: ``{name: float}`` of the step (``train_step.STEP_METRICS``); actions may add to it.
      batch: the distributed batch the step consumed.
    """

    metrics: dict
    batch: object


def append_jsonl(path, record):
    """Appends one JSON line (NaN/Infinity allowed: a diverging loss must still be logged)."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")


class ProgressReport:
    """Progress line (all workers), scalar summaries and ``metrics.jsonl`` (chief); adds
    ``steps_per_second`` to the step's metrics."""

    name = "progress"

    def __init__(self, every, progress_line, summaries, workdir, chief):
        self.every = every
        self.progress_line = progress_line
        self.summaries = summaries
        self.path = os.path.join(workdir, METRICS_FILE)
        self.chief = chief

    def __call__(self, step, output):
        output.metrics["steps_per_second"] = self.progress_line.log(step, output.metrics)
        if self.chief:
            self.summaries.scalars(step, output.metrics)
            append_jsonl(self.path, {"step": step, **output.metrics})


def make_visuals_fn(network, reblur_network, max_images=MAX_VISUALS):
    """A ``tf.function``: a local batch -> ``visual_batch`` images of its first ``max_images`` examples.

    The forward pass is the training one (``training=True``, as the step sees it) without losses.
    """

    @tf.function
    def visuals(batch):
        batch = {key: value[:max_images] for key, value in batch.items()}
        outputs = network(network_inputs(batch), training=True)
        reblurred = None
        if reblur_network is not None:
            reblurred = reblur_network(reblur_input(batch["target"]), outputs["filters"])
        return visual_batch(batch, outputs, reblurred)

    return visuals


class TrainingImages:
    """Training images in TensorBoard from this worker's first replica batch (chief only)."""

    name = "images"

    def __init__(self, every, strategy, network, reblur_network, summaries, chief):
        self.every = every if chief else Every()
        self.strategy = strategy
        self.summaries = summaries
        self._visuals = make_visuals_fn(network, reblur_network)

    def __call__(self, step, output):
        self.summaries.images(step, self._visuals(self.strategy.experimental_local_results(output.batch)[0]))


class CheckpointSaver:
    """The training checkpoint (all workers) and ``WORKDIR/model`` (chief); once per step at most."""

    name = "checkpoint"

    def __init__(self, every, keeper, state, workdir, chief, metadata):
        self.every = every
        self.keeper = keeper
        self.state = state
        self.path = os.path.join(workdir, MODEL_DIR)
        self.chief = chief
        self.metadata = dict(metadata)
        self._saved_step = None

    def __call__(self, step, output=None):
        if step == self._saved_step:
            return
        self.keeper.save(step)
        if self.chief:
            with swapped_in(self.state.weight_average):
                save_model_dir(self.path, self.state.network, self.state.reblur_network,
                               metadata={"step": step, **self.metadata}, overwrite=True)
        self._saved_step = step


class Validator:
    """Held-out scores of the deblurring network (all workers); keeps the best checkpoint by PSNR.

    Args:
      every: the schedule.
      patterns: validation TFRecord globs (empty: the action does nothing).
      max_images: at most this many validation images (None: all).
      clock: the run's ``TrainingClock`` (validation time is paused; records carry training minutes).
      vote: the run's ``WorkerVote`` (workers agree on a new best).
      keeper, state, summaries, workdir, chief: the run's checkpoint keeper, ``TrainState``,
        ``Summaries``, work directory and whether this worker writes.
    """

    name = "validation"

    def __init__(self, every, patterns, max_images, clock, vote, keeper, state, summaries, workdir, chief):
        self.every = every
        self.patterns = list(patterns)
        self.max_images = max_images
        self.clock = clock
        self.vote = vote
        self.keeper = keeper
        self.state = state
        self.summaries = summaries
        self.workdir = workdir
        self.chief = chief
        self.records = []

    def __call__(self, step, output=None):
        if not self.patterns or (self.records and self.records[-1]["step"] == step):
            return
        with self.clock.paused(), swapped_in(self.state.weight_average):
            summary = evaluate(self.state.network, self.patterns, max_images=self.max_images,
                               lpips=skipped_lpips(), show_progress=False)
        scores, given = summary["output"], summary["input"]
        record = {"step": step, "train_minutes": self.clock.minutes(), "psnr": scores["psnr"], "ssim": scores["ssim"],
                  "mae": scores["mae"], "input_psnr": given["psnr"], "input_ssim": given["ssim"]}
        self.records.append(record)
        logging.info("validation at step %d (%.1f min): PSNR %.3f dB (input %.3f), SSIM %.4f (input %.4f)",
                     step, record["train_minutes"], record["psnr"], record["input_psnr"], record["ssim"],
                     record["input_ssim"])
        if self.chief:
            self.summaries.scalars(step, {k: v for k, v in record.items() if k != "step"}, split="val")
            append_jsonl(os.path.join(self.workdir, VALIDATION_FILE), record)
        if self.vote.any([self.keeper.is_better(record["psnr"])])[0]:
            self.keeper.save_best(step, {"psnr": record["psnr"], "ssim": record["ssim"]})
            if self.chief:
                with swapped_in(self.state.weight_average):
                    save_model_dir(os.path.join(self.workdir, BEST_MODEL_DIR), self.state.network, None,
                                   metadata={"step": step, "validation": record}, overwrite=True)
