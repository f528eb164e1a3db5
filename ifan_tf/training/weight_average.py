"""An exponential moving average of the deblurring network's weights (``train.ema_decay``).

Not in the paper (the reference evaluates the last iterate). At the high learning rates of a short
run the iterate moves a lot from one update to the next; the average of the recent iterates is
often a better model than any one of them (Polyak averaging). After every applied update, with
``d`` the decay:

    average <- average - (1 - d) * (average - weight)      (= d * average + (1 - d) * weight;
                                                             the first update copies the weights)

so ``average`` weights the last ~``1 / (1 - d)`` updates. The averages are float32 variables
(one per trained variable of the deblurring network; the RBN is only used in training and is
not averaged), saved in the training checkpoint next to the weights themselves. The trainer
evaluates, validates and writes the model directories with the averaged weights swapped in
(``swapped_in``), and keeps training the iterate.
"""

import contextlib

import tensorflow as tf
from absl import logging


class WeightAverage(tf.Module):
    """Exponential moving averages of ``variables`` (create inside ``strategy.scope()``).

    Args:
      variables: the averaged variables (float32 or float64), e.g. ``network.trainable_variables``.
      decay: d, in (0, 1).
    Attributes:
      averages: one non-trainable variable per averaged variable, same shape and dtype.
      count: int64 scalar variable, number of updates averaged so far (0: the averages hold nothing).
    """

    def __init__(self, variables, decay, name="weight_average"):
        super().__init__(name=name)
        decay = float(decay)
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the decay of a weight average must be in (0, 1), got {decay}")
        self.decay = decay
        # Not a dependency: the checkpoint saves the variables themselves under their own owner.
        self._sources = self._no_dependency(list(variables))
        if not self._sources:
            raise ValueError("a weight average needs at least one variable")
        for variable in self._sources:
            dtype = tf.as_dtype(variable.dtype)
            if not dtype.is_floating:
                raise ValueError(f"cannot average the non-float variable {variable.name} ({dtype.name})")
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.averages = [tf.Variable(tf.zeros(v.shape, tf.as_dtype(v.dtype)), trainable=False, name="average",
                                     aggregation=aggregation) for v in self._sources]
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count", aggregation=aggregation)

    @property
    def state_variables(self):
        """The averages and the count (what a copy of this state must hold)."""
        return self.averages + [self.count]

    def update(self):
        """Moves every average towards its variable's current value (eager or inside a ``tf.function``,
        in a cross-replica context); the first update copies them."""
        decay = tf.where(self.count > 0, tf.constant(self.decay, tf.float64), tf.constant(0.0, tf.float64))
        for average, source in zip(self.averages, self._sources):
            d = tf.cast(decay, average.dtype)
            average.assign_sub((1.0 - d) * (average - tf.convert_to_tensor(source)))
        self.count.assign_add(1)

    @tf.function
    def _swap(self):
        for average, source in zip(self.averages, self._sources):
            value = tf.identity(tf.convert_to_tensor(source))
            source.assign(average.read_value())
            average.assign(value)

    def swap(self):
        """Exchanges the variables' values with the averages (twice restores both); returns whether it
        did: with no update averaged yet (``count`` 0) there is nothing to swap in."""
        if int(self.count.numpy()) == 0:
            logging.info("no weight average yet (no update applied): using the weights themselves")
            return False
        self._swap()
        return True

    @contextlib.contextmanager
    def swapped_in(self):
        """Within the block the variables hold the averages; afterwards their own values again, also on
        error."""
        swapped = self.swap()
        try:
            yield
        finally:
            if swapped:
                self._swap()


def swapped_in(weight_average):
    """``weight_average.swapped_in()``, or a block that changes nothing when ``weight_average`` is None."""
    return weight_average.swapped_in() if weight_average is not None else contextlib.nullcontext()
