"""The training loop on tiny synthetic data: the loss goes down; a non-finite loss stops cleanly."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tiny_training_setup import make_tiny_dataset, tiny_config

from ifan_tf.training import trainer
from ifan_tf.weights.model_dir import read_model_config


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def _logged(workdir, name):
    with open(os.path.join(workdir, trainer.METRICS_FILE)) as handle:
        return [json.loads(line)[name] for line in handle]


def test_tiny_training_run_lowers_the_total_loss(tiny_data, tmp_path, monkeypatch):
    # A fixed input order: with a random one, 1 run in ~5 fell short of halving the loss in 40 steps.
    make_dataset = trainer.make_distributed_dataset
    monkeypatch.setattr(trainer, "make_distributed_dataset",
                        lambda config, strategy, seed: make_dataset(config, strategy, 0 if seed is None else seed))
    config = tiny_config(tiny_data[0], tiny_data[1], train__num_steps=40, train__log_every=1, eval__max_images=1)
    result = trainer.train(config, str(tmp_path))
    totals = _logged(tmp_path, "total")
    assert result.step == 40 and len(totals) == 40
    assert all(np.isfinite(totals))
    assert np.mean(totals[-5:]) < 0.5 * np.mean(totals[:5]), totals
    # every output a run promises
    for name in ("config.json", "metrics.jsonl", "validation.jsonl", "model/config.json", "model_best/network.npz"):
        assert os.path.exists(tmp_path / name), name
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-40")
    assert read_model_config(tmp_path / "model")[1]["step"] == 40
    assert result.validations[-1]["input_psnr"] > 0


def _poison_batches(monkeypatch, poisoned):
    """Makes the trainer's input NaN for the batches whose 0-based index satisfies ``poisoned(index)``."""
    make_dataset = trainer.make_distributed_dataset

    def poisoned_dataset(config, strategy, seed):
        def poison(index, batch):
            image = tf.where(poisoned(index), tf.fill(tf.shape(batch["image"]), np.float32(np.nan)), batch["image"])
            return dict(batch, image=image)
        return make_dataset(config, strategy, seed).enumerate().map(poison)

    monkeypatch.setattr(trainer, "make_distributed_dataset", poisoned_dataset)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    _poison_batches(monkeypatch, lambda index: index >= 2)
    config = tiny_config(tiny_data[0], train__num_steps=10, train__checkpoint_every=2, train__max_skipped_steps=0)
    with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite loss at step 3 \(total .*ckpt-2"):
        trainer.train(config, str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert read_model_config(tmp_path / "model")[1]["step"] == 2
    network = np.load(tmp_path / "model" / "network.npz")
    assert all(np.all(np.isfinite(network[name])) for name in network.files)


def test_non_finite_steps_are_skipped_and_too_many_in_a_row_stop_the_run(tiny_data, tmp_path, monkeypatch):
    """Batches 2 and 3 are NaN: both updates are skipped (weights, moments and the optimizer's step
    count unchanged) and the run goes on; NaN from batch 2 on stops it after 3 skips in a row."""
    _poison_batches(monkeypatch, lambda index: (index == 2) | (index == 3))
    config = tiny_config(tiny_data[0], train__num_steps=6, train__max_skipped_steps=3)
    result = trainer.train(config, str(tmp_path / "skips"))
    assert result.step == 6
    assert int(result.state.inner_optimizer.iterations.numpy()) == 4  # 6 steps, 2 skipped
    weights = result.state.network.get_weights() + result.state.reblur_network.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    assert len(_logged(tmp_path / "skips", "total")) == 4  # nothing is logged from a skipped step
    assert all(np.isfinite(_logged(tmp_path / "skips", "total")))

    _poison_batches(monkeypatch, lambda index: index >= 2)
    with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite loss at step 6 \(4 in a row\)"):
        trainer.train(tiny_config(tiny_data[0], train__num_steps=10, train__max_skipped_steps=3), str(tmp_path / "stop"))


def test_the_demo_undoes_the_update_before_a_skip_and_cools_down(tiny_data, tmp_path, monkeypatch):
    """The trainer wiring of ``stability`` (its rules alone: ``test_stability.py``)."""
    _poison_batches(monkeypatch, lambda index: index == 3)
    config = tiny_config(tiny_data[0], train__num_steps=8, train__max_skipped_steps=3,
                         train__undo_overflowing_updates=True, train__undo_cooldown_steps=2, train__log_every=1)
    result = trainer.train(config, str(tmp_path))
    assert int(result.state.inner_optimizer.iterations.numpy()) == 6  # 8 steps, 1 skipped, 1 undone
    rate, lower = config.train.learning_rate, config.train.learning_rate * config.train.lr_decay_factor
    # steps 1-3 at the rate; step 4 skipped (nothing logged) and update 3 undone; steps 5 and 6 redo
    # updates 3 and 4 one cut lower; from step 7 on the schedule again
    assert _logged(tmp_path, "learning_rate") == [pytest.approx(r) for r in (rate, rate, rate, lower, lower, rate, rate)]


@pytest.mark.parametrize("steps", [-1, -100])
def test_negative_undo_cooldown_is_refused(steps):
    with pytest.raises(ValueError, match="train.undo_cooldown_steps must be >= 0"):
        trainer.check_train_config(tiny_config("unused", train__undo_cooldown_steps=steps).train, 1)


def test_a_cooldown_without_the_undo_is_refused():
    with pytest.raises(ValueError, match="needs train.undo_overflowing_updates=True"):
        trainer.check_train_config(tiny_config("unused", train__undo_cooldown_steps=5).train, 1)
    trainer.check_train_config(tiny_config("unused", train__undo_cooldown_steps=5,
                                           train__undo_overflowing_updates=True).train, 1)


def test_a_skipped_step_leaves_weights_and_optimizer_state_unchanged_and_the_last_update_can_be_undone():
    from distributed_equivalence import make_batches, replica_slices

    from ifan_tf.training.train_step import make_distributed_train_step

    config = tiny_config("unused")
    strategy = tf.distribute.get_strategy()
    state = trainer.build_train_state(config, strategy)
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                          clip_norm=config.train.clip_norm, keep_undo_copy=True)

    def snapshot():
        return [v.numpy().copy() for v in state.optimizer.variables + state.trainable_variables]

    def equal(first, second):
        return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))

    first, second = make_batches()
    step_fn(replica_slices(strategy, first))  # real updates: the moments are non-zero
    after_first = snapshot()
    step_fn(replica_slices(strategy, second))
    after_second = snapshot()
    assert not equal(after_first, after_second)
    poisoned = dict(second, target=np.full_like(second["target"], np.inf))
    metrics = step_fn(replica_slices(strategy, poisoned))
    assert float(metrics["finite"]) == 0.0
    assert equal(snapshot(), after_second)  # skipped: nothing changed
    assert int(state.step.numpy()) == 3  # the step itself is counted
    step_fn.update_undo.undo()  # what the trainer does at the first skip of a row
    assert equal(snapshot(), after_first)
    assert int(state.inner_optimizer.iterations.numpy()) == 1

    plain = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                        clip_norm=config.train.clip_norm)
    assert plain.update_undo is None  # the plain guard's step keeps no copy
    assert float(plain(replica_slices(strategy, poisoned))["finite"]) == 0.0
    assert equal(snapshot(), after_first)  # and skips as well
    unguarded = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                            clip_norm=config.train.clip_norm, skip_non_finite=False,
                                            keep_undo_copy=True)
    assert unguarded.update_undo is None
    unguarded(replica_slices(strategy, poisoned))  # the reference's behaviour: the NaNs are applied
    assert not all(np.all(np.isfinite(v.numpy())) for v in state.trainable_variables)


