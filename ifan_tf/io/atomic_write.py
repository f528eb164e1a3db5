"""Atomic writes: a file or a directory is built under a temporary name and renamed into place,
so a crash never leaves a half-written output behind."""

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import tempfile

from absl import logging

# Leftovers of a directory publish are hidden siblings of the target named after it and after
# the process that made them: ".NAME.tmp-PID-RANDOM" (staging: being written, or after the swap,
# the old contents), ".NAME.new-PID-RANDOM" (complete, about to replace the target) and
# ".NAME.old-PID-RANDOM" (the old target moved aside). Those of dead processes are cleaned up.
LEFTOVER_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|new|old)-(?P<pid>\d+)-[0-9a-z_]+$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange_paths(first, second):
    """Atomically swaps two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # kernel or filesystem without the flag: the caller falls back to two renames
    raise OSError(code, f"cannot swap {first} and {second}: {os.strerror(code)}")


def process_alive(pid):
    """Whether process ``pid`` exists on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _sibling(target, kind):
    """A fresh hidden sibling name ``.NAME.KIND-PID-RANDOM`` of ``target`` (not created)."""
    parent, name = os.path.split(os.path.abspath(target))
    return os.path.join(parent, f".{name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}")


def recover_directory(target):
    """Finishes or undoes a publish of ``target`` that a killed process left half done, and cleans up.

    Looks at the hidden siblings of ``target`` made by processes that are no longer alive: when
    ``target`` is missing (killed between moving the old one aside and renaming the new one in),
    a complete new directory (``.new-``) is renamed into place, else the old one (``.old-``) is
    put back; then every leftover of a dead process is deleted. Returns the paths deleted.
    Safe to call at any time, also while other processes publish (their leftovers are kept).
    """
    target = os.path.abspath(os.fspath(target))
    parent, name = os.path.split(target)
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return []
    stale = {"tmp": [], "new": [], "old": []}
    for entry in sorted(entries):
        match = LEFTOVER_PATTERN.match(entry)
        if match and match["name"] == name and not process_alive(int(match["pid"])):
            stale[match["kind"]].append(os.path.join(parent, entry))
    if not os.path.lexists(target):
        for candidate in stale["new"] + stale["old"]:  # roll forward if the new one is complete, else back
            os.rename(candidate, target)
            logging.warning("%s: restored from %s left by an interrupted publish", target, candidate)
            stale["new" if candidate in stale["new"] else "old"].remove(candidate)
            break
    removed = stale["tmp"] + stale["new"] + stale["old"]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        logging.info("removed %s left by an interrupted publish of %s", path, target)
    return removed


def make_staging_directory(target):
    """Creates and returns an empty hidden sibling of ``target`` with the usual permissions (umask).

    First cleans up what killed earlier publishes of ``target`` left behind (``recover_directory``).
    """
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    recover_directory(target)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(target))}.tmp-{os.getpid()}-",
                               dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private
    return staging


def publish_directory(staging, target):
    """Renames the complete ``staging`` directory to ``target``, replacing an existing ``target``.

    Crash safety (kill -9 at any moment): with an existing ``target`` the two are swapped in one
    atomic ``renameat2(RENAME_EXCHANGE)`` and the old contents deleted afterwards, so ``target``
    is always the complete old or the complete new directory. Where the swap is unsupported, the
    complete ``staging`` is first renamed ``.NAME.new-PID-*``, the old ``target`` moved aside to
    ``.NAME.old-PID-*`` and the new one renamed in; a kill between the last two renames leaves
    no ``target`` for a moment, which ``recover_directory`` (called by the next
    ``make_staging_directory`` and by loaders) completes. Leftovers of dead processes are removed
    by ``recover_directory``.
    """
    target = os.path.abspath(os.fspath(target))
    if os.path.lexists(target):
        if exchange_paths(staging, target):
            shutil.rmtree(staging)  # now holds the old contents
            return
        ready = _sibling(target, "new")
        os.rename(staging, ready)
        previous = _sibling(target, "old")
        os.rename(target, previous)
        os.rename(ready, target)
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
