"""ifan_tf.training.periodic: the schedules of the training loop's periodic actions."""
from ifan_tf.training import periodic
from ifan_tf.training.periodic import Every, TrainingClock


def test_every_steps_and_the_first_step_of_a_resumed_run():
    every = Every(steps=5, first_step=True)
    assert [step for step in range(11, 22) if every.due_by_steps(step, start_step=10)] == [11, 15, 20]
    assert not any(Every().due_by_steps(step, 0) for step in range(1, 50))  # 0 = off
    assert not Every(minutes=0.0).due_by_time(1e9)


def test_every_minutes_counts_from_the_last_run():
    every = Every(steps=1000, minutes=2.0)
    assert not every.due_by_time(1.9) and every.due_by_time(2.0)
    every.ran(2.5)
    assert not every.due_by_time(4.4) and every.due_by_time(4.5)


def test_paused_time_is_not_training_time(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(periodic.time, "monotonic", lambda: now[0])
    clock = TrainingClock()
    now[0] += 120.0  # two minutes of training
    with clock.paused():
        now[0] += 60.0  # one minute of validation
    now[0] += 30.0
    assert clock.minutes() == 2.5
