"""What training does about non-finite steps (not in the paper: the reference applies every update).

The rescue, in the order it acts:

1. **Skip.** The training step applies no update when the loss or the gradient norm of any replica
   is not finite (``train_step.make_distributed_train_step``, ``skip_non_finite``): weights, RAdam
   moments and its step count stay as they were, so one exploding batch cannot poison the weights.
2. **Guard** (``NonFiniteGuard``, every run): counts the skipped steps, logs each with its losses,
   and stops the run (``NonFiniteLossError``) after ``train.max_skipped_steps`` in a row; 0 stops at
   the first. A step whose update was applied anyway (multi-worker runs, where the update cannot be
   held back) always stops it: nothing is saved from poisoned weights.
3. **Undo** (``UpdateUndo``, the demo's ``train.undo_overflowing_updates``): a copy of the state
   before each update; at the first skip of a row the guard writes it back, undoing the update that
   most likely caused the overflow (it moved the RBN's filters to where its iterated filtering
   overflows on every batch).
4. **Cool-down** (``CoolDown``, the demo's ``train.undo_cooldown_steps`` > 0): after an undo the learning rate runs one cut
   (``train.lr_decay_factor``) lower for ``undo_cooldown_steps`` updates, through a
   ``LearningRateFactor`` on top of the paper's schedule, which stays pure. An undo during a
   cool-down goes one cut deeper (at most ``CoolDown.MAX_DEPTH``); the same number of undos one
   update apart as ``max_skipped_steps`` stops the run (the weights overflow after every update).

Which of these the demo needs is measured in ``docs/results/demo.md``.
"""

import math

import keras
import tensorflow as tf
from absl import logging


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or gradient; the last good checkpoint was kept."""


class UpdateUndo:
    """A copy of the weights and optimizer state as they were before the last applied update.

    ``save()`` (inside the step, before the update) copies every trained variable, every optimizer
    variable (moments, iteration count) and the weight average if any; ``undo()`` writes the copy
    back. Costs one more copy of weights and moments in memory and one copy of them per update.
    Create it in ``strategy.scope()``.
    """

    def __init__(self, state):
        self._sources = list(state.trainable_variables) + list(state.optimizer.variables)
        if state.weight_average is not None:
            self._sources += state.weight_average.state_variables
        self._copies = [tf.Variable(v, trainable=False, name="before_update") for v in self._sources]

    def save(self):
        """Ops copying the current state into the copy; returns them as a list (control inputs)."""
        return [copy.assign(source) for copy, source in zip(self._copies, self._sources)]

    @tf.function
    def undo(self):
        """Restores the state saved before the last applied update."""
        for copy, source in zip(self._copies, self._sources):
            source.assign(copy)


@keras.saving.register_keras_serializable(package="ifan_tf")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step) = schedule(step) * factor``, ``factor`` a float32 scalar variable set from the host.

    Wraps the paper's ``schedule.StepDecay`` when a run adjusts its learning rate beyond the paper
    (``LearningRateFactor``); the wrapped schedule is unchanged.
    """

    def __init__(self, schedule, factor):
        self.schedule = schedule
        self.factor = factor

    def __call__(self, step):
        return self.schedule(step) * tf.cast(tf.convert_to_tensor(self.factor), tf.float32)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "factor": float(self.factor.numpy())}

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]),
                   tf.Variable(float(config["factor"]), trainable=False, dtype=tf.float32))


class LearningRateFactor:
    """The product of named host-side factors on the learning rate (``ScaledSchedule.factor``).

    Each part is a function ``updates -> float`` (``updates`` = the optimizer's ``iterations``, the
    0-based index of the next update); ``apply(updates)`` before each step writes their product into
    the variable (only when it changed). Not saved in checkpoints: a resumed sitting starts at 1.
    """

    def __init__(self, variable):
        self.variable = variable
        self.parts = {}
        self.value = 1.0

    def set_part(self, name, factor_of_updates):
        """Adds or replaces the part ``name`` (a function ``updates -> float``)."""
        self.parts[name] = factor_of_updates

    def apply(self, updates):
        """Writes the product of the parts at ``updates`` into the variable; returns it."""
        value = math.prod(part(updates) for part in self.parts.values())
        if value != self.value:
            self.variable.assign(value)
            self.value = value
        return value


