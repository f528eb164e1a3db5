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
        # The boundaries in use: the configured ones unless ``move_earlier`` fitted them to a shorter run.
        self.current_boundaries = tf.Variable(tf.constant(boundaries, tf.int64, shape=[len(boundaries)]),
                                              trainable=False, name="lr_boundaries")
        # Updates in [start, end) run ``depth`` cuts lower than the boundaries say (``cool_down``); zeros = none.
        self.cooldown = tf.Variable(tf.zeros([3], tf.int64), trainable=False, name="lr_cooldown")

    def fit_to(self, final_step, planned_final_step, current_step):
        """Fits the boundaries to a run that will end at ``final_step`` instead of ``planned_final_step``.

        Each configured boundary ``b`` that is still ahead becomes ``round(b * final_step /
        planned_final_step)``, at most ``b`` and never before ``current_step``; a boundary already
        passed (its decay applied) stays where it was. Refitting with a new estimate can therefore
        move a cut that is still ahead earlier or later again. Returns the boundaries now in use
        (tuple of int).
        """
        current = [int(b) for b in self.current_boundaries.numpy()]
        ratio = min(1.0, max(0.0, float(final_step) / float(planned_final_step)))
        fitted = [now if now < current_step else min(b, max(int(current_step), round(b * ratio)))
                  for b, now in zip(self.boundaries, current)]
        if fitted != current:
            self.current_boundaries.assign(tf.constant(fitted, tf.int64, shape=[len(fitted)]))
        return tuple(fitted)

    def cut_now(self, current_step):
        """Brings the next cut still ahead forward, so that the update ``current_step`` is the first
        one at the lower rate. Returns True, or False if no cut was left."""
        current = [int(b) for b in self.current_boundaries.numpy()]
        ahead = [i for i, b in enumerate(current) if b >= current_step]
        if not ahead:
            return False
        current[ahead[0]] = max(0, int(current_step) - 1)  # lr(step) decays for step > boundary
        self.current_boundaries.assign(tf.constant(sorted(current), tf.int64, shape=[len(current)]))
        return True

    MAX_COOLDOWN_DEPTH = 3

    def cool_down(self, current_step, num_updates):
        """Runs the updates ``current_step`` .. ``current_step + num_updates - 1`` one cut lower (one more
        factor than the boundaries give, also across a boundary), then returns to the schedule.

        A cool-down started while another one runs replaces it one cut deeper (at most
        ``MAX_COOLDOWN_DEPTH`` cuts): the weights keep running into the same overflow. Returns
        ``(first update back on the schedule, depth)``.
        """
        if int(num_updates) < 1:
            raise ValueError(f"a cool-down needs num_updates >= 1, got {num_updates}")
        start, end, depth = (int(v) for v in self.cooldown.numpy())
        running = depth > 0 and start <= int(current_step) < end
        depth = min(self.MAX_COOLDOWN_DEPTH, depth + 1) if running else 1
        end = int(current_step) + int(num_updates)
        self.cooldown.assign(tf.constant([int(current_step), end, depth], tf.int64))
        return end, depth

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        boundaries = tf.convert_to_tensor(self.current_boundaries)
        cooldown = tf.convert_to_tensor(self.cooldown)
        num_decays = (tf.reduce_sum(tf.cast(step > boundaries, tf.float32))
                      + tf.cast((step >= cooldown[0]) & (step < cooldown[1]), tf.float32)
                      * tf.cast(cooldown[2], tf.float32))
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
    """The ``StepDecay`` that drives ``optimizer`` (RAdam or its loss-scale wrapper), or None."""
    schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
    return schedule if isinstance(schedule, StepDecay) else None


class ScheduleFitter:
    """Fits the learning-rate cuts to the step at which ``train.max_minutes`` will stop the run.

    With ``train.lr_boundaries_follow_time`` and a time budget, every ``FIT_EVERY`` steps once
    ``WAIT_FRACTION`` of the budget has passed, it projects the step at which the budget runs out
    (from this sitting's mean pace since its first step, i.e. without the warm-up) and scales the
    cuts still ahead to it (``StepDecay.fit_to``): a slower machine still gets the
    low-learning-rate end of the schedule. A machine fast enough to reach ``num_steps`` keeps the
    configured schedule. One worker only (the workers' clocks would disagree); the fitted
    boundaries are not checkpointed, a resumed sitting fits its own.
    """

    FIT_EVERY = 25
    WAIT_FRACTION = 0.15  # the first minutes are slower (input cache filling) and noisy

    def __init__(self, train_config, state, num_workers):
        schedule = step_decay_of(state.inner_optimizer)
        self.enabled = (bool(train_config.get("lr_boundaries_follow_time", False)) and train_config.max_minutes > 0
                        and schedule is not None and bool(schedule.boundaries))
        if self.enabled and num_workers > 1:
            logging.warning("train.lr_boundaries_follow_time is ignored with %d workers", num_workers)
            self.enabled = False
        self.schedule, self.state = schedule, state
        self.num_steps, self.max_minutes = int(train_config.num_steps), float(train_config.max_minutes)
        self.pace_start = None  # (step, minutes) after the first step of this sitting

    def __call__(self, step, minutes):
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
        before = tuple(int(b) for b in self.schedule.current_boundaries.numpy())
        iterations = int(self.state.inner_optimizer.iterations.numpy())
        # The boundaries count optimizer updates, which lag the steps by the skipped ones.
        fitted = self.schedule.fit_to(final_step - (step - iterations), self.num_steps, iterations)
        if max(abs(a - b) for a, b in zip(fitted, before)) >= 0.01 * self.num_steps:
            logging.info("step %d: the time budget ends near step %d of %d; learning-rate cuts moved from %s to %s",
                         step, round(final_step), self.num_steps, list(before), list(fitted))
