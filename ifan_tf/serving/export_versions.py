"""TF Serving versions under one export base: reserved before use, published atomically, crash-safe.

Several exports may run at once on the same ``EXPORT_DIR`` and any of them may be killed (even
``kill -9``) at any moment. The rules:

- **Reservation.** A version ``N`` belongs to the process holding an exclusive ``flock`` on
  ``EXPORT_DIR/.tmp-N.lock``. The lock file is created already locked (a private file is locked,
  then hard-linked to that name, which fails if it exists), so two processes never hold ``N``.
  The next free version is one more than the largest published version or reserved lock.
- **Staging.** The SavedModel is written to ``EXPORT_DIR/.tmp-N-<pid>-<random>``; TF Serving
  ignores names that are not numbers.
- **Publishing** is a single ``rename`` to ``EXPORT_DIR/N``; replacing an existing version
  (``overwrite``) atomically exchanges the two folders (``renameat2(RENAME_EXCHANGE)``) and then
  deletes the old one. At every instant ``EXPORT_DIR/N`` is either the old or the new complete
  SavedModel. (On a file system without exchange, ``atomic_write.publish_directory`` is used; if
  a crash leaves the old version aside, the next export puts it back.)
- **Cleanup.** Every export first removes what dead exports left: lock files nobody holds and
  ``.tmp-*`` entries whose process id is no longer running.
"""

import ctypes
import errno
import fcntl
import os
import re
import shutil
import tempfile

from absl import logging

from ifan_tf.atomic_write import publish_directory

STAGING_PREFIX = ".tmp-"
_LOCK = re.compile(r"^\.tmp-(?P<version>\d+)\.lock$")
_OWNED = re.compile(r"^\.tmp-(?P<version>\d+)(\.lock\.|-)(?P<pid>\d+)[.-]")  # private lock files, staging
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def existing_versions(export_dir):
    """Sorted integer version numbers of the SavedModels under ``export_dir``."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class VersionReservation:
    """Holds version ``version`` of ``export_dir`` until ``release()`` (also a context manager)."""

    def __init__(self, export_dir, version, descriptor):
        self.export_dir, self.version, self._descriptor = export_dir, version, descriptor
        self.lock_path = os.path.join(export_dir, f"{STAGING_PREFIX}{version}.lock")
        self.target = os.path.join(export_dir, str(version))

    def make_staging_directory(self):
        """A new empty ``.tmp-<version>-<pid>-<random>`` folder (permissions from the umask)."""
        staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{self.version}-{os.getpid()}-", dir=self.export_dir)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        return staging

    def publish(self, staging, overwrite=False):
        """Moves the complete ``staging`` folder to ``export_dir/<version>`` (see the module docstring)."""
        if not os.path.exists(self.target):
            os.rename(staging, self.target)
            return
        if not overwrite:
            raise FileExistsError(f"{self.target}: version {self.version} already exists")
        if _exchange(staging, self.target):
            shutil.rmtree(staging)  # now holds the previous version
        else:
            publish_directory(staging, self.target)

    def release(self):
        if self._descriptor is None:
            return
        try:
            os.unlink(self.lock_path)  # still ours: nobody removes a lock file that is held
        except FileNotFoundError:
            pass
        os.close(self._descriptor)  # closing releases the flock
        self._descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _exchange(first, second):
    """Atomically swaps two paths with ``renameat2(RENAME_EXCHANGE)``; False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot exchange {first} and {second}: {os.strerror(code)}")


def _try_reserve(export_dir, version):
    """A ``VersionReservation`` for ``version``, or None when another live process holds it."""
    lock_path = os.path.join(export_dir, f"{STAGING_PREFIX}{version}.lock")
    private = os.path.join(export_dir, f"{STAGING_PREFIX}{version}.lock.{os.getpid()}.{os.urandom(4).hex()}")
    descriptor = os.open(private, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        try:
            os.link(private, lock_path)  # atomic: fails if the version's lock exists
        except FileExistsError:
            os.close(descriptor)
            return None
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        os.unlink(private)
    return VersionReservation(export_dir, version, descriptor)


def _remove_stale_lock(path):
    """Removes the lock file ``path`` if no process holds it; True if removed or already gone."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live export holds it
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                os.unlink(path)
        except FileNotFoundError:
            pass
        return True
    finally:
        os.close(descriptor)


def clean_stale_entries(export_dir):
    """Removes what dead exports left in ``export_dir``; returns the names removed or restored.

    Unheld ``.tmp-N.lock`` files, and ``.tmp-N-<pid>-*`` / ``.tmp-N.lock.<pid>.*`` entries of
    processes that are not running. An old version moved aside by an interrupted replace
    (``...old``) is put back when ``N`` is missing.
    """
    cleaned, held = [], set()
    names = sorted(os.listdir(export_dir))
    for name in names:
        lock = _LOCK.match(name)
        if lock:
            if _remove_stale_lock(os.path.join(export_dir, name)):
                cleaned.append(name)
            else:
                held.add(lock["version"])
    for name in names:
        path = os.path.join(export_dir, name)
        match = _OWNED.match(name)
        # a held lock protects its staging even from another PID namespace sharing the folder
        if not match or match["version"] in held or _process_alive(int(match["pid"])):
            continue
        target = os.path.join(export_dir, match["version"])
        if name.endswith(".old") and os.path.isdir(path) and not os.path.exists(target):
            os.rename(path, target)
            logging.warning("%s: restored version %s moved aside by an interrupted export", target, match["version"])
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
        cleaned.append(name)
    if cleaned:
        logging.info("%s: removed leftovers of interrupted exports: %s", export_dir, ", ".join(cleaned))
    return cleaned


def reserve_version(export_dir, version=None):
    """Reserves ``version`` (or the next free one) of ``export_dir``; returns a ``VersionReservation``.

    Raises FileExistsError when an explicit ``version`` is being exported by another process.
    """
    os.makedirs(export_dir, exist_ok=True)
    clean_stale_entries(export_dir)
    if version is not None:
        reservation = _try_reserve(export_dir, version)
        if reservation is None:
            raise FileExistsError(f"{os.path.join(export_dir, str(version))}: version {version} is being exported "
                                  "by another process right now")
        return reservation
    reserved = [int(m["version"]) for m in map(_LOCK.match, os.listdir(export_dir)) if m]
    candidate = max(existing_versions(export_dir) + reserved, default=0) + 1
    while True:
        reservation = _try_reserve(export_dir, candidate)
        if reservation is not None:
            if not os.path.exists(reservation.target):
                return reservation
            reservation.release()
        candidate += 1