def test_no_undo_copy_under_loss_scaling():
    """float16's loss-scale optimizer skips by itself; the step never saves, so it must offer no undo."""
    from ifan_tf.training.train_step import make_distributed_train_step

    config = tiny_config("unused", train__precision="float16")
    strategy = tf.distribute.get_strategy()
    state = trainer.build_train_state(config, strategy)
    step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                          clip_norm=config.train.clip_norm, keep_undo_copy=True)
    assert step_fn.update_undo is None


def test_reblur_lr_scale_scales_the_rbn_updates_only():
    from distributed_equivalence import make_batches, replica_slices

    from ifan_tf.training.train_step import make_distributed_train_step

    strategy = tf.distribute.get_strategy()
    batch = make_batches()[0]
    deltas = {}
    start = None
    for scale in (1.0, 0.25):
        state = trainer.build_train_state(tiny_config("unused", train__reblur_lr_scale=scale), strategy)
        if start is None:
            start = [v.numpy() for v in state.trainable_variables]
        for variable, value in zip(state.trainable_variables, start, strict=True):
            variable.assign(value)
        step_fn = make_distributed_train_step(strategy, state, state.network.config, global_batch_size=4,
                                              clip_norm=0.5, skip_non_finite=False)
        step_fn(replica_slices(strategy, batch))
        deltas[scale] = [v.numpy() - s for v, s in zip(state.trainable_variables, start)]
    num_network = len(state.network.trainable_variables)
    for index, (full, scaled) in enumerate(zip(deltas[1.0], deltas[0.25])):
        expected = full if index < num_network else 0.25 * full  # the first update is linear in lr
        np.testing.assert_allclose(scaled, expected, rtol=1e-4, atol=1e-8, err_msg=str(index))
    assert any(np.abs(d).max() > 0 for d in deltas[1.0][num_network:])


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan")])
def test_bad_reblur_lr_scale_is_refused(scale):
    with pytest.raises(ValueError, match="train.reblur_lr_scale must be a finite number > 0"):
        trainer.check_train_config(tiny_config("unused", train__reblur_lr_scale=scale).train, 1)
