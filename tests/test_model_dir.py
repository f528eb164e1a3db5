"""Model directories: save/load round trip, atomic writes, clear errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.model_dir import load_model_dir, save_model_dir
from ifan_tf.reference_checkpoint import CheckpointError

CONFIG = ModelConfig(width=4, num_iterations=2, reblur_iterations=2, iac_mode="checkpoint")


def test_round_trip_keeps_weights_config_and_outputs(tmp_path):
    network, rbn = build_ifan(CONFIG), build_reblurring_network(CONFIG)
    save_model_dir(tmp_path / "m", network, rbn, metadata={"step": 3})
    loaded = load_model_dir(tmp_path / "m", with_reblur=True)
    assert loaded.config == CONFIG and loaded.metadata == {"step": 3}
    image = tf.random.uniform([1, 16, 16, 3], seed=4)
    np.testing.assert_array_equal(loaded.network(image).numpy(), network(image).numpy())
    for a, b in zip(loaded.reblur_network.weights, rbn.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_overrides_dtype_and_missing_rbn(tmp_path):
    save_model_dir(tmp_path / "m", build_ifan(CONFIG))
    loaded = load_model_dir(tmp_path / "m", config_overrides={"iac_mode": "separable"}, dtype="mixed_bfloat16")
    assert loaded.config.iac_mode == "separable"
    assert loaded.network.compute_dtype == "bfloat16"
    with pytest.raises(CheckpointError, match="no reblurring network"):
        load_model_dir(tmp_path / "m", with_reblur=True)


def test_existing_directory_is_not_replaced_without_overwrite(tmp_path):
    network = build_ifan(CONFIG)
    save_model_dir(tmp_path / "m", network)
    with pytest.raises(FileExistsError):
        save_model_dir(tmp_path / "m", network)
    save_model_dir(tmp_path / "m", network, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_not_a_model_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not a model directory"):
        load_model_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="config.json"):
        load_model_dir(tmp_path)
