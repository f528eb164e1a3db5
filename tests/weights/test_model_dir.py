"""Model directories: save/load round trip, atomic writes, clear errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.weights.model_dir import load_model_dir, save_model_dir
from ifan_tf.weights.reference_checkpoint import CheckpointError

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


# ----------------------------------------------------------------------------------------------
# Hostile model directories: refused with the file named, before any network is built or any
# weight is decompressed.

import tracemalloc  # noqa: E402
import zipfile  # noqa: E402

import ifan_tf.weights.model_dir as model_dir_lib  # noqa: E402
from crafted_checkpoints import write_npz_member  # noqa: E402
from ifan_tf.model.precision import PRECISIONS  # noqa: E402
from ifan_tf.weights.model_dir import load_network  # noqa: E402


@pytest.fixture
def saved_dir(tmp_path):
    save_model_dir(tmp_path / "m", build_ifan(CONFIG))
    return tmp_path / "m"


def write_config(directory, document):
    (directory / "config.json").write_text(document if isinstance(document, str) else json.dumps(document))


def good_document():
    return {"format": "ifan_tf.model_dir", "version": 1, "model": CONFIG.to_dict(), "metadata": {}}


def with_model(**changes):
    document = good_document()
    document["model"].update(changes)
    return document


@pytest.mark.parametrize("document, message", [
    ("{not json", "unreadable model config"),
    ("[1, 2, 3]", "must hold a JSON object, holds list"),
    ('"a string"', "must hold a JSON object, holds str"),
    ({**good_document(), "model": [4, 2]}, "'model' and 'metadata' must be JSON objects"),
    ({**good_document(), "metadata": "x"}, "'model' and 'metadata' must be JSON objects"),
    ({**good_document(), "extra": 1}, r"unknown fields \['extra'\]"),
    ({**good_document(), "version": True}, "not an ifan_tf.model_dir v1 config"),
    (with_model(width="4"), "width must be an integer, got '4'"),
    (with_model(width=4.0), "width must be an integer, got 4.0"),
    (with_model(use_iac="yes"), "use_iac must be true or false"),
    (with_model(iac_mode=3), "iac_mode must be one of"),
    (with_model(num_iterations=-2), r"num_iterations must be in \[1, 64\], got -2"),
    (with_model(width=10 ** 6), r"width must be in \[1, 256\], got 1000000"),
    (with_model(num_iterations=10 ** 9), r"num_iterations must be in \[1, 64\]"),
    (with_model(filter_size=4), "filter_size must be odd"),
    (with_model(width=256, num_iterations=64), "filter map depth"),
    (with_model(hidden_layers=3), r"unknown IFAN model config keys \['hidden_layers'\]"),
], ids=["not_json", "list", "string", "model_not_object", "metadata_not_object", "unknown_field", "bool_version",
        "string_width", "float_width", "string_bool", "int_mode", "negative", "huge_width", "huge_iterations",
        "even_filter", "huge_depth", "unknown_model_field"])
def test_bad_config_json_is_refused_before_any_network_is_built(tmp_path, monkeypatch, document, message):
    saved_dir = tmp_path  # network.npz is not needed: nothing gets that far
    write_config(saved_dir, document)

    def must_not_build(*args, **kwargs):
        raise AssertionError("a network was built from an invalid config.json")

    monkeypatch.setattr(model_dir_lib, "build_ifan", must_not_build)
    with pytest.raises(CheckpointError, match=message) as error:
        load_model_dir(saved_dir)
    assert str(saved_dir / "config.json") in str(error.value)


def test_oversized_config_json_is_not_read(tmp_path):
    write_config(tmp_path, " " * (2 << 20) + json.dumps(good_document()))
    with pytest.raises(CheckpointError, match="config.json: larger than 1048576 bytes"):
        load_model_dir(tmp_path)


def replace_npz_member(npz_path, name, header_shape, payload=b"", declared_size=None):
    """Rewrites ``npz_path`` with member ``name`` replaced by a crafted one."""
    with zipfile.ZipFile(npz_path) as original:
        members = {info.filename: original.read(info) for info in original.infolist()}
    with zipfile.ZipFile(npz_path, "w") as archive:
        for member, data in members.items():
            if member == f"{name}.npy":
                write_npz_member(archive, name, header_shape, payload, declared_size=declared_size)
            else:
                archive.writestr(member, data)


def load_tracing_peak(directory, monkeypatch):
    """Loads ``directory`` expecting a CheckpointError; returns (error, peak Python/numpy bytes)."""
    network = build_ifan(CONFIG)  # built before tracing: only the weights reading is measured
    monkeypatch.setattr(model_dir_lib, "build_ifan", lambda config, dtype=None: network)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as error:
            load_model_dir(directory)
        return error.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_npz_member_declaring_a_huge_shape_is_refused_without_allocating(saved_dir, monkeypatch):
    # header: 4 GiB of float32; member: 16 bytes. numpy.load allocates the 4 GiB first.
    replace_npz_member(saved_dir / "network.npz", "conv1_1.0.bias", (1 << 15, 1 << 15), bytes(16))
    error, peak = load_tracing_peak(saved_dir, monkeypatch)
    assert "network.npz: member conv1_1.0.bias.npy declares shape (32768, 32768) float32" in str(error)
    assert "but holds 16 bytes" in str(error)
    assert peak < 64 << 20, peak


def test_npz_bomb_with_a_wrong_shape_is_refused_from_its_header_before_inflating(saved_dir, monkeypatch):
    # header and zip directory agree on 256 MiB of float32; the member is ~0.3 MB of deflated zeros
    replace_npz_member(saved_dir / "network.npz", "conv1_1.0.bias", (1 << 13, 1 << 13), declared_size=1 << 28)
    error, peak = load_tracing_peak(saved_dir, monkeypatch)
    assert "network.npz: the weights do not fit the model" in str(error)
    assert "conv1_1.0.bias: checkpoint (8192, 8192), model (4,)" in str(error)
    assert peak < 64 << 20, peak


def test_npz_with_a_non_numeric_dtype_is_refused(saved_dir):
    with zipfile.ZipFile(saved_dir / "network.npz", "a") as archive:
        write_npz_member(archive, "extra", (2,), bytes(16), dtype="|O")
    with pytest.raises(CheckpointError, match="network.npz: member extra.npy holds dtype object, not plain numbers"):
        load_model_dir(saved_dir)


def test_load_network_at_each_precision(saved_dir):
    assert sorted(PRECISIONS) == ["bfloat16", "float16", "float32"]
    for precision, compute in [("float32", "float32"), ("bfloat16", "bfloat16"), ("float16", "float16")]:
        network = load_network(saved_dir, precision)
        assert network.compute_dtype == compute and network.config == CONFIG
        assert network.variable_dtype == "float32"
    separable = load_network(saved_dir, config_overrides={"iac_mode": "separable"})
    assert separable.config.iac_mode == "separable"
    with pytest.raises(ValueError, match="precision must be one of"):
        load_network(saved_dir, "int8")
