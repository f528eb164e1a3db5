"""The torch-free reader of torch.save zip files, on a file written by real torch (tests/model/data)."""

import pickle
import zipfile

import numpy as np
import pytest

from ifan_tf.pytorch_zip import is_pytorch_zip, read_pytorch_zip
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
