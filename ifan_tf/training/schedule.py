"""Step-decay learning-rate schedule of IFAN training (spec "Optimisation and data").

Reference: lr 1e-4 for 600k iterations, halved after iteration 500k and again after 550k
(``configs/config.py``: ``decay_period = [500000, 550000]``, ``decay_rate = 0.5``;
``models/trainers/lr_scheduler.py: LR_decay``).

Boundary semantics, matched exactly: the reference steps its PyTorch scheduler once at
construction and once after every ``optimizer.step()``, so the k-th update (k = 1, 2, ...) runs
with ``lr(k - 1)``, where ``LR_decay`` multiplies by ``decay_rate`` once for every period ``P``
with ``k - 1 > P``. A Keras optimizer calls its schedule with ``iterations`` = number of updates
already applied = ``k - 1``. Hence ``lr(step) = initial * factor ** #{b in boundaries: step > b}``:
the update with ``iterations == 500000`` (the 500001-st) still uses 1e-4, the one with
``iterations == 500001`` uses 5e-5, and 2.5e-5 from ``iterations == 550001`` on.
"""

import keras
import tensorflow as tf
from absl import logging


@keras.saving.register_keras_serializable(package="ifan_tf")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step) = initial_learning_rate * factor ** (number of boundaries b with step > b)``.

    Args:
        initial_learning_rate: lr before the first boundary (reference 1e-4).
        boundaries: non-decreasing iteration counts (reference (500000, 550000)); the decay takes
            effect from ``step = boundary + 1`` on.
        factor: multiplier applied at each boundary (reference 0.5).

    Called with ``step`` (int or float scalar tensor, the optimizer's 0-based ``iterations``);
    returns a float32 scalar tensor.
    """

    def __init__(self, initial_learning_rate=1e-4, boundaries=(500000, 550000), factor=0.5):
        boundaries = [int(b) for b in boundaries]
        if any(later < earlier for earlier, later in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be non-decreasing, got {boundaries}")
        if initial_learning_rate <= 0.0 or factor <= 0.0:
            raise ValueError(
                f"initial_learning_rate and factor must be > 0, got {initial_learning_rate}, {factor}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.boundaries = boundaries
        self.factor = float(factor)

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        boundaries = tf.constant(self.boundaries, tf.int64, shape=[len(self.boundaries)])
        num_decays = tf.reduce_sum(tf.cast(step > boundaries, tf.float32))
        return tf.constant(self.initial_learning_rate, tf.float32) * tf.pow(
            tf.constant(self.factor, tf.float32), num_decays
        )

    def get_config(self):
        """Serialisable constructor arguments."""
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "boundaries": list(self.boundaries),
            "factor": self.factor,
        }


def step_decay_of(optimizer):
    """The ``StepDecay`` that drives ``optimizer`` (RAdam or its loss-scale wrapper; also inside a
    ``stability.ScaledSchedule``), or None."""
    schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
    schedule = getattr(schedule, "schedule", schedule)
    return schedule if isinstance(schedule, StepDecay) else None


def passed_boundaries(updates, boundaries):
    """How many of ``boundaries`` the update with 0-based index ``updates`` is past (``StepDecay``)."""
    return sum(updates > b for b in boundaries)


def fitted_boundaries(boundaries, current, final_step, planned_final_step, updates):
    """The cuts of a run that will end at ``final_step`` instead of ``planned_final_step``.

    Each configured boundary ``b`` still ahead (its entry in ``current``, the boundaries in use, not
    passed at ``updates``) becomes ``round(b * final_step / planned_final_step)``, at most ``b`` and
    never before ``updates``; a boundary already passed stays where it was. Refitting with a new
    estimate can therefore move a cut still ahead earlier or later again. Returns a tuple of int.
    """
    ratio = min(1.0, max(0.0, float(final_step) / float(planned_final_step)))
    return tuple(now if now < updates else min(b, max(int(updates), round(b * ratio)))
                 for b, now in zip(boundaries, current))


class ScheduleFitter:
    """Moves the learning-rate cuts to the step at which ``train.max_minutes`` will stop the run.

    With ``train.lr_boundaries_follow_time`` (the demo's) and a time budget, every ``FIT_EVERY``
    steps once ``WAIT_FRACTION`` of the budget has passed, it projects the step at which the budget
    runs out (from this sitting's mean pace since its first step, i.e. without the warm-up) and
    scales the cuts still ahead to it (``fitted_boundaries``): a slower machine still gets the
    low-learning-rate end of the schedule. A machine fast enough to reach ``num_steps`` keeps the
    configured schedule. The paper's ``StepDecay`` stays as it is: the fitted cuts act through the
    part ``"time_budget"`` of a ``stability.LearningRateFactor`` (the factor between the fitted and
    the configured schedule). One worker only (the workers' clocks would disagree); not
    checkpointed, a resumed sitting fits its own.
    """

    FIT_EVERY = 25
    WAIT_FRACTION = 0.15  # the first minutes are slower (input cache filling) and noisy

    def __init__(self, train_config, schedule, learning_rate_factor, num_workers):
        self.enabled = (bool(train_config.get("lr_boundaries_follow_time", False)) and train_config.max_minutes > 0
                        and schedule is not None and bool(schedule.boundaries) and learning_rate_factor is not None)
        if self.enabled and num_workers > 1:
            logging.warning("train.lr_boundaries_follow_time is ignored with %d workers", num_workers)
            self.enabled = False
        self.schedule = schedule
        self.boundaries = tuple(schedule.boundaries) if schedule is not None else ()
        self.num_steps, self.max_minutes = int(train_config.num_steps), float(train_config.max_minutes)
        self.pace_start = None  # (step, minutes) after the first step of this sitting
        if self.enabled:
            learning_rate_factor.set_part("time_budget", self.factor_at)

    def factor_at(self, updates):
        """The fitted schedule's learning rate over the configured one at update ``updates``."""
        configured = passed_boundaries(updates, self.schedule.boundaries)
        return self.schedule.factor ** (passed_boundaries(updates, self.boundaries) - configured)

    def __call__(self, step, minutes, updates):
        """Refits after ``step`` (``updates`` applied so far) at ``minutes`` of training, when due."""
        if not self.enabled:
            return
        if self.pace_start is None:
            self.pace_start = (step, minutes)
            return
        first_step, first_minutes = self.pace_start
        if (step - first_step) % self.FIT_EVERY or minutes < self.WAIT_FRACTION * self.max_minutes:
            return
        minutes_per_step = (minutes - first_minutes) / (step - first_step)
        final_step = min(self.num_steps, step + (self.max_minutes - minutes) / max(minutes_per_step, 1e-9))
        before = self.boundaries
        # The boundaries count optimizer updates, which lag the steps by the skipped ones.
        self.boundaries = fitted_boundaries(self.schedule.boundaries, before, final_step - (step - updates),
                                            self.num_steps, updates)
        if max(abs(a - b) for a, b in zip(self.boundaries, before)) >= 0.01 * self.num_steps:
            logging.info("step %d: the time budget ends near step %d of %d; learning-rate cuts moved from %s to %s",
                         step, round(final_step), self.num_steps, list(before), list(self.boundaries))
