"""The moving average of the network's weights (``train.ema_decay``): the rule, the swap, the step,
the undo, the trainer's model directories and checkpoints."""
import json

import numpy as np
import pytest
import tensorflow as tf
from tiny_training_setup import make_tiny_dataset, tiny_config

from ifan_tf.training import trainer
from ifan_tf.training.weight_average import WeightAverage, swapped_in


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_the_first_update_copies_and_later_ones_follow_the_decay():
    variables = [tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)), tf.Variable(np.float32(-2.0))]
    average = WeightAverage(variables, decay=0.75)
    expected = None
    for step in range(4):
        for variable in variables:
            variable.assign(variable * 1.5 + step)
        average.update()
        current = _values(variables)
        expected = current if expected is None else [0.75 * e + 0.25 * c for e, c in zip(expected, current)]
        for got, want in zip(_values(average.averages), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert int(average.count.numpy()) == 4


def test_swapped_in_exchanges_the_values_and_restores_them_also_on_error():
    variable = tf.Variable([1.0, 2.0])
    average = WeightAverage([variable], decay=0.5)
    average.update()
    variable.assign([3.0, 6.0])
    average.update()  # average: [2, 4]
    with average.swapped_in():
        np.testing.assert_array_equal(variable.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(variable.numpy(), [3.0, 6.0])
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_in():
            raise RuntimeError("inside")
    np.testing.assert_array_equal(variable.numpy(), [3.0, 6.0])
    np.testing.assert_array_equal(average.averages[0].numpy(), [2.0, 4.0])
    with swapped_in(None):  # no average: nothing happens
        np.testing.assert_array_equal(variable.numpy(), [3.0, 6.0])


def test_nothing_is_swapped_in_before_the_first_update():
    variable = tf.Variable([1.0, 2.0])
    average = WeightAverage([variable], decay=0.5)
    assert average.swap() is False
    with average.swapped_in():
        np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_a_bad_decay_is_refused(decay):
    with pytest.raises(ValueError, match="decay of a weight average must be in"):
        WeightAverage([tf.Variable(1.0)], decay=decay)


def test_non_float_variables_and_no_variables_are_refused():
    with pytest.raises(ValueError, match="non-float variable"):
        WeightAverage([tf.Variable(3)], decay=0.9)
    with pytest.raises(ValueError, match="at least one variable"):
        WeightAverage([], decay=0.9)


@pytest.mark.parametrize("decay", [1.0, -0.1, float("nan")])
def test_the_trainer_refuses_a_bad_ema_decay(decay):
    with pytest.raises(ValueError, match="train.ema_decay must be in"):
        trainer.check_train_config(tiny_config("unused", train__ema_decay=decay).train, 1)


def test_the_step_moves_the_average_and_an_undo_restores_it():
    from distributed_equivalence import make_batches, replica_slices

    from ifan_tf.training.train_step import make_distributed_train_step

    strategy = tf.distribute.get_strategy()
    state = trainer.build_train_state(tiny_config("unused", train__ema_decay=0.6), strategy)
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                          clip_norm=0.5, keep_undo_copy=True)
    first, second = make_batches()
    expected = None
    snapshots = []
    for batch in (first, second):
        step_fn(replica_slices(strategy, batch))
        weights = _values(state.network.trainable_variables)
        expected = weights if expected is None else [0.6 * e + 0.4 * w for e, w in zip(expected, weights)]
        for got, want in zip(_values(state.weight_average.averages), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        snapshots.append(_values(state.weight_average.averages))
    assert not all(np.array_equal(a, b) for a, b in zip(*snapshots))
    poisoned = dict(second, target=np.full_like(second["target"], np.inf))
    assert float(step_fn(replica_slices(strategy, poisoned))["finite"]) == 0.0
    for got, want in zip(_values(state.weight_average.averages), snapshots[1], strict=True):
        np.testing.assert_array_equal(got, want)  # a skipped step does not move the average
    step_fn.update_undo.undo()
    for got, want in zip(_values(state.weight_average.averages), snapshots[0], strict=True):
        np.testing.assert_array_equal(got, want)  # the undo takes back the average's move too
    assert int(state.weight_average.count.numpy()) == 1


def _checkpoint_network(workdir, config):
    """The network weights stored in the newest training checkpoint of ``workdir``."""
    strategy = tf.distribute.get_strategy()
    state = trainer.build_train_state(config, strategy)
    assert trainer.make_checkpoint_keeper(workdir, state, None, config.train, strategy).restore_latest()
    return _values(state.network.trainable_variables)


def test_the_model_directories_and_validation_use_the_average_and_checkpoints_keep_both(tiny_data, tmp_path):
    from ifan_tf.evaluation.evaluate import evaluate, skipped_lpips
    from ifan_tf.weights.model_dir import load_model_dir

    config = tiny_config(tiny_data[0], tiny_data[1], train__ema_decay=0.5, train__num_steps=3)
    result = trainer.train(config, str(tmp_path))
    state = result.state
    averaged = _values(state.network.trainable_variables)  # the returned network holds the average
    iterate = _values(state.weight_average.averages)
    assert not all(np.array_equal(a, b) for a, b in zip(averaged, iterate))
    loaded = load_model_dir(str(tmp_path / trainer.MODEL_DIR)).network
    for got, want in zip(_values(loaded.trainable_variables), averaged, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(_checkpoint_network(str(tmp_path), config), iterate, strict=True):
        np.testing.assert_array_equal(got, want)  # the checkpoint trains on from the iterate
    with open(tmp_path / trainer.VALIDATION_FILE) as handle:
        record = json.loads(handle.readlines()[-1])
    summary = evaluate(state.network, [tiny_data[1]], max_images=1, lpips=skipped_lpips(), show_progress=False)
    assert record["psnr"] == pytest.approx(summary["output"]["psnr"], abs=1e-6)


def test_a_run_without_an_average_resumes_with_one(tiny_data, tmp_path):
    trainer.train(tiny_config(tiny_data[0], train__num_steps=2, train__checkpoint_every=1), str(tmp_path))
    result = trainer.train(tiny_config(tiny_data[0], train__num_steps=4, train__ema_decay=0.5), str(tmp_path))
    assert result.step == 4
    assert int(result.state.weight_average.count.numpy()) == 2  # averaged from the resumed steps only
