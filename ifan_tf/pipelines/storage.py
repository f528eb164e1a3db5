"""Reading and writing whole files from Beam workers, through Beam's FileSystems, atomically.

Paths are strings: a local path, or a URL of a filesystem Beam knows (``gs://`` with
``apache-beam[gcp]``, ``s3://`` with ``apache-beam[aws]``, ...). Local paths go through the
project's own checked code: ``image_io.read_file_bytes`` (regular files only, bounded size and read,
so a FIFO or ``/dev/zero`` behind a link cannot hang or exhaust a worker) and
``atomic_write.atomic_write_bytes`` (temporary name in the same folder, fsync, rename). Other paths
go through ``FileSystems``: reads are bounded by the listed size, writes go to a hidden temporary
name in the same folder and are renamed into place.

Every write is idempotent: the final name only ever holds a complete file, and a retried bundle
that writes the same bytes again leaves the same file. Every error names the path.
"""
from __future__ import annotations

import os
import posixpath
import uuid

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from ifan_tf.io import atomic_write, image_io, input_files

_UNCOMPRESSED = CompressionTypes.UNCOMPRESSED


def is_local(path: str) -> bool:
    """True for a path on this machine's filesystem (no ``scheme://`` prefix)."""
    return "://" not in path


def join(folder: str, relative: str) -> str:
    """``folder/relative`` with ``/`` separators for URLs, ``os.path.join`` for local paths."""
    if is_local(folder):
        return os.path.join(folder, *relative.split("/"))
    return folder.rstrip("/") + "/" + relative


def parent(path: str) -> str:
    """The folder holding ``path``."""
    return os.path.dirname(path) if is_local(path) else posixpath.dirname(path)


def exists(path: str) -> bool:
    """Whether ``path`` exists (a file, or a local folder or link)."""
    if is_local(path):
        return os.path.lexists(path)
    return FileSystems.exists(path)


def read_bytes(path: str, size: int | None = None, max_bytes: int | None = None) -> bytes:
    """All bytes of the file ``path``, at most ``max_bytes`` (None: ``input_files.MAX_INPUT_BYTES``).

    ``size`` is the size listed by ``MatchFiles`` (used for URLs, where the read is bounded by it).
    Raises ``image_io.ImageFileError`` naming the file when it is missing, not a regular file, too
    large, unreadable, or changes size while it is read.
    """
    limit = input_files.MAX_INPUT_BYTES if max_bytes is None else max_bytes
    if is_local(path):
        return image_io.read_file_bytes(path, limit)
    if size is not None and size > limit:
        raise image_io.ImageFileError(f"{path}: {size} bytes is more than the limit of {limit} bytes for an input file")
    try:
        with FileSystems.open(path, compression_type=_UNCOMPRESSED) as stream:
            data = stream.read(limit + 1)
    except Exception as error:  # noqa: BLE001 - any filesystem's error becomes a message naming the file
        raise image_io.ImageFileError(f"{path}: cannot read file ({type(error).__name__}: {error})") from None
    if len(data) > limit:
        raise image_io.ImageFileError(f"{path}: more than the limit of {limit} bytes for an input file")
    if size is not None and len(data) != size:
        raise image_io.ImageFileError(f"{path}: read {len(data)} bytes, the listing said {size} (file changed?)")
    return data


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` never holds a partial file; creates local folders.

    Local: ``atomic_write.atomic_write_bytes`` (``.NAME.PID.RANDOM.tmp`` beside it, fsync, rename).
    URLs: a hidden ``.NAME.RANDOM.tmp`` beside it through ``FileSystems.create``, then
    ``FileSystems.rename`` (object stores publish an object only when it is closed, so the final
    name is never partial there either). The temporary name is unique per attempt, so two attempts
    of one bundle (a retry, or a speculative copy) never write into each other's file.
    """
    if is_local(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write.atomic_write_bytes(path, data)
        return
    folder, name = posixpath.split(path)
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        with FileSystems.create(temporary, compression_type=_UNCOMPRESSED) as stream:
            stream.write(data)
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([temporary], [path])
    except Exception as error:  # noqa: BLE001 - any filesystem's error becomes a message naming the file
        try:
            if FileSystems.exists(temporary):
                FileSystems.delete([temporary])
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise OSError(f"{path}: cannot write file ({type(error).__name__}: {error})") from None


def read_text(path: str) -> str:
    """A small text file (UTF-8) from any filesystem, e.g. a dead-letter file."""
    with FileSystems.open(path, compression_type=_UNCOMPRESSED) as stream:
        return stream.read().decode("utf-8")
