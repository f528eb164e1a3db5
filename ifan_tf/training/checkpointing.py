"""Checkpoints of a training run: the last M, the best by validation PSNR, and saving on signals.

Layout inside the work directory::

    checkpoints/ckpt-STEP.*            the last ``keep`` checkpoints (tf.train.CheckpointManager)
    checkpoints/best/ckpt-STEP.*       the checkpoint with the best validation PSNR so far
    checkpoints/best/best.json         {"step": ..., "psnr": ..., "ssim": ...} of that checkpoint

A checkpoint holds the deblurring network, the RBN, the optimizer (RAdam moments, iteration
count, loss scale), the step counter and, when asked (deterministic runs), the input iterator's
position. Checkpoints are numbered by training step. ``tf.train.CheckpointManager`` writes the
files first and then the ``checkpoint`` index atomically, so an interrupted save leaves the
previous checkpoint as the one restored.

Under ``MultiWorkerMirroredStrategy`` every worker must take part in every save; only the chief
writes into the work directory, the others save to a private temporary folder that is deleted.

Resuming with changed settings (``incompatible_changes``): a checkpoint restores into a run whose
objects it holds. It cannot absorb a change of

* any ``model.*`` field: the networks' weights (and the optimizer's copies of them and its moments,
  matched by position) are those of the stored model;
* ``train.precision`` to or from ``float16``: only float16 wraps RAdam in a ``LossScaleOptimizer``
  (loss scale and its own counters; the checkpoint's optimizer has the other layout). float32 and
  bfloat16 hold the same float32 weights;
* ``train.deterministic`` switched on: the run would checkpoint the input iterator's position,
  which the checkpoint lacks;
* in a deterministic run, the input pipeline's settings (``INPUT_PIPELINE_FIELDS``): the restored
  position is one in the stored pipeline (other batch shapes fail at the first step, a changed
  ``data.cache`` fails to restore, the others continue a stream that is neither run's).

Everything else absorbs: schedule and optimizer hyperparameters (Python values, set on every
start), step counts and intervals, data paths, ``eval.*``; ``train.ema_decay`` switched on starts
the average afresh (an optional item), switched off drops it, and ``train.deterministic`` switched
off drops the input position (the data is reseeded as in any non-deterministic start).
"""

import json
import os
import shutil
import signal
import tempfile
import threading

import tensorflow as tf
from absl import logging

from ifan_tf.io.atomic_write import write_json_atomic
from ifan_tf.model import precision as precision_lib

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
BEST_FILE = "best.json"
#: Settings that build the input pipeline whose position a deterministic run checkpoints.
INPUT_PIPELINE_FIELDS = ("train.batch_size", "train.seed", "data.crop_size", "data.augment", "data.cache",
                         "data.shuffle_buffer", "data.bit_depth", "data.skip_corrupt")
_ABSENT = "<absent>"


class CheckpointMismatchError(ValueError):
    """A run's checkpoint cannot be restored into the run being started; the message names the
    work directory or checkpoint, every field or object at fault, and how to start afresh."""


def _field(document, dotted, default=_ABSENT):
    section, name = dotted.split(".")
    value = (document.get(section) or {}).get(name, default)
    return tuple(value) if isinstance(value, list) else value


def _loss_scaled(precision):
    try:
        return precision_lib.needs_loss_scaling(precision)
    except ValueError:
        return precision


