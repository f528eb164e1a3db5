"""The torch-free reader of torch.save zip files, on a file written by real torch (tests/weights/data)."""

import pickle
import zipfile

import numpy as np
import pytest

from ifan_tf.weights.pytorch_zip import PyTorchZipError, is_pytorch_zip, read_pytorch_zip
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

READER = "ifan_tf.weights.pytorch_zip:read_pytorch_zip"


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


# ----------------------------------------------------------------------------------------------
# Views that repeat their storage (stride 0): what a view may materialise is capped before any
# array is allocated (issue 25); small broadcasts still load.

import time  # noqa: E402
import tracemalloc  # noqa: E402

from ifan_tf.weights import pytorch_zip  # noqa: E402


@pytest.mark.parametrize("size, stride", [((1 << 29,), (0,)), ((1 << 14, 1 << 15), (0, 0))], ids=["1d", "2d"])
def test_stride_zero_view_of_one_float_is_refused_before_allocating_2_gib(tmp_path, size, stride):
    # one stored float declared as 2**29 floats: today a 2 GiB array (MemoryError under the 1 GiB cap)
    path = write_torch_zip(tmp_path / "expanded.pth", {"weight": tensor(storage("0", 1), 0, size, stride)},
                           {"0": float_bytes([1])})
    started = time.monotonic()
    result = read_in_capped_process(READER, path)
    assert time.monotonic() - started < 60
    assert result["outcome"] == "error", result
    assert result["type"] == "PyTorchZipError" and "expanded.pth" in result["message"], result
    assert f"tensor 'weight' (sizes {size}, strides {stride}) would materialise 2147483648 bytes from a " \
           "storage of 4 bytes" in result["message"], result


def _refused_without_allocating(path, message):
    """``read_pytorch_zip(path)`` raises ``PyTorchZipError`` matching ``message`` with under 1 MiB allocated."""
    tracemalloc.start()
    try:
        with pytest.raises(PyTorchZipError, match=message):
            read_pytorch_zip(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


@pytest.mark.parametrize("size, stride", [((1 << 22,), (0,)), ((1 << 11, 1 << 11), (0, 0))], ids=["1d", "2d"])
def test_stride_zero_view_is_refused_without_allocating(tmp_path, size, stride):
    path = write_torch_zip(tmp_path / "expanded.pth", {"conv.bias": tensor(storage("0", 1), 0, size, stride)},
                           {"0": float_bytes([1])})
    _refused_without_allocating(path, r"expanded.pth: tensor 'conv.bias' .* would materialise 16777216 bytes from "
                                      r"a storage of 4 bytes, more than the 524288 bytes")


def test_many_views_of_one_storage_are_capped_in_total(tmp_path):
    # each view within the per-view cap (512 KiB from 4 bytes), 64 of them: 32 MiB from 4 bytes
    one = (1 << 17,)
    path = write_torch_zip(tmp_path / "many.pth", {f"w{i}": tensor(storage("0", 1), 0, one, (0,)) for i in range(64)},
                           {"0": float_bytes([1])})
    _refused_without_allocating(path, r"many.pth: the tensors would materialise 33554432 bytes from 4 bytes of "
                                      r"storage, more than 524288 bytes .*'w0'")


def test_materialised_bytes_are_capped_by_max_bytes(tmp_path):
    path = write_torch_zip(tmp_path / "wide.pth", {"w": tensor(storage("0", 1 << 12), 0, (4, 1 << 12), (0, 1))},
                           {"0": float_bytes(range(1 << 12))})
    assert read_pytorch_zip(path)["w"].shape == (4, 1 << 12)
    with pytest.raises(PyTorchZipError, match="wide.pth: the tensors would materialise 65536 bytes, more than the "
                                              "limit of 20000 bytes"):
        read_pytorch_zip(path, max_bytes=20000)


def test_small_expanded_views_still_load(tmp_path):
    path = write_torch_zip(tmp_path / "broadcast.pth", {
        "scalar_broadcast": tensor(storage("0", 1), 0, (5,), (0,)),
        "repeated_rows": tensor(storage("1", 3), 0, (4, 3), (0, 1)),
    }, {"0": float_bytes([2.5]), "1": float_bytes([1, 2, 3])})
    state = read_pytorch_zip(path)
    np.testing.assert_array_equal(state["scalar_broadcast"], np.full(5, 2.5, np.float32))
    np.testing.assert_array_equal(state["repeated_rows"], np.tile(np.float32([1, 2, 3]), (4, 1)))
    state["repeated_rows"][0, 0] = 9  # a copy, not a view of the storage or of the other rows
    assert state["repeated_rows"][1, 0] == 1
    limit = pytorch_zip.expansion_limit(4) // 4  # floats one stored float may be viewed as
    at_the_cap = write_torch_zip(tmp_path / "cap.pth", {"w": tensor(storage("0", 1), 0, (limit,), (0,))},
                                 {"0": float_bytes([2.5])})
    assert read_pytorch_zip(at_the_cap)["w"].shape == (limit,)
    over = write_torch_zip(tmp_path / "over.pth", {"w": tensor(storage("0", 1), 0, (limit + 1,), (0,))},
                           {"0": float_bytes([2.5])})
    with pytest.raises(PyTorchZipError, match="over.pth: tensor 'w'"):
        read_pytorch_zip(over)
