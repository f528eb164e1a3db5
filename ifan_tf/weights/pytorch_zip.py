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
capped by ``max_bytes``. Views may repeat their storage (stride 0, e.g. ``expand``), so what they
materialise is capped too: each view, and all views together, at most ``VIEW_EXPANSION`` times
their storage bytes (storages under ``MIN_VIEW_BYTES`` count as that many), and all at most
``max_bytes``. Only then are the storages read, each with a bounded read, and the views copied.

``PyTorchZip`` keeps the checked file open between the two steps: its ``contents`` hold a
``TensorView`` (shape, dtype, bytes) per tensor, so a caller can compare the declared shapes
with a model's before ``read()`` allocates anything; ``read_pytorch_zip`` does both at once.
"""

import collections
import contextlib
import io
import math
import os
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
VIEW_EXPANSION = 8  # a view may materialise at most 8x the bytes of its storage ...
MIN_VIEW_BYTES = 1 << 16  # ... counting a smaller storage as 64 KiB (small stride-0 broadcasts load)


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


class TensorView:
    """A tensor declared by the pickle (checked to lie inside its storage), not read yet.

    Attributes:
      shape: its sizes (tuple of int); ``stride`` and ``offset`` in storage elements.
      dtype: the numpy dtype ``read()`` gives it (bfloat16 storages become float32).
      nbytes: the bytes its array takes once materialised (``prod(shape) * dtype.itemsize``).
    """

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def numel(self):
        return math.prod(self.size)

    @property
    def shape(self):
        return self.size

    @property
    def dtype(self):
        bfloat16 = self.storage.storage_type.name == "BFloat16Storage"
        return np.dtype(np.float32) if bfloat16 else self.storage.storage_type.dtype

    @property
    def nbytes(self):
        return self.numel * self.dtype.itemsize


def expansion_limit(storage_bytes):
    """The most bytes that views of a storage of ``storage_bytes`` bytes may materialise."""
    return VIEW_EXPANSION * max(int(storage_bytes), MIN_VIEW_BYTES)


def check_view_expansion(key, size, view_bytes, storage_bytes, stride=None):
    """Raises ``ValueError`` naming tensor ``key`` and the sizes if its view materialises more than
    ``expansion_limit(storage_bytes)`` bytes (a stride-0 view declaring far more than is stored)."""
    limit = expansion_limit(storage_bytes)
    if view_bytes > limit:
        layout = f"sizes {tuple(size)}" + (f", strides {tuple(stride)}" if stride is not None else "")
        raise ValueError(f"tensor {key!r} ({layout}) would materialise {view_bytes} bytes from a storage of "
                         f"{storage_bytes} bytes, more than the {limit} bytes a view may expand to "
                         f"({VIEW_EXPANSION} x max(storage, {MIN_VIEW_BYTES} bytes))")


def _int_tuple(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMS:
        raise ValueError(f"tensor {what} must be a tuple of at most {MAX_DIMS} integers, got {values!r:.80}")
    if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in values):
        raise ValueError(f"tensor {what} must be non-negative integers, got {tuple(values)!r:.80}")
    return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Checks a tensor view against its storage; returns a ``TensorView`` (nothing is read)."""
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
    return TensorView(storage, storage_offset, size, stride)


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


