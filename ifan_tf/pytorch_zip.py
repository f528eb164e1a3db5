"""Reads a PyTorch ``torch.save`` zip checkpoint into numpy arrays without importing torch.

The zip format (PyTorch >= 1.6, the default since) holds ``<name>/data.pkl``, a pickle of the
state_dict whose tensors reference raw little-endian storages stored as ``<name>/data/<key>``.
Unpickling is restricted to an allow-list (OrderedDict, tensor and parameter rebuilders, storage
types), so a checkpoint cannot run code. The older non-zip format needs torch itself.

Nothing in the file is trusted before it is checked, and nothing is read or allocated before the
check: unpickling only records each storage (type, element count) and each tensor view
(storage offset, sizes, strides); every view is checked to lie inside its storage, every
storage's zip member must hold exactly ``numel * itemsize`` bytes according to the zip's central
directory, the storages read may not exceed what the declared tensors need, and the total is
capped by ``max_bytes``. Only then are the storages read, each with a bounded read.
"""

import collections
import io
import math
import pickle
import zipfile
import zlib

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 below
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
DEFAULT_MAX_BYTES = 1 << 29  # 512 MiB of tensor data: ~50x the released IFAN weights
MAX_PICKLE_BYTES = 16 << 20  # the state_dict pickle itself (a few KB for IFAN)
MAX_DIMS = 32


class PyTorchZipError(pickle.UnpicklingError, ValueError):
    """A ``torch.save`` zip that cannot be read safely; the message names the file and the problem."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _StorageRef:
    """A storage declared by the pickle, not read yet: zip member, dtype and element count."""

    def __init__(self, member, storage_type, numel):
        self.member, self.storage_type, self.numel = member, storage_type, numel

    @property
    def nbytes(self):
        return self.numel * self.storage_type.dtype.itemsize


class _TensorRef:
    """A tensor view declared by the pickle (checked to lie inside its storage), not read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def numel(self):
        return math.prod(self.size)


