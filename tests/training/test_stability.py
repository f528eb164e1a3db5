"""The rescue of ``ifan_tf.training.stability``: the learning-rate factor and the cool-down.

The guard and the undo in a training run: ``test_train_step.py`` (poisoned batches).
"""
import keras
import pytest
import tensorflow as tf
from tiny_training_setup import learning_rates

from ifan_tf.training.schedule import StepDecay
from ifan_tf.training.stability import CoolDown, LearningRateFactor, ScaledSchedule


def _scaled(factor=0.3):
    lr_factor = LearningRateFactor(tf.Variable(1.0))
    return ScaledSchedule(StepDecay(1.0, (2500, 3100), factor), lr_factor.variable), lr_factor


def test_the_factor_multiplies_its_parts_and_writes_only_changes():
    lr_factor = LearningRateFactor(tf.Variable(1.0))
    assert lr_factor.apply(7) == 1.0  # no parts: the paper's rate
    lr_factor.set_part("a", lambda updates: 0.5 if updates > 10 else 1.0)
    lr_factor.set_part("b", lambda updates: 0.1)
    assert lr_factor.apply(5) == pytest.approx(0.1) and float(lr_factor.variable.numpy()) == pytest.approx(0.1)
    assert lr_factor.apply(11) == pytest.approx(0.05)
    lr_factor.variable.assign(3.0)  # a value the factor did not write stays until its product changes
    assert lr_factor.apply(12) == pytest.approx(0.05) and float(lr_factor.variable.numpy()) == 3.0


def test_cool_down_runs_that_many_updates_one_cut_lower_then_returns_to_the_schedule():
    schedule, lr_factor = _scaled()
    cool_down = CoolDown(lr_factor, 250, 0.3)
    assert cool_down.start_at(1000) == (1250, 1)
    assert learning_rates(schedule, lr_factor, (999, 1000, 1249, 1250)) == pytest.approx([1.0, 0.3, 0.3, 1.0])
    cool_down = CoolDown(lr_factor, 200, 0.3)
    assert cool_down.start_at(2400) == (2600, 1)  # across a boundary: one cut below the schedule
    assert learning_rates(schedule, lr_factor, (2399, 2400, 2500, 2501, 2599, 2600)) == pytest.approx(
        [1.0, 0.3, 0.3, 0.09, 0.09, 0.3])
    assert schedule.schedule.get_config()["boundaries"] == [2500, 3100]  # the paper's schedule is untouched
    for bad in (0, -5):
        with pytest.raises(ValueError, match="num_updates >= 1"):
            CoolDown(lr_factor, bad, 0.3)


def test_a_cool_down_started_during_another_goes_one_cut_deeper_up_to_three():
    schedule, lr_factor = _scaled(0.5)
    cool_down = CoolDown(lr_factor, 100, 0.5)
    assert cool_down.start_at(1000) == (1100, 1)
    assert cool_down.start_at(1040) == (1140, 2)  # replaces the running one, deeper
    assert learning_rates(schedule, lr_factor, (1039, 1040, 1139, 1140)) == pytest.approx([1.0, 0.25, 0.25, 1.0])
    assert cool_down.start_at(1050) == (1150, 3)
    assert cool_down.start_at(1060) == (1160, 3)  # at most three cuts
    assert learning_rates(schedule, lr_factor, (1100,)) == pytest.approx([0.125])
    assert cool_down.start_at(1160) == (1260, 1)  # after it ended: one cut again
    assert learning_rates(schedule, lr_factor, (1165,)) == pytest.approx([0.5])


def test_the_scaled_schedule_serialises_with_its_factor():
    schedule, lr_factor = _scaled()
    lr_factor.set_part("half", lambda updates: 0.5)
    lr_factor.apply(0)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(clone, ScaledSchedule) and isinstance(clone.schedule, StepDecay)
    assert [float(clone(s)) for s in (2500, 2501)] == pytest.approx([0.5, 0.15])


class _Summaries:
    def scalars(self, step, metrics):
        self.logged = (step, metrics)

    def flush(self):
        pass


class _Keeper:
    def latest_checkpoint(self):
        return "ckpt-7"


class _Undo:
    def __init__(self):
        self.count = 0

    def undo(self):
        self.count += 1


def _check(guard, step, finite):
    metrics = dict(finite=float(finite), total=float("nan"), deblur=0.0, disparity=0.0, reblur=float("nan"),
                   grad_norm=float("nan"))
    return guard.check(step, metrics, _Summaries(), _Keeper())


def test_the_plain_guard_skips_and_stops_after_too_many_in_a_row():
    from ifan_tf.training.stability import NonFiniteGuard, NonFiniteLossError

    guard = NonFiniteGuard(2)
    assert [_check(guard, step, finite) for step, finite in enumerate([1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0], 1)] == [
        False, True, True, False, True, False, True, False, True, False, True]  # every other step is no loop
    assert guard.total == 6
    _check(guard, 12, 0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 13 \(3 in a row\).*ckpt-7"):
        _check(guard, 13, 0)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 1 "):
        _check(NonFiniteGuard(0), 1, 0)  # 0: the first stops the run
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 1 "):
        _check(NonFiniteGuard(5, updates_skipped=False), 1, 0)  # an applied update: poisoned weights


def test_with_an_undo_the_guard_undoes_once_per_row_and_stops_an_apply_undo_loop():
    from ifan_tf.training.stability import NonFiniteGuard, NonFiniteLossError

    undo = _Undo()
    schedule, lr_factor = _scaled()
    iterations = tf.Variable(tf.constant(1000, tf.int64))
    guard = NonFiniteGuard(2, update_undo=undo, cool_down=CoolDown(lr_factor, 10, 0.3), iterations=iterations)
    assert [_check(guard, step, finite) for step, finite in enumerate([1, 0, 0, 1], 1)] == [False, True, True, False]
    assert undo.count == 1 and learning_rates(schedule, lr_factor, (1000, 1010)) == pytest.approx([0.3, 1.0])
    assert not _check(guard, 5, 1)
    # from here every other step: a loop of apply and undo, stopped at the third undo in a row
    assert [_check(guard, step, finite) for step, finite in enumerate([0, 1, 0, 1], 6)] == [True, False, True, False]
    assert undo.count == 3
    with pytest.raises(NonFiniteLossError, match=r"at step 10 \(every other step, 3 times in a row"):
        _check(guard, 10, 0)
