"""The training loop on tiny synthetic data: the loss goes down; a non-finite loss stops cleanly."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tiny_training_setup import make_tiny_dataset, tiny_config

from ifan_tf.model_dir import read_model_config
from ifan_tf.training import trainer


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def _logged(workdir, name):
    with open(os.path.join(workdir, trainer.METRICS_FILE)) as handle:
        return [json.loads(line)[name] for line in handle]


def test_tiny_training_run_lowers_the_total_loss(tiny_data, tmp_path):
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


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    make_dataset = trainer.make_distributed_dataset

    def poisoned_after_two_batches(config, strategy, seed):
        def poison(index, batch):
            image = tf.where(index >= 2, tf.fill(tf.shape(batch["image"]), np.float32(np.nan)), batch["image"])
            return dict(batch, image=image)
        return make_dataset(config, strategy, seed).enumerate().map(poison)

    monkeypatch.setattr(trainer, "make_distributed_dataset", poisoned_after_two_batches)
    config = tiny_config(tiny_data[0], train__num_steps=10, train__checkpoint_every=2)
    with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite loss at step 3.*ckpt-2"):
        trainer.train(config, str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert read_model_config(tmp_path / "model")[1]["step"] == 2
    network = np.load(tmp_path / "model" / "network.npz")
    assert all(np.all(np.isfinite(network[name])) for name in network.files)
