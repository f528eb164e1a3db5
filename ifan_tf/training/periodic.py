"""When the training loop acts: every N steps and/or every M minutes of training time.

- ``TrainingClock``: minutes of training in this run, excluding the paused time (validation),
  which is what ``train.max_minutes`` and the ``*_every_minutes`` settings measure;
- ``Every``: the schedule of one periodic action (steps, minutes, optionally the first step);
- ``WorkerVote``: time-based decisions taken by all workers together, since each worker has its
  own clock and every worker must take part in a checkpoint or validation (collectives).
"""

import contextlib
import dataclasses
import time

import tensorflow as tf


class TrainingClock:
    """Training minutes of this run (``time.monotonic``), minus the time spent inside ``paused()``."""

    def __init__(self):
        self._start = time.monotonic()
        self._paused = 0.0

    def minutes(self):
        return (time.monotonic() - self._start - self._paused) / 60.0

    @contextlib.contextmanager
    def paused(self):
        """The time spent inside the block does not count as training time."""
        start = time.monotonic()
        try:
            yield
        finally:
            self._paused += time.monotonic() - start


@dataclasses.dataclass
class Every:
    """The schedule of one periodic action.

    Attributes:
      steps: due at every multiple of ``steps`` (0 = never by steps).
      minutes: due when ``minutes`` of training time passed since it last ran (0 = never by time).
      first_step: also due at the first step of a run (e.g. the first progress line).
    """

    steps: int = 0
    minutes: float = 0.0
    first_step: bool = False
    _last_minutes: float = 0.0

    def due_by_steps(self, step, start_step):
        """Whether ``step`` (just completed) is a scheduled step; ``start_step``: the run's first step - 1."""
        return bool(self.steps) and step % self.steps == 0 or (self.first_step and step == start_step + 1)

    def due_by_time(self, minutes):
        """Whether ``minutes`` of training time is ``self.minutes`` past the last run (to be agreed)."""
        return bool(self.minutes) and minutes - self._last_minutes >= self.minutes

    def ran(self, minutes):
        """Records that the action ran at ``minutes`` of training time."""
        self._last_minutes = minutes


class WorkerVote:
    """Combines boolean decisions over the workers of a ``MultiWorkerMirroredStrategy``: a flag is
    True everywhere if it is True on any worker (one all-reduce per call; none with one worker)."""

    def __init__(self, strategy, num_workers):
        self.strategy = strategy
        self.num_workers = num_workers

    def any(self, flags):
        """``[bool]`` -> ``[bool]``, the same on every worker."""
        flags = [bool(flag) for flag in flags]
        if self.num_workers == 1:
            return flags
        values = self.strategy.experimental_distribute_values_from_function(
            lambda _: tf.constant([float(flag) for flag in flags]))
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
        return [bool(value > 0) for value in total]
