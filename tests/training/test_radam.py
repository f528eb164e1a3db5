"""RAdam against a plain numpy transcription of the spec's update rule (float64)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.training.optimizer import RAdam
from ifan_tf.training.schedule import StepDecay
from training_numpy_references import spec_radam

NUM_STEPS = 12
# One gradient scale per variable: 1e-6 makes sqrt(v) comparable to eps (where eps placement matters).
SHAPES_AND_GRADIENT_SCALES = [((3, 4), 1.0), ((5,), 1e-6), ((2, 3, 2), 1e-3)]


def make_problem(seed, num_steps=NUM_STEPS):
    rng = np.random.default_rng(seed)
    params = [rng.uniform(-1.5, 1.5, shape).astype(np.float32) for shape, _ in SHAPES_AND_GRADIENT_SCALES]
    gradients = [
        [(scale * rng.standard_normal(shape)).astype(np.float32) for shape, scale in SHAPES_AND_GRADIENT_SCALES]
        for _ in range(num_steps)
    ]
    return params, gradients


def make_variables(params):
    names = ["kernel", "bias", "filters"]
    return [keras.Variable(p, name=name) for p, name in zip(params, names)]


def run_keras(optimizer, variables, gradients):
    """Applies ``gradients`` one step at a time under tf.function; returns params after each step."""

    @tf.function
    def apply(step_gradients):
        optimizer.apply_gradients(zip(step_gradients, variables))

    trajectory = []
    for step_gradients in gradients:
        apply([tf.constant(g) for g in step_gradients])
        trajectory.append([v.numpy() for v in variables])
    return trajectory


def assert_trajectories_close(actual, expected):
    for t, (actual_params, expected_params) in enumerate(zip(actual, expected), start=1):
        for actual_p, expected_p in zip(actual_params, expected_params):
            np.testing.assert_allclose(actual_p, expected_p, rtol=1e-6, atol=1e-6, err_msg=f"after step {t}")


def test_defaults_are_the_reference_settings():
    config = RAdam().get_config()
    assert (config["learning_rate"], config["beta_1"], config["beta_2"]) == pytest.approx((1e-4, 0.9, 0.999))
    assert (config["epsilon"], config["weight_decay"]) == (1e-8, 0.01)


@pytest.mark.parametrize(
    "learning_rate, weight_decay",
    # Large values make both the rectified step and the decay-before-step order visible at 1e-6.
    [(1e-2, 0.01), (0.5, 0.2)],
)
def test_matches_spec_step_by_step(learning_rate, weight_decay):
    params, gradients = make_problem(seed=0)
    variables = make_variables(params)
    optimizer = RAdam(learning_rate=learning_rate, weight_decay=weight_decay)
    actual = run_keras(optimizer, variables, gradients)
    expected = spec_radam(params, gradients, lambda t: learning_rate, 0.9, 0.999, 1e-8, weight_decay)
    assert_trajectories_close(actual, expected)
    assert int(optimizer.iterations.numpy()) == NUM_STEPS


def test_eager_updates_match_spec_step_by_step():
    """Without tf.function the rectified/un-rectified choice is a Python branch, not a tf.cond."""
    params, gradients = make_problem(seed=5)
    variables = make_variables(params)
    optimizer = RAdam(learning_rate=0.05, weight_decay=0.1)
    actual = []
    for step_gradients in gradients:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
        actual.append([v.numpy() for v in variables])
    assert_trajectories_close(actual, spec_radam(params, gradients, lambda t: 0.05, 0.9, 0.999, 1e-8, 0.1))


def test_rectified_updates_are_fused_kernels():
    """One ResourceApplyAdam per variable for the rectified step (the training step's hot path)."""
    variables = make_variables(make_problem(seed=6)[0])
    optimizer = RAdam(learning_rate=0.05)

    @tf.function
    def apply(step_gradients):
        optimizer.apply_gradients(zip(step_gradients, variables))

    graph = apply.get_concrete_function([tf.zeros_like(v) for v in variables]).graph
    op_types = [node.op for function in graph.as_graph_def().library.function for node in function.node_def]
    assert op_types.count("ResourceApplyAdam") == len(variables)


def test_matches_spec_with_step_decay_schedule_and_other_betas():
    params, gradients = make_problem(seed=1)
    variables = make_variables(params)
    schedule = StepDecay(initial_learning_rate=0.05, boundaries=(3, 7), factor=0.5)
    optimizer = RAdam(learning_rate=schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-7, weight_decay=0.05)
    actual = run_keras(optimizer, variables, gradients)
    # Update t sees iterations = t - 1; halved once iterations exceeds each boundary.
    expected = spec_radam(
        params, gradients, lambda t: 0.05 * 0.5 ** ((t - 1 > 3) + (t - 1 > 7)), 0.8, 0.99, 1e-7, 0.05
    )
    assert_trajectories_close(actual, expected)


def test_exclude_from_weight_decay_by_name():
    params, gradients = make_problem(seed=2)
    variables = make_variables(params)
    optimizer = RAdam(learning_rate=0.1, weight_decay=0.3)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    actual = run_keras(optimizer, variables, gradients)
    expected = spec_radam(params, gradients, lambda t: 0.1, 0.9, 0.999, 1e-8, 0.3, decayed=[True, False, True])
    assert_trajectories_close(actual, expected)


@pytest.mark.parametrize("factor", [0.25, 3.0])
def test_scaled_learning_rate_is_the_update_at_that_rate_for_those_variables_only(factor):
    params, gradients = make_problem(seed=3)
    variables = make_variables(params)
    schedule = StepDecay(initial_learning_rate=0.1, boundaries=(4,), factor=0.5)
    optimizer = RAdam(learning_rate=schedule, weight_decay=0.2)
    optimizer.build(variables)
    optimizer.scale_learning_rate([variables[0], variables[2]], factor)
    actual = run_keras(optimizer, variables, gradients)
    base_rate = lambda t: 0.1 * 0.5 ** (t - 1 > 4)  # noqa: E731
    unscaled = spec_radam(params, gradients, base_rate, 0.9, 0.999, 1e-8, 0.2)
    scaled = spec_radam(params, gradients, lambda t: factor * base_rate(t), 0.9, 0.999, 1e-8, 0.2)
    expected = [[s[0], u[1], s[2]] for u, s in zip(unscaled, scaled)]
    assert_trajectories_close(actual, expected)
    # the factor really changed the trajectory (steps 1-5 and the rectified ones)
    assert not np.allclose(actual[-1][0], unscaled[-1][0], atol=1e-4)


def test_scale_learning_rate_refuses_bad_factors_and_foreign_variables():
    variables = make_variables(make_problem(seed=4)[0])
    optimizer = RAdam()
    with pytest.raises(ValueError, match="build the optimizer"):
        optimizer.scale_learning_rate(variables, 0.5)
    optimizer.build(variables[:2])
    for factor in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number > 0"):
            optimizer.scale_learning_rate(variables[:1], factor)
    with pytest.raises(ValueError, match="filters.*not trained by this optimizer"):
        optimizer.scale_learning_rate(variables[2:], 0.5)


def test_checkpoint_round_trip_continues_identically(tmp_path):
    params, gradients = make_problem(seed=3, num_steps=14)
    variables = make_variables(params)
    optimizer = RAdam(learning_rate=StepDecay(initial_learning_rate=0.05, boundaries=(8,), factor=0.5))
    run_keras(optimizer, variables, gradients[:7])
    path = tf.train.Checkpoint(optimizer=optimizer, params=variables).save(str(tmp_path / "ckpt"))
    saved_state = {v.path: v.numpy() for v in optimizer.variables}
    continued = run_keras(optimizer, variables, gradients[7:])

    restored_variables = make_variables([np.zeros_like(p) for p in params])
    restored_optimizer = RAdam(learning_rate=StepDecay(initial_learning_rate=0.05, boundaries=(8,), factor=0.5))
    restored_optimizer.build(restored_variables)
    status = tf.train.Checkpoint(optimizer=restored_optimizer, params=restored_variables).restore(path)
    status.assert_consumed()
    restored_state = {v.path: v.numpy() for v in restored_optimizer.variables}
    # iterations + (m, v) per variable; the schedule has no variable.
    assert sorted(restored_state) == sorted(saved_state)
    assert len(saved_state) == 1 + 2 * len(params)
    assert int(restored_state["radam/iteration"]) == 7
    for name, value in saved_state.items():
        np.testing.assert_array_equal(restored_state[name], value, err_msg=name)
    resumed = run_keras(restored_optimizer, restored_variables, gradients[7:])
    for continued_params, resumed_params in zip(continued, resumed):
        for continued_p, resumed_p in zip(continued_params, resumed_params):
            np.testing.assert_array_equal(resumed_p, continued_p)


def test_serialisation_round_trip_keeps_hyperparameters_and_schedule():
    schedule = StepDecay(initial_learning_rate=2e-4, boundaries=(10, 20), factor=0.25)
    optimizer = RAdam(learning_rate=schedule, beta_1=0.85, beta_2=0.995, epsilon=1e-6, weight_decay=0.02)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, RAdam)
    assert clone.get_config() == optimizer.get_config()
    clone.iterations.assign(11)
    assert float(clone.learning_rate) == pytest.approx(2e-4 * 0.25)
