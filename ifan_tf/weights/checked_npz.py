"""Reading ``.npz`` weight archives that are checked before they are decompressed.

``numpy.load`` trusts each member's ``.npy`` header: a member declaring a huge shape allocates it,
and a small deflated member may inflate to gigabytes. Here every member's header is read first
(``numpy.lib.format.read_magic`` / ``read_array_header_*`` on the opened member stream), its
dtype must be a plain number type and its declared size must match the member's uncompressed size
in the zip's central directory; callers may compare names and shapes with what they expect
(``read_npz_headers``) before ``read_npz`` reads any data, each member with a bounded read.
"""

import dataclasses
import math
import zipfile
import zlib

import numpy as np

DEFAULT_MAX_BYTES = 1 << 29  # 512 MiB of arrays: ~50x the released IFAN weights
_MAX_HEADER_BYTES = 10000  # numpy's own default limit for .npy headers
_PLAIN_KINDS = "biuf"  # bool, signed, unsigned, float


class NpzError(ValueError):
    """An ``.npz`` that cannot be read safely; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """What an ``.npz`` member's header declares: array ``shape`` and ``dtype``, where the data starts."""

    member: str
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(archive, info, path):
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream, _MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream, _MAX_HEADER_BYTES)
        else:
            raise NpzError(f"{path}: member {info.filename} has unsupported .npy version {version}")
        offset = stream.tell()
    header = NpyHeader(info.filename, tuple(shape), dtype, bool(fortran_order), offset)
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _PLAIN_KINDS:
        raise NpzError(f"{path}: member {info.filename} holds dtype {dtype}, not plain numbers")
    if info.file_size != offset + header.nbytes:
        raise NpzError(f"{path}: member {info.filename} declares shape {header.shape} {dtype} ({header.nbytes} bytes) "
                       f"but holds {info.file_size - offset} bytes of data")
    return header


def read_npz_headers(path):
    """{array name: ``NpyHeader``} of the ``.npz`` at ``path``; reads headers only, never array data.

    Raises ``NpzError`` naming ``path`` for a non-zip, a member that is not ``NAME.npy``, a
    duplicate name, an unreadable header, a non-numeric dtype or a declared size that differs
    from the member's size.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise NpzError(f"{path}: member {info.filename!r} is not an .npy array")
                name = info.filename[: -len(".npy")]
                if name in headers:
                    raise NpzError(f"{path}: array {name!r} is stored twice")
                headers[name] = _read_header(archive, info, path)
            return headers
    except NpzError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise NpzError(f"{path}: not a readable .npz ({error})") from error


def read_npz(path, headers=None, max_bytes=DEFAULT_MAX_BYTES):
    """Reads the arrays of ``path`` -> {name: ndarray} after checking their headers.

    Args:
      path: the ``.npz`` file.
      headers: ``read_npz_headers(path)`` when the caller already checked them (else read here).
      max_bytes: refuse archives whose arrays declare more bytes in total.
    Raises:
      ``NpzError`` naming ``path``; nothing larger than the declared arrays is ever allocated.
    """
    headers = read_npz_headers(path) if headers is None else headers
    total = sum(header.nbytes for header in headers.values())
    if total > max_bytes:
        raise NpzError(f"{path}: its arrays declare {total} bytes, more than the limit of {max_bytes} bytes")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name, header in headers.items():
                with archive.open(header.member) as stream:
                    stream.read(header.data_offset)
                    data = stream.read(header.nbytes)
                    if len(data) != header.nbytes or stream.read(1):
                        raise NpzError(f"{path}: member {header.member} does not hold the {header.nbytes} bytes "
                                       "its header declares")
                order = "F" if header.fortran_order else "C"
                arrays[name] = np.frombuffer(data, header.dtype).reshape(header.shape, order=order)
    except NpzError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise NpzError(f"{path}: not a readable .npz ({error})") from error
    return arrays