def incompatible_changes(stored, new):
    """The changes from ``stored`` to ``new`` that a checkpoint of ``stored`` cannot absorb (module docstring).

    Args:
      stored: the stored run's resolved config (the JSON document of ``WORKDIR/config.json``).
      new: the resolved config of the run being started, as the same kind of JSON document.
    Returns:
      ``[(field, stored value, new value, why)]`` (``<absent>`` for a field one side lacks).
    """
    changes = []
    stored_model, new_model = stored.get("model") or {}, new.get("model") or {}
    for name in sorted(set(stored_model) | set(new_model)):
        if stored_model.get(name, _ABSENT) != new_model.get(name, _ABSENT):
            changes.append((f"model.{name}", stored_model.get(name, _ABSENT), new_model.get(name, _ABSENT),
                            "the checkpoint holds the weights of the stored model"))
    old_precision, new_precision = _field(stored, "train.precision", "float32"), _field(new, "train.precision")
    if _loss_scaled(old_precision) != _loss_scaled(new_precision):
        changes.append(("train.precision", old_precision, new_precision,
                        "float16 adds loss scaling to the optimizer, whose checkpointed state then differs"))
    old_deterministic, new_deterministic = (bool(_field(stored, "train.deterministic", False)),
                                            bool(_field(new, "train.deterministic", False)))
    if new_deterministic and not old_deterministic:
        changes.append(("train.deterministic", False, True,
                        "the run would checkpoint an input position, and the checkpoint has none"))
    if new_deterministic and old_deterministic:
        for dotted in INPUT_PIPELINE_FIELDS:
            old_value, new_value = _field(stored, dotted), _field(new, dotted)
            if old_value is not _ABSENT and old_value != new_value:
                changes.append((dotted, old_value, new_value,
                                "the checkpointed input position is one of the stored input pipeline"))
    return changes


def describe_changes(changes):
    """``field: old -> new`` lines of ``incompatible_changes``-like tuples (the reason, if given, after)."""
    return "\n".join(f"  {field}: {old!r} -> {new!r}" + (f" ({why[0]})" if why else "")
                      for field, old, new, *why in changes)