def _int_tuple(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMS:
        raise ValueError(f"tensor {what} must be a tuple of at most {MAX_DIMS} integers, got {values!r:.80}")
    if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in values):
        raise ValueError(f"tensor {what} must be non-negative integers, got {tuple(values)!r:.80}")
    return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Checks a tensor view against its storage; returns a ``_TensorRef`` (nothing is read)."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _StorageRef):
        raise ValueError(f"a tensor is built on {type(storage).__name__}, not on a storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise ValueError(f"tensor storage offset must be a non-negative integer, got {storage_offset!r:.80}")
    size, stride = _int_tuple(size, "sizes"), _int_tuple(stride, "strides")
    if len(size) != len(stride):
        raise ValueError(f"tensor sizes {size} and strides {stride} differ in length")
    numel = math.prod(size)
    last = storage_offset + sum((extent - 1) * step for extent, step in zip(size, stride)) if numel else -1
    if numel and last >= storage.numel or storage_offset > storage.numel:
        raise ValueError(f"tensor view (offset {storage_offset}, sizes {size}, strides {stride}) reaches element "
                         f"{max(last, storage_offset)} of storage {storage.member} holding {storage.numel} elements")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the allow-listed objects; storages become ``_StorageRef`` after a size check."""

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
        if not isinstance(saved_id, tuple) or len(saved_id) != 5:
            raise pickle.UnpicklingError(f"unsupported persistent object {saved_id!r:.80}")
        kind, storage_type, key, _location, numel = saved_id
        if kind != "storage" or not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"unsupported persistent object {saved_id!r:.80}")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise ValueError(f"storage {key!r:.40} declares {numel!r:.40} elements")
        if key in self.storages:
            stored = self.storages[key]
            if (stored.storage_type.name, stored.numel) != (storage_type.name, numel):
                raise ValueError(f"storage {key!r:.40} is declared twice, differently")
            return stored
        member = f"{self.prefix}/data/{key}"
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise ValueError(f"storage member {member!r:.80} is missing from the archive") from None
        storage = _StorageRef(member, storage_type, numel)
        if info.file_size != storage.nbytes:
            raise ValueError(f"storage {member} declares {numel} {storage_type.name} elements ({storage.nbytes} "
                             f"bytes), its zip member holds {info.file_size} bytes")
        self.storages[key] = storage
        return storage


def _tensor_refs(value):
    """Every ``_TensorRef`` inside nested dicts, lists and tuples."""
    if isinstance(value, _TensorRef):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensor_refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensor_refs(item)


def _materialize(value, read_storage):
    """Replaces every ``_TensorRef`` by its ndarray (containers rebuilt, other values kept)."""
    if isinstance(value, _TensorRef):
        storage = read_storage(value.storage)
        itemsize = storage.dtype.itemsize
        if not value.size:
            array = np.array(storage[value.offset])
        else:
            array = np.array(np.lib.stride_tricks.as_strided(  # the view was checked to lie inside the storage
                storage[value.offset:], shape=value.size, strides=tuple(s * itemsize for s in value.stride)))
        if value.storage.storage_type.name == "BFloat16Storage":
            array = (np.asarray(array, np.uint32) << 16).view(np.float32)
        return array
    if isinstance(value, dict):
        result = type(value)() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            result[key] = _materialize(item, read_storage)
        return result
    if isinstance(value, list):
        return [_materialize(item, read_storage) for item in value]
    if isinstance(value, tuple):
        return tuple(_materialize(item, read_storage) for item in value)
    return value


def _read_member(archive, name, nbytes):
    """Exactly ``nbytes`` of zip member ``name``, read without inflating more than that."""
    with archive.open(name) as stream:
        data = stream.read(nbytes)
        if len(data) != nbytes or stream.read(1):
            raise ValueError(f"zip member {name} does not hold the {nbytes} bytes its header declares")
    return data


def is_pytorch_zip(path):
    """True if ``path`` is a zip archive holding a ``*/data.pkl`` (the torch.save zip format)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def read_pytorch_zip(path, max_bytes=DEFAULT_MAX_BYTES):
    """Reads ``path`` (a ``torch.save`` zip of a dict of tensors) -> {name: ndarray} (nested dicts kept).

    Raises ``PyTorchZipError`` naming ``path`` for anything unreadable, unsupported or inconsistent
    (views outside their storage, members of the wrong size, more than ``max_bytes`` of tensors),
    before reading any tensor data.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_archive(archive, max_bytes)
    except PyTorchZipError:
        raise
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, EOFError, AttributeError,
            OverflowError, RecursionError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise PyTorchZipError(path, str(error) or type(error).__name__) from error


def _read_archive(archive, max_bytes):
    pickles = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise pickle.UnpicklingError(f"expected one data.pkl in the archive, found {len(pickles)}")
    prefix = pickles[0].filename[: -len("/data.pkl")]
    byteorder = f"{prefix}/byteorder"
    if byteorder in archive.namelist() and _read_member(
            archive, byteorder, min(archive.getinfo(byteorder).file_size, 16)).strip() != b"little":
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise ValueError(f"{pickles[0].filename} is {pickles[0].file_size} bytes, more than a state_dict's "
                         f"{MAX_PICKLE_BYTES}")
    pickled = _read_member(archive, pickles[0].filename, pickles[0].file_size)
    unpickler = _RestrictedUnpickler(io.BytesIO(pickled), archive, prefix)
    loaded = unpickler.load()
    tensors = list(_tensor_refs(loaded))
    needed = sum(tensor.numel * tensor.storage.storage_type.dtype.itemsize for tensor in tensors)
    storages = {id(tensor.storage): tensor.storage for tensor in tensors}.values()
    stored = sum(storage.nbytes for storage in storages)
    if stored > needed:
        raise ValueError(f"the storages hold {stored} bytes, more than the {needed} bytes of the tensors declared")
    if stored > max_bytes:
        raise ValueError(f"the tensors hold {stored} bytes, more than the limit of {max_bytes} bytes")
    cache = {}

    def read_storage(storage):
        if storage.member not in cache:
            raw = _read_member(archive, storage.member, storage.nbytes)
            cache[storage.member] = np.frombuffer(raw, dtype=storage.storage_type.dtype)
        return cache[storage.member]

    return _materialize(loaded, read_storage)
