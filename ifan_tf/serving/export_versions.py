"""TF Serving versions under one export base: reserved before use, published atomically, crash-safe.

Several exports may run at once on the same ``EXPORT_DIR`` and any of them may be killed (even
``kill -9``) at any moment. The rules:

- **Reservation.** A version ``N`` belongs to the process holding an exclusive ``flock`` on
  ``EXPORT_DIR/.tmp-N.lock``. The lock file is created already locked (a private file is locked,
  then hard-linked to that name, which fails if it exists), so two processes never hold ``N``.
  The next free version is one more than the largest published version or reserved lock.
- **Staging and publishing** are the project's one directory publish (``ifan_tf.io.atomic_write``):
  the SavedModel is written to ``EXPORT_DIR/.N.tmp-<pid>-<random>`` (``make_staging_directory``;
  TF Serving ignores names that are not numbers) and renamed to ``EXPORT_DIR/N``; replacing an
  existing version (``overwrite``) swaps the two folders atomically (``publish_directory``). At
  every instant ``EXPORT_DIR/N`` is either the old or the new complete SavedModel.
- **Cleanup.** Every export first removes what dead exports left: lock files nobody holds, and
  (``atomic_write.recover_directory``) staging folders of dead processes, putting back a version
  that an interrupted replace left aside.
"""

import fcntl
import os
import re

from absl import logging

from ifan_tf.io import atomic_write

STAGING_PREFIX = ".tmp-"
_LOCK = re.compile(r"^\.tmp-(?P<version>\d+)\.lock$")
_PRIVATE_LOCK = re.compile(r"^\.tmp-(?P<version>\d+)\.lock\.(?P<pid>\d+)\.")


def existing_versions(export_dir):
    """Sorted integer version numbers of the SavedModels under ``export_dir``."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


class VersionReservation:
    """Holds version ``version`` of ``export_dir`` until ``release()`` (also a context manager)."""

    def __init__(self, export_dir, version, descriptor):
        self.export_dir, self.version, self._descriptor = export_dir, version, descriptor
        self.lock_path = os.path.join(export_dir, f"{STAGING_PREFIX}{version}.lock")
        self.target = os.path.join(export_dir, str(version))

    def make_staging_directory(self):
        """A new empty hidden ``.<version>.tmp-<pid>-<random>`` folder (``atomic_write``)."""
        return atomic_write.make_staging_directory(self.target)

    def publish(self, staging, overwrite=False):
        """Moves the complete ``staging`` folder to ``export_dir/<version>`` (see the module docstring)."""
        if os.path.exists(self.target) and not overwrite:
            raise FileExistsError(f"{self.target}: version {self.version} already exists")
        atomic_write.publish_directory(staging, self.target)

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
    """Removes what dead exports left in ``export_dir``; returns the names removed.

    Unheld ``.tmp-N.lock`` files and private ``.tmp-N.lock.<pid>.*`` files of processes that are
    not running; then, per version, ``atomic_write.recover_directory`` (staging folders of dead
    processes, and a version an interrupted replace left aside is put back).
    """
    cleaned = []
    names = sorted(os.listdir(export_dir))
    for name in names:
        path = os.path.join(export_dir, name)
        if _LOCK.match(name):
            if _remove_stale_lock(path):
                cleaned.append(name)
            continue
        private = _PRIVATE_LOCK.match(name)
        if private and not atomic_write.process_alive(int(private["pid"])):
            os.unlink(path)
            cleaned.append(name)
    versions = {match["name"] for match in map(atomic_write.LEFTOVER_PATTERN.match, names)
                if match and match["name"].isdigit()}
    for version in sorted(versions):
        cleaned += [os.path.basename(p) for p in atomic_write.recover_directory(os.path.join(export_dir, version))]
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
