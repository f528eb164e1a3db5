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
        boundaries = tf.constant(self.boundaries, dtype=tf.int64, shape=[len(self.boundaries)])
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
