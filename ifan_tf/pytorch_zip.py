"""Reads a PyTorch ``torch.save`` zip checkpoint into numpy arrays without importing torch.

The zip format (PyTorch >= 1.6, the default since) holds ``<name>/data.pkl``, a pickle of the
state_dict whose tensors reference raw little-endian storages stored as ``<name>/data/<key>``.
Unpickling is restricted to an allow-list (OrderedDict, tensor and parameter rebuilders, storage
types), so a checkpoint cannot run code. The older non-zip format needs torch itself.
"""

import collections
import pickle
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 below
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _BFloat16Storage(np.ndarray):
    """Marks raw bfloat16 storage (uint16 bit patterns)."""


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    itemsize = storage.dtype.itemsize
    if not size:
        return np.array(storage[storage_offset])
    array = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=tuple(size),
                                            strides=tuple(s * itemsize for s in stride))
    array = np.array(array)  # contiguous copy
    if isinstance(storage, _BFloat16Storage):
        array = (np.asarray(array, np.uint32) << 16).view(np.float32)
    return np.asarray(array)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, archive, prefix):
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in the checkpoint (only tensors are read)")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, _numel = saved_id
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported persistent object {saved_id!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            storage = np.frombuffer(raw, dtype=storage_type.dtype)
            if storage_type.name == "BFloat16Storage":
                storage = storage.view(_BFloat16Storage)
            self.storages[key] = storage
        return self.storages[key]


def is_pytorch_zip(path):
    """True if ``path`` is a zip archive holding a ``*/data.pkl`` (the torch.save zip format)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def read_pytorch_zip(path):
    """Reads ``path`` (a ``torch.save`` zip of a dict of tensors) -> {name: ndarray} (nested dicts kept)."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(f"expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise pickle.UnpicklingError("big-endian checkpoints are not supported")
        with archive.open(pickles[0]) as handle:
            return _RestrictedUnpickler(handle, archive, prefix).load()