def check_resumable(stored_path, new, workdir):
    """Compares ``new`` (the resolved config of the run being started, a JSON document) with the run
    stored at ``stored_path`` (``WORKDIR/config.json``, if it exists), reading nothing else.

    Raises:
      CheckpointMismatchError: listing every change that the run's checkpoints cannot absorb
        (``incompatible_changes``) and how to start afresh; the other changes are logged.
      ValueError: ``stored_path`` is not a readable JSON object.
    """
    if not os.path.isfile(stored_path):
        return
    try:
        with open(stored_path) as handle:
            stored = json.load(handle)
        if not isinstance(stored, dict):
            raise ValueError(f"a JSON {type(stored).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise ValueError(f"{stored_path}: not a readable run config ({error}); use a new --workdir") from error
    conflicts = incompatible_changes(stored, new)
    if conflicts:
        raise CheckpointMismatchError(
            f"{workdir} holds a run ({stored_path}) whose checkpoints cannot be resumed with these settings:\n"
            f"{describe_changes(conflicts)}\nTo start afresh use a new --workdir, or delete {workdir}; to resume, "
            "set these back to their values in its config.json")
    changed = [(f"{section}.{name}", value, (new.get(section) or {}).get(name, _ABSENT))
               for section in ("data", "train", "eval") for name, value in sorted((stored.get(section) or {}).items())
               if json.dumps(value) != json.dumps((new.get(section) or {}).get(name, _ABSENT))]
    if changed:
        logging.warning("resuming %s with changed settings:\n%s", workdir, describe_changes(changed))


class CheckpointKeeper:
    """Saves and restores a ``tf.train.Checkpoint`` of a run (see module docstring).

    Args:
      workdir: the run's work directory.
      items: ``{name: trackable}``, the objects to save (created already), e.g. ``network``.
      keep: how many of the latest checkpoints to keep (M).
      chief: whether this process writes into ``workdir`` (False: non-chief worker).
      worker_index: this worker's index (names its temporary folder when not chief).
      optional: names of ``items`` that a checkpoint written before they existed may lack (e.g.
        the weight average switched on when resuming); they keep their values then. Every other
        item must be in the restored checkpoint.
    """

    def __init__(self, workdir, items, *, keep=3, chief=True, worker_index=0, optional=()):
        self.items = dict(items)
        self.checkpoint = checkpoint = tf.train.Checkpoint(**self.items)
        self.optional = tuple(optional)
        self.chief = chief
        self.directory = os.path.join(workdir, CHECKPOINT_DIR)
        self.best_directory = os.path.join(self.directory, BEST_DIR)
        if chief:
            save_dir, best_dir = self.directory, self.best_directory
            self._scratch = None
        else:
            self._scratch = tempfile.mkdtemp(prefix=f"ifan-worker{worker_index}-ckpt-")
            save_dir, best_dir = self._scratch, os.path.join(self._scratch, BEST_DIR)
        self.manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=max(1, int(keep)),
                                                  step_counter=None, checkpoint_name="ckpt")
        self.best_manager = tf.train.CheckpointManager(checkpoint, best_dir, max_to_keep=1, checkpoint_name="ckpt")
        self.last_saved_step = None
        self._best_psnr = None

    # -- restore ------------------------------------------------------------------------------
    def latest_checkpoint(self):
        """Path prefix of the newest checkpoint in the work directory, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self):
        """Restores the newest checkpoint if there is one; returns its path (None = fresh start).

        Raises ``CheckpointMismatchError`` naming the checkpoint when its objects do not fit this run's.
        """
        path = self.latest_checkpoint()
        if path is None:
            return None
        stored = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
        missing = sorted(name for name in self.optional if name not in stored)
        checkpoint = self.checkpoint
        if missing:
            # Restore the objects the checkpoint has; the missing ones keep their values.
            checkpoint = tf.train.Checkpoint(**{name: item for name, item in self.items.items()
                                                if name not in missing})
            logging.info("%s has no %s: starting them afresh", path, ", ".join(missing))
        try:
            status = checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:400]
            workdir = os.path.dirname(self.directory)
            raise CheckpointMismatchError(
                f"{path}: cannot be restored into this run ({reason}): the run that wrote it had other settings, "
                f"or the checkpoint is damaged. To start afresh use a new --workdir, or delete {workdir}") from error
        self.last_saved_step = int(path.rsplit("-", 1)[-1])
        logging.info("restored %s", path)
        return path

    def best_record(self):
        """``{"step", "psnr", ...}`` of the best checkpoint so far, or None."""
        path = os.path.join(self.best_directory, BEST_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as handle:
            return json.load(handle)

    # -- save ---------------------------------------------------------------------------------
    def save(self, step):
        """Saves the latest checkpoint as ``ckpt-STEP`` (all workers must call this together)."""
        step = int(step)
        if step == self.last_saved_step:
            return None
        path = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        if self.chief:
            logging.info("saved checkpoint %s", path)
        return path

    def is_better(self, psnr):
        """Whether ``psnr`` beats the best validation PSNR so far (read once, then kept in memory)."""
        if psnr is None:
            return False
        if self._best_psnr is None:
            record = self.best_record()
            self._best_psnr = record["psnr"] if record and record.get("psnr") is not None else float("-inf")
        return psnr > self._best_psnr

    def save_best(self, step, scores):
        """Saves the best checkpoint with its ``scores`` (all workers call this together, after
        agreeing on ``is_better``)."""
        self.best_manager.save(checkpoint_number=int(step))
        self._best_psnr = scores["psnr"]
        if self.chief:
            write_json_atomic(os.path.join(self.best_directory, BEST_FILE),
                                   {"step": int(step), **{k: v for k, v in scores.items() if v is not None}},
                              sort_keys=True)
            logging.info("new best validation PSNR %.3f dB at step %d", scores["psnr"], step)

    def close(self):
        """Deletes a non-chief worker's temporary checkpoint folder."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


class StopRequest:
    """Catches SIGTERM and SIGINT during training so the loop can checkpoint and exit cleanly.

    Use as a context manager around the loop and poll ``requested``. A second SIGINT raises
    ``KeyboardInterrupt`` at once (the user insists). The previous handlers come back on exit.
    Outside the main thread (where Python cannot install handlers) it only offers ``request()``.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def request(self, reason="request"):
        self.requested = True
        self.signal_name = self.signal_name or reason

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint and stopping after this step", self.signal_name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False
