"""`python -m ifan_tf.weights.convert`: fixture weights, PyTorch files, and every refusal case."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.weights.convert import convert_checkpoint
from ifan_tf.weights.model_dir import load_model_dir
from ifan_tf.weights.reference_checkpoint import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_PTH = os.path.join(REPO, "tests", "weights", "data", "tiny_ifan_w4_n2.pth")
TINY_NPZ = os.path.join(REPO, "tests", "weights", "data", "tiny_ifan_w4_n2.npz")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ifan_tf.weights.convert", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


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


# ----------------------------------------------------------------------------------------------
# Crafted checkpoints are refused by the converter with the file named; torch (when installed)
# only reads what the checked torch-free reader cannot.

import types  # noqa: E402

from crafted_checkpoints import float_bytes, storage, tensor, write_torch_zip  # noqa: E402
from ifan_tf.weights.reference_checkpoint import read_state_dict  # noqa: E402


def fake_torch(monkeypatch, calls):
    module = types.ModuleType("torch")

    def load(path, **kwargs):
        calls.append(path)
        raise RuntimeError("fake torch cannot read anything")

    module.load = load
    monkeypatch.setitem(sys.modules, "torch", module)


def test_zip_checkpoints_are_read_by_the_checked_reader_even_with_torch(tmp_path, monkeypatch):
    calls = []
    fake_torch(monkeypatch, calls)
    assert sorted(read_state_dict(TINY_PTH)) == sorted(np.load(TINY_NPZ).files)
    crafted = write_torch_zip(tmp_path / "crafted.pth", {"w": tensor(storage("0", 1), 0, (1 << 28,), (1,))},
                              {"0": float_bytes([1])})
    with pytest.raises(CheckpointError, match="crafted.pth: not a readable PyTorch checkpoint .*holding 1 elements"):
        read_state_dict(crafted)
    assert calls == []  # torch never saw either file
    exotic = tmp_path / "exotic.pth"
    with __import__("zipfile").ZipFile(exotic, "w") as archive:
        archive.writestr("exotic/data.pkl", b"\x80\x02cnumpy\nndarray\n.")
    with pytest.raises(CheckpointError, match="exotic.pth: not a readable PyTorch checkpoint .*RuntimeError"):
        read_state_dict(exotic)
    assert calls == [str(exotic)]  # objects outside the allow-list are left to torch's own weights_only loader


def test_crafted_pth_is_refused_by_the_cli(tmp_path):
    crafted = write_torch_zip(tmp_path / "crafted.pth", {"w": tensor(storage("0", 4), 0, (2,), (1 << 40,))},
                              {"0": float_bytes(range(4))})
    result = run_cli(f"--checkpoint={crafted}", f"--output={tmp_path / 'out'}")
    assert result.returncode == 1, result.stderr
    assert "crafted.pth" in result.stderr and "holding 4 elements" in result.stderr
    assert not (tmp_path / "out").exists()


def test_npz_larger_than_the_limit_is_refused_before_reading(tmp_path):
    with pytest.raises(CheckpointError, match=r"tiny_ifan_w4_n2.npz: its arrays declare \d+ bytes, more than the "
                                              "limit of 1000 bytes"):
        read_state_dict(TINY_NPZ, max_bytes=1000)


def test_npz_bomb_is_refused_from_its_headers_before_inflating(tmp_path, monkeypatch):
    import tracemalloc
    import zipfile

    import ifan_tf.weights.convert as convert_lib
    from crafted_checkpoints import write_npz_member
    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.model.reblur import build_reblurring_network

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(TINY_NPZ) as original, zipfile.ZipFile(path, "w") as archive:
        for info in original.infolist():
            if info.filename == "module.Network.conv2_2.0.bias.npy":  # 256 MiB declared, ~0.3 MB stored
                write_npz_member(archive, "module.Network.conv2_2.0.bias", (1 << 13, 1 << 13), b"",
                                 declared_size=1 << 28)
            else:
                archive.writestr(info, original.read(info))
    config = ModelConfig(width=4, num_iterations=2, reblur_iterations=2, iac_mode="checkpoint")
    network, reblur = build_ifan(config), build_reblurring_network(config)  # built before tracing
    monkeypatch.setattr(convert_lib, "build_ifan", lambda config: network)
    monkeypatch.setattr(convert_lib, "build_reblurring_network", lambda config: reblur)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"bomb.npz: the weights do not fit .*\n.*wrong shape \(1\): "
                                                  r"conv2_2\.0\.bias: checkpoint \(8192, 8192\), model \(8,\)"):
            convert_checkpoint(str(path), str(tmp_path / "out"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    assert not (tmp_path / "out").exists()


def test_shapes_implying_an_unsupported_model_are_a_checkpoint_error(tmp_path):
    path = corrupt(tmp_path, lambda s: s.update({"module.Network.conv1_1.0.weight": np.zeros((4, 3, 13, 13))}))
    with pytest.raises(CheckpointError, match=r"corrupt.npz: the weight shapes do not describe a supported IFAN "
                                              r"model .*kernel_size must be in \[1, 11\], got 13"):
        convert_checkpoint(path, str(tmp_path / "out"))


# ----------------------------------------------------------------------------------------------
# Stride-0 views (issue 25): a .pth is sized from its declared views before any array is
# allocated, by the reader's cap and by the model's expected shapes.

from crafted_checkpoints import write_state_dict_zip  # noqa: E402

EXPANDED_BIAS = "module.Network.conv2_2.0.bias"  # (8,) in the tiny model


def test_expanded_view_in_a_pth_is_refused_by_convert_before_allocating(tmp_path):
    import tracemalloc

    # one stored float viewed as 8192 x 8192 (256 MiB): today read whole, then refused for its shape
    path = write_state_dict_zip(tmp_path / "expanded.pth", dict(np.load(TINY_NPZ)),
                                {EXPANDED_BIAS: (1, 0, (8192, 8192), (0, 0))})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=rf"expanded.pth: .*tensor '{EXPANDED_BIAS}' \(sizes \(8192, 8192\), "
                                                  r"strides \(0, 0\)\) would materialise 268435456 bytes from a "
                                                  r"storage of 4 bytes"):
            convert_checkpoint(path, str(tmp_path / "out"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    assert not (tmp_path / "out").exists()


def test_pth_views_are_compared_with_the_expected_shapes_before_any_storage_is_read(tmp_path, monkeypatch):
    import ifan_tf.weights.pytorch_zip as pytorch_zip

    read = []
    original = pytorch_zip._read_member
    monkeypatch.setattr(pytorch_zip, "_read_member", lambda archive, name, n: read.append(name) or original(
        archive, name, n))
    # within the reader's cap (256 KiB from 4 bytes), but not the (8,) the model expects
    path = write_torch_zip(tmp_path / "wide.pth", {"bias": tensor(storage("0", 1), 0, (1 << 16,), (0,))},
                           {"0": float_bytes([1])})
    with pytest.raises(CheckpointError, match=r"wide.pth: the weights do not fit the model\n.*wrong shape \(1\): "
                                              r"bias: checkpoint \(65536,\), model \(8,\)"):
        read_state_dict(path, expected_shapes={"bias": (8,)})
    assert not [name for name in read if "/data/" in name], read  # no storage was read
    read.clear()
    ok = write_torch_zip(tmp_path / "ok.pth", {"bias": tensor(storage("0", 1), 0, (8,), (0,))}, {"0": float_bytes([3])})
    loaded = read_state_dict(ok, expected_shapes={"bias": (8,)})
    np.testing.assert_array_equal(loaded["bias"], np.full(8, 3, np.float32))


def test_expanded_tensor_loaded_by_torch_is_refused_before_it_is_converted(tmp_path, monkeypatch):
    class ExpandedTensor:  # what torch.load gives for one stored float expanded to 2**29 floats
        shape = (1 << 29,)

        def numel(self):
            return 1 << 29

        def untyped_storage(self):
            return types.SimpleNamespace(nbytes=lambda: 4)

        def detach(self):
            raise AssertionError("the expanded tensor was converted (2 GiB of float32)")

    module = types.ModuleType("torch")
    module.load = lambda path, **kwargs: {"conv.weight": ExpandedTensor()}
    monkeypatch.setitem(sys.modules, "torch", module)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(b"\x80\x02 legacy torch.save format")
    with pytest.raises(CheckpointError, match=r"legacy.pth: .*tensor 'conv.weight' \(sizes \(536870912,\)\) would "
                                              r"materialise 2147483648 bytes from a storage of 4 bytes"):
        read_state_dict(legacy)
