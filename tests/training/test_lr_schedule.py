"""StepDecay against a transcription of the reference's LR_decay scheduler and its stepping."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.training.optimizer import RAdam
from ifan_tf.training.schedule import StepDecay


def reference_lr_of_update(k, initial=1e-4, decay_period=(500000, 550000), decay_rate=0.5):
    """lr used by the reference's k-th optimizer.step() (k = 1, 2, ...).

    The PyTorch scheduler is stepped once when built (last_epoch = 0) and once after every
    optimizer.step(), so update k runs with last_epoch = k - 1; LR_decay.get_lr then does:
    """
    last_epoch = k - 1
    period_idx = 0
    for i, v in enumerate(decay_period):
        if last_epoch <= v:
            period_idx = i
            break
        elif i == len(decay_period) - 1:
            period_idx = i + 1
            break
    return initial * decay_rate**period_idx


AROUND_BOUNDARIES = [0, 1, 2, 499999, 500000, 500001, 500002, 549999, 550000, 550001, 550002, 599999, 600000]


@pytest.mark.parametrize("iterations", AROUND_BOUNDARIES)
def test_matches_reference_scheduler_at_every_boundary(iterations):
    # Keras calls the schedule with optimizer.iterations = number of updates already done = k - 1.
    expected = np.float32(reference_lr_of_update(iterations + 1))
    assert StepDecay()(tf.constant(iterations, tf.int64)).numpy() == expected


def test_iteration_500000_still_uses_the_initial_rate():
    schedule = StepDecay()
    assert schedule(500000).numpy() == np.float32(1e-4)
    assert schedule(500001).numpy() == np.float32(5e-5)
    assert schedule(550001).numpy() == np.float32(2.5e-5)


def test_custom_boundaries_and_factor_under_tf_function():
    schedule = StepDecay(initial_learning_rate=0.3, boundaries=(10, 20, 30), factor=0.1)
    steps = tf.range(0, 40, dtype=tf.int64)
    values = tf.function(lambda s: tf.map_fn(schedule, s, fn_output_signature=tf.float32))(steps).numpy()
    expected = [
        reference_lr_of_update(int(s) + 1, initial=0.3, decay_period=(10, 20, 30), decay_rate=0.1) for s in steps
    ]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_optimizer_step_at_iteration_500000_uses_the_initial_rate():
    # A zero gradient leaves only the decoupled weight decay: p <- p - wd * lr * p, which reveals lr.
    for iterations, expected_lr in [(500000, 1e-4), (500001, 5e-5)]:
        variable = keras.Variable(np.ones((4,), np.float32))
        optimizer = RAdam(learning_rate=StepDecay(), weight_decay=0.5)
        optimizer.build([variable])
        optimizer.iterations.assign(iterations)
        optimizer.apply_gradients([(tf.zeros((4,)), variable)])
        np.testing.assert_allclose(variable.numpy(), 1.0 - 0.5 * expected_lr, rtol=0, atol=1e-7)


def test_serialisation_round_trip():
    schedule = StepDecay(initial_learning_rate=3e-4, boundaries=[5, 9], factor=0.25)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(clone, StepDecay)
    assert clone.get_config() == {"initial_learning_rate": 3e-4, "boundaries": [5, 9], "factor": 0.25}
    assert clone(9).numpy() == schedule(9).numpy() and clone(10).numpy() == schedule(10).numpy()


def test_rejects_decreasing_boundaries():
    with pytest.raises(ValueError, match="non-decreasing"):
        StepDecay(boundaries=(550000, 500000))
