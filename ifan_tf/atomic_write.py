"""Atomic writes: a file or a directory is built under a temporary name and renamed into place,
so a crash never leaves a half-written output behind."""

import json
import os
import shutil
import tempfile


def make_staging_directory(target):
    """Creates and returns an empty hidden sibling of ``target`` with the usual permissions (umask)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private
    return staging


def publish_directory(staging, target):
    """Renames the complete ``staging`` directory to ``target``, replacing an existing ``target``.

    The old ``target`` is moved aside first and deleted only after the new one is in place, so a
    reader never sees a half-written directory.
    """
    if os.path.exists(target):
        previous = f"{staging}.old"
        os.rename(target, previous)
        os.rename(staging, target)
        shutil.rmtree(previous)
    else:
        os.rename(staging, target)


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` via ``.<name>.<pid>.<random>.tmp`` in the same folder and a rename.

    The folder must exist; the temporary file is removed if writing fails.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json_atomic(path, document, *, sort_keys=False, allow_nan=True, make_parents=True):
    """Writes ``document`` as indented JSON (UTF-8, trailing newline) to ``path`` atomically.

    Args:
      path: the JSON file.
      document: a JSON-serialisable object.
      sort_keys: sort the keys of every mapping (deterministic files).
      allow_nan: False refuses NaN/Infinity (``ValueError``) so the file stays strict JSON.
      make_parents: create the folder of ``path`` if it is missing.
    """
    text = json.dumps(document, indent=2, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    if make_parents:
        os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))
