"""`python -m ifan_tf.convert`: fixture weights, PyTorch files, and every refusal case."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.convert import convert_checkpoint
from ifan_tf.model_dir import load_model_dir
from ifan_tf.reference_checkpoint import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_PTH = os.path.join(REPO, "tests", "model", "data", "tiny_ifan_w4_n2.pth")
TINY_NPZ = os.path.join(REPO, "tests", "model", "data", "tiny_ifan_w4_n2.npz")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ifan_tf.convert", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


def test_cli_converts_fixture_and_model_reproduces_reference(fixtures_dir, tmp_path):
    output = tmp_path / "released"
    result = run_cli(f"--checkpoint={fixtures_dir / 'official_small_checkpoint_iac_weights.npz'}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    document = json.loads((output / "config.json").read_text())
    assert document["model"]["iac_mode"] == "checkpoint"  # the default for released weights
    assert (document["model"]["width"], document["model"]["num_iterations"]) == (8, 3)
    loaded = load_model_dir(output, with_reblur=True)
    reference = np.load(fixtures_dir / "official_small_checkpoint_iac_io.npz")
    image = tf.constant(np.transpose(reference["C"], (0, 2, 3, 1)))
    got = loaded.network(image, training=False).numpy()
    np.testing.assert_allclose(got, np.transpose(reference["result_eval"], (0, 2, 3, 1)), atol=2e-5)


def test_separable_mode_flag(fixtures_dir, tmp_path):
    config = convert_checkpoint(str(fixtures_dir / "official_small_separable_iac_weights.npz"), str(tmp_path / "m"),
                                iac_mode="separable")
    assert config.iac_mode == "separable"
    assert load_model_dir(tmp_path / "m").config.iac_mode == "separable"


@pytest.mark.parametrize("source", [TINY_PTH, TINY_NPZ])
def test_pytorch_file_and_npz_give_the_same_model(source, tmp_path):
    config = convert_checkpoint(source, str(tmp_path / "m"))
    assert (config.width, config.num_iterations, config.reblur_iterations) == (4, 2, 2)
    weights = np.load(tmp_path / "m" / "network.npz")
    original = np.load(TINY_NPZ)
    for name in weights.files:
        np.testing.assert_array_equal(weights[name], original[f"module.Network.{name}"])


def test_pytorch_file_through_torch_when_installed(tmp_path):
    pytest.importorskip("torch", reason="torch is an optional dependency; the torch-free zip reader is tested above")
    convert_checkpoint(TINY_PTH, str(tmp_path / "m"))
    assert (tmp_path / "m" / "network.npz").is_file()


def corrupt(tmp_path, change):
    state = dict(np.load(TINY_NPZ))
    change(state)
    path = tmp_path / "corrupt.npz"
    np.savez(path, **state)
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("module.Network.upconv2_1.stem.0.2.weight"), r"missing \(1\): upconv2_1\.stem\.0\.2\.weight"),
    (lambda s: s.update({"module.Network.extra.weight": np.zeros(3, np.float32)}), r"unexpected \(1\): extra\.weight"),
    (lambda s: s.update({"module.Network.conv2_2.0.bias": np.zeros(5, np.float32)}),
     r"wrong shape \(1\): conv2_2\.0\.bias: checkpoint \(5,\), model \(8,\)"),
    (lambda s: s.pop("module.Network.F.3.weight"), "not an IFAN state_dict: missing 'F.3.weight'"),
])
def test_bad_weights_are_refused_with_a_clear_message_and_nothing_written(tmp_path, change, message):
    path = corrupt(tmp_path, change)
    output = tmp_path / "out"
    result = run_cli(f"--checkpoint={path}", f"--output={output}")
    assert result.returncode == 1
    assert "corrupt.npz" in result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corrupt.npz"]  # no temporary folder left either


@pytest.mark.parametrize("name, content, message", [
    ("weights.txt", b"hello", "unknown checkpoint type"),
    ("weights.npz", b"not a zip at all", "not a readable .npz"),
    ("weights.pth", b"garbage bytes", "not a"),
    ("missing.npz", None, "no such checkpoint file"),
])
def test_wrong_file_types_are_refused(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        convert_checkpoint(str(path), str(tmp_path / "out"))
    assert name in str(error.value)
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(tmp_path):
    output = tmp_path / "m"
    convert_checkpoint(TINY_NPZ, str(output))
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_checkpoint(TINY_NPZ, str(output))
    convert_checkpoint(TINY_NPZ, str(output), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