class CoolDown:
    """After an undo, runs ``num_updates`` updates ``factor`` (one learning-rate cut) lower.

    A cool-down started while another one runs replaces it one cut deeper (at most ``MAX_DEPTH``
    cuts): the weights keep running into the same overflow.
    """

    MAX_DEPTH = 3

    def __init__(self, learning_rate_factor, num_updates, factor):
        if int(num_updates) < 1:
            raise ValueError(f"a cool-down needs num_updates >= 1, got {num_updates}")
        self.num_updates, self.factor = int(num_updates), float(factor)
        self.start = self.end = self.depth = 0
        learning_rate_factor.set_part("cool_down", self.factor_at)

    def factor_at(self, updates):
        """The factor on the update with 0-based index ``updates``."""
        return self.factor ** self.depth if self.start <= updates < self.end else 1.0

    def start_at(self, updates):
        """Starts (or deepens) a cool-down from update ``updates`` on; returns ``(end, depth)``."""
        running = self.depth > 0 and self.start <= updates < self.end
        self.depth = min(self.MAX_DEPTH, self.depth + 1) if running else 1
        self.start, self.end = int(updates), int(updates) + self.num_updates
        return self.end, self.depth


class NonFiniteGuard:
    """Counts steps whose loss or gradient was not finite (their update was skipped by the step).

    Args:
      max_skipped_steps: skips tolerated in a row; the next one raises ``NonFiniteLossError``.
      updates_skipped: whether the step skipped the update (False: it was applied, the run stops).
      update_undo: an ``UpdateUndo`` written back at the first skip of a row, or None.
      cool_down: a ``CoolDown`` started after each undo, or None.
      iterations: the optimizer's update counter (needed with ``cool_down``).
    """

    def __init__(self, max_skipped_steps, updates_skipped=True, update_undo=None, cool_down=None, iterations=None):
        self.max_skipped_steps = int(max_skipped_steps)
        self.updates_skipped = updates_skipped
        self.update_undo, self.cool_down, self.iterations = update_undo, cool_down, iterations
        self.consecutive = 0
        self.total = 0
        self.alternating = 0  # undos in a row, each one step after the update that followed the last
        self.last_skip = None

    def check(self, step, metrics, summaries, keeper):
        """True if ``step`` was skipped (logged); raises after too many consecutive skips."""
        if metrics["finite"] >= 1.0:
            self.consecutive = 0
            return False
        self.consecutive += 1
        self.total += 1
        if self.consecutive == 1:
            self.alternating = self.alternating + 1 if self.last_skip == step - 2 else 1
        self.last_skip = step
        # Without undo, skips one update apart are not a loop: each is a fresh batch on good weights.
        tolerated = max(self.consecutive, self.alternating if self.update_undo is not None else 0)
        losses = (f"total {metrics['total']}, deblur {metrics['deblur']}, disparity {metrics['disparity']}, "
                  f"reblur {metrics['reblur']}, gradient norm {metrics['grad_norm']}")
        if self.updates_skipped and tolerated <= self.max_skipped_steps:
            if self.consecutive == 1 and self.update_undo is not None:
                self._undo(step)
            logging.warning("step %d skipped: non-finite loss or gradient (%s); weights and optimizer unchanged "
                            "(%d in a row, %d in this sitting; the run stops after %d in a row)", step, losses,
                            self.consecutive, self.total, self.max_skipped_steps)
            return True
        summaries.scalars(step, metrics)
        summaries.flush()
        in_a_row = f" ({self.consecutive} in a row)" if self.consecutive > 1 else ""
        if self.consecutive <= self.max_skipped_steps < tolerated:
            in_a_row = f" (every other step, {self.alternating} times in a row: every update overflowed again)"
        raise NonFiniteLossError(
            f"non-finite loss at step {step}{in_a_row} ({losses}); stopped without saving. Last good "
            f"checkpoint: {keeper.latest_checkpoint() or 'none'}. Lower train.learning_rate, check the data, "
            "or use float32.")

    def _undo(self, step):
        self.update_undo.undo()
        logging.warning("step %d: undid the update of step %d (the weights it made may have caused this)",
                        step, step - 1)
        if self.cool_down is not None:
            end, depth = self.cool_down.start_at(int(self.iterations.numpy()))
            logging.warning("step %d: the learning rate runs %d cut%s lower until update %d "
                            "(train.undo_cooldown_steps)", step, depth, "s" if depth > 1 else "", end)
