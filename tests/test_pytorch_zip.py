"""The torch-free reader of torch.save zip files, on a file written by real torch (tests/model/data)."""

import pickle
import zipfile

import numpy as np
import pytest

from ifan_tf.pytorch_zip import PyTorchZipError, is_pytorch_zip, read_pytorch_zip
from test_convert import TINY_NPZ, TINY_PTH


def test_reads_every_tensor_bit_exactly():
    state = read_pytorch_zip(TINY_PTH)
    reference = np.load(TINY_NPZ)
    assert list(state) == list(reference.files)  # OrderedDict order kept
    for name in reference.files:
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], reference[name])


def test_refuses_code_in_the_pickle(tmp_path):
    path = tmp_path / "evil.pth"
    payload = pickle.dumps({"x": __import__("os").getcwd}, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
    assert is_pytorch_zip(path)
    with pytest.raises(pickle.UnpicklingError, match="unsupported object"):
        read_pytorch_zip(path)


def test_is_pytorch_zip_is_false_for_other_files(tmp_path):
    other = tmp_path / "x.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.txt", "a")
    assert not is_pytorch_zip(other)
    (tmp_path / "y.pth").write_bytes(b"plain")
    assert not is_pytorch_zip(tmp_path / "y.pth")


# ----------------------------------------------------------------------------------------------
# Crafted files: every view, storage and member size is checked before anything is read.

from crafted_checkpoints import float_bytes, read_in_capped_process, storage, tensor, write_torch_zip  # noqa: E402

READER = "ifan_tf.pytorch_zip:read_pytorch_zip"


def test_crafted_valid_file_reads_views_scalars_and_shared_storages(tmp_path):
    path = write_torch_zip(tmp_path / "ok.pth", {
        "matrix": tensor(storage("0", 6), 0, (2, 3), (3, 1)),
        "transposed": tensor(storage("0", 6), 0, (3, 2), (1, 3)),
        "scalar": tensor(storage("1", 1), 0, (), ()),
        "empty": tensor(storage("2", 0), 0, (0, 4), (4, 1)),
    }, {"0": float_bytes(range(6)), "1": float_bytes([7]), "2": b""})
    state = read_pytorch_zip(path)
    np.testing.assert_array_equal(state["matrix"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(state["transposed"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
    assert state["scalar"] == 7 and state["scalar"].shape == ()
    assert state["empty"].shape == (0, 4)


@pytest.mark.parametrize("opcodes, storages, message", [
    # a view past the end of its storage: today the bytes after it end up in the weights
    (tensor(storage("0", 4), 2, (4,), (1,)), {"0": float_bytes(range(4))}, "reaches element 5 of storage"),
    # a huge stride: today a wild read far outside the storage (segfault)
    (tensor(storage("0", 4), 0, (2,), (1 << 40,)), {"0": float_bytes(range(4))}, "holding 4 elements"),
    # one float of storage declaring a 1 GiB tensor: today a 1 GiB allocation and a wild read
    (tensor(storage("0", 1), 0, (1 << 28,), (1,)), {"0": float_bytes([1])}, "holding 1 elements"),
    # a storage declaring 1 GiB of elements in a 4-byte member
    (tensor(storage("0", 1 << 28), 0, (1 << 28,), (1,)), {"0": float_bytes([1])}, "its zip member holds 4 bytes"),
    (tensor(storage("0", 4), -1, (2,), (1,)), {"0": float_bytes(range(4))}, "offset must be a non-negative"),
    (tensor(storage("0", 4), 0, (2,), (-1,)), {"0": float_bytes(range(4))}, "non-negative integers"),
    (tensor(storage("0", 4), 0, ("2",), (1,)), {"0": float_bytes(range(4))}, "non-negative integers"),
    (tensor(storage("0", 4), 0, (2, 2), (1,)), {"0": float_bytes(range(4))}, "differ in length"),
    (tensor(storage("0", 4), 0, (4,), (1,)), {}, "is missing from the archive"),
], ids=["view_past_the_end", "huge_stride", "huge_tensor_on_4_bytes", "storage_larger_than_member",
        "negative_offset", "negative_stride", "string_size", "strides_length", "missing_member"])
def test_crafted_views_are_refused_before_reading(tmp_path, opcodes, storages, message):
    path = write_torch_zip(tmp_path / "crafted.pth", {"weight": opcodes}, storages)
    result = read_in_capped_process(READER, path)
    assert result["outcome"] == "error", result
    assert result["type"] == "PyTorchZipError" and "crafted.pth" in result["message"], result
    assert message in result["message"], result


@pytest.fixture(scope="module")
def bomb_archives(tmp_path_factory):
    """Zips whose 640 MiB (64 MiB) storage member is a few MB (KB) of deflated zeros."""
    folder = tmp_path_factory.mktemp("bombs")
    whole, large = 5 << 25, 1 << 24
    return {
        "whole": write_torch_zip(folder / "whole.pth", {"weight": tensor(storage("0", whole), 0, (whole,), (1,))},
                                 {}, bomb_members={"0": 4 * whole}),
        "one_element": write_torch_zip(folder / "one_element.pth", {"weight": tensor(storage("0", large), 0, (1,), (1,))},
                                       {}, bomb_members={"0": 4 * large}),
    }


@pytest.mark.parametrize("which, message", [
    ("whole", "more than the limit of 536870912 bytes"),  # consistent, but more than max_bytes
    ("one_element", "more than the 4 bytes of the tensors declared"),  # storage far larger than its tensors
])
def test_zip_bomb_members_are_refused_before_inflating(bomb_archives, which, message):
    result = read_in_capped_process(READER, bomb_archives[which])
    assert result["outcome"] == "error", result
    assert result["type"] == "PyTorchZipError" and f"{which}.pth" in result["message"], result
    assert message in result["message"], result


def test_max_bytes_caps_an_honest_file(tmp_path):
    with pytest.raises(PyTorchZipError, match="tiny_ifan_w4_n2.pth: the tensors hold .* more than the limit of 1000"):
        read_pytorch_zip(TINY_PTH, max_bytes=1000)
