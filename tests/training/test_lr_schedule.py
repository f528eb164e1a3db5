"""StepDecay against a transcription of the reference's LR_decay scheduler and its stepping."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tiny_training_setup import learning_rates

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


def test_fitted_boundaries_scale_the_cuts_ahead_and_keep_the_passed_ones():
    from ifan_tf.training.schedule import fitted_boundaries

    configured, current = (2500, 3100), (2500, 3100)

    def fit(final_step, updates):
        nonlocal current
        current = fitted_boundaries(configured, current, final_step, 3400, updates)
        return current

    assert fit(3400, 100) == (2500, 3100)  # the run ends as planned
    assert fit(1700, 100) == (1250, 1550)  # half the steps: cuts at half
    assert fit(2720, 1000) == (2000, 2480)  # a faster pace: the cuts ahead move later
    assert fit(5000, 1000) == (2500, 3100)  # but never past the configured ones
    assert fit(1700, 1400) == (1400, 1550)  # none before now
    assert fit(3400, 1500) == (1400, 3100)  # a passed cut stays where it was


def _fitter(max_minutes, follow=True, num_workers=1):
    import ml_collections

    from ifan_tf.training.schedule import ScheduleFitter
    from ifan_tf.training.stability import LearningRateFactor, ScaledSchedule

    factor = LearningRateFactor(tf.Variable(1.0))
    schedule = StepDecay(1.0, (2500, 3100), 0.3)
    config = ml_collections.ConfigDict(dict(num_steps=3400, max_minutes=max_minutes,
                                            lr_boundaries_follow_time=follow))
    return ScheduleFitter(config, schedule, factor, num_workers), ScaledSchedule(schedule, factor.variable), factor


def _run_fitter(fitter, steps, warmup_minutes, minutes_per_step):
    for step in range(1, steps + 1):
        if fitter.enabled:
            fitter(step, warmup_minutes + (step - 1) * minutes_per_step, step)
    return fitter.boundaries


def test_the_trainer_fits_the_cuts_when_the_time_budget_ends_the_run_first():
    # 10 min budget, a 1.5-minute warm-up (excluded from the pace), 0.005 min/step: the budget
    # ends near step 1 + 8.5 / 0.005 = 1701, half of the 3400 planned steps.
    fitter, _, _ = _fitter(10.0)
    # no fit before 15% of the budget (1.5 min): the budget would end near step 1981, yet nothing moves
    assert _run_fitter(fitter, 100, 0.1, 0.005) == (2500, 3100)
    fitter, scaled, factor = _fitter(10.0)
    boundaries = _run_fitter(fitter, 100, 1.5, 0.005)
    assert boundaries == pytest.approx((1250, 1550), abs=3)
    # the fitted cuts act through the factor; the paper's schedule itself is unchanged
    first, second = boundaries
    assert learning_rates(scaled, factor, [first, first + 1, second, second + 1, 2600, 3200]) == pytest.approx(
        [1.0, 0.3, 0.3, 0.09, 0.09, 0.09])
    assert scaled.schedule.get_config()["boundaries"] == [2500, 3100]
    # fast enough for all 3400 steps: the configured cuts stay
    fitter, _, _ = _fitter(30.0)
    assert _run_fitter(fitter, 100, 1.5, 0.005) == (2500, 3100)
    # switched off, or several workers (their clocks would disagree): nothing moves
    for fitter, _, factor in (_fitter(10.0, follow=False), _fitter(10.0, num_workers=2), _fitter(0.0)):
        assert not fitter.enabled and not factor.parts
        assert _run_fitter(fitter, 100, 1.5, 0.005) == (2500, 3100)