def _tensor_views(value, key=""):
    """Every ``(key, TensorView)`` inside nested dicts, lists and tuples; keys join with ``/``."""
    if isinstance(value, TensorView):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _tensor_views(item, f"{key}/{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensor_views(item, f"{key}/{index}" if key else str(index))


def _materialize(value, read_storage):
    """Replaces every ``TensorView`` by its ndarray (containers rebuilt, other values kept)."""
    if isinstance(value, TensorView):
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


_READ_ERRORS = (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, EOFError, AttributeError,
                OverflowError, RecursionError, zipfile.BadZipFile, zlib.error, NotImplementedError)


class PyTorchZip:
    """A ``torch.save`` zip, opened and checked (no tensor data read yet); use as a context manager.

    Args:
      path: the file.
      max_bytes: the most bytes its tensors may hold, stored or materialised.
    Attributes:
      contents: the unpickled object (usually a dict) with a ``TensorView`` in place of each tensor.
    Raises:
      PyTorchZipError: naming ``path``, for anything unreadable, unsupported or inconsistent (views
        outside their storage or expanding it too far, members of the wrong size, more than
        ``max_bytes``), before any tensor data is read.
    """

    def __init__(self, path, max_bytes=DEFAULT_MAX_BYTES):
        self.path = os.fspath(path)
        self._archive = None
        with self._errors():
            self._archive = zipfile.ZipFile(self.path)
            try:
                self.contents = _check_archive(self._archive, max_bytes)
            except BaseException:
                self.close()
                raise
        self._cache = {}

    def _errors(self):
        return _errors_naming(self.path)

    def views(self):
        """{key: ``TensorView``} of every tensor of ``contents`` (nested keys joined with ``/``, e.g.
        ``state_dict/conv1.weight``)."""
        return dict(_tensor_views(self.contents))

    def read(self, value=None):
        """``value`` (default: all of ``contents``; or a part of it, e.g. ``{name: TensorView}``) with
        every ``TensorView`` replaced by its ndarray (a copy; bfloat16 -> float32)."""
        with self._errors():
            return _materialize(self.contents if value is None else value, self._read_storage)

    def _read_storage(self, storage):
        if storage.member not in self._cache:
            raw = _read_member(self._archive, storage.member, storage.nbytes)
            self._cache[storage.member] = np.frombuffer(raw, dtype=storage.storage_type.dtype)
        return self._cache[storage.member]

    def close(self):
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        self._cache = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


@contextlib.contextmanager
def _errors_naming(path):
    """Turns the errors of reading ``path`` into ``PyTorchZipError(path, ...)``."""
    try:
        yield
    except PyTorchZipError:
        raise
    except _READ_ERRORS as error:
        raise PyTorchZipError(path, str(error) or type(error).__name__) from error


def read_pytorch_zip(path, max_bytes=DEFAULT_MAX_BYTES):
    """Reads ``path`` (a ``torch.save`` zip of a dict of tensors) -> {name: ndarray} (nested dicts kept).

    Raises ``PyTorchZipError`` naming ``path`` for anything unreadable, unsupported or inconsistent
    (views outside their storage or expanding it too far, members of the wrong size, more than
    ``max_bytes`` of tensors), before reading any tensor data.
    """
    with PyTorchZip(path, max_bytes) as checkpoint:
        return checkpoint.read()


def _check_archive(archive, max_bytes):
    """Unpickles ``data.pkl`` of ``archive`` and checks every size; returns it with ``TensorView``s."""
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
    loaded = _RestrictedUnpickler(io.BytesIO(pickled), archive, prefix).load()
    _check_sizes(list(_tensor_views(loaded)), max_bytes)
    return loaded


def _check_sizes(views, max_bytes):
    """Checks what the ``(key, TensorView)`` pairs store and materialise, before anything is read."""
    needed = sum(view.numel * view.storage.storage_type.dtype.itemsize for _, view in views)
    storages = {id(view.storage): view.storage for _, view in views}.values()
    stored = sum(storage.nbytes for storage in storages)
    if stored > needed:
        raise ValueError(f"the storages hold {stored} bytes, more than the {needed} bytes of the tensors declared")
    if stored > max_bytes:
        raise ValueError(f"the tensors hold {stored} bytes, more than the limit of {max_bytes} bytes")
    for key, view in views:
        check_view_expansion(key, view.size, view.nbytes, view.storage.nbytes, view.stride)
    materialised = sum(view.nbytes for _, view in views)
    if materialised > expansion_limit(stored):
        key, view = max(views, key=lambda pair: pair[1].nbytes / max(pair[1].storage.nbytes, 1))
        raise ValueError(f"the tensors would materialise {materialised} bytes from {stored} bytes of storage, more "
                         f"than {expansion_limit(stored)} bytes ({VIEW_EXPANSION} x max(storage, {MIN_VIEW_BYTES} "
                         f"bytes)); the most expanded is {key!r} (sizes {view.size}, strides {view.stride}, "
                         f"{view.nbytes} bytes from {view.storage.nbytes})")
    if materialised > max_bytes:
        raise ValueError(f"the tensors would materialise {materialised} bytes, more than the limit of {max_bytes} "
                         "bytes")
