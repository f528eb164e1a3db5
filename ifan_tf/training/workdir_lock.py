"""One process at a time per work directory: an advisory lock that a crashed run cannot leave stuck.

``WorkdirLock(workdir)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``WORKDIR/.lock``. The
kernel releases the lock when the process ends, however it ends (``kill -9`` included), so a
stale lock file never blocks the next run: only a live holder does. The file keeps the holder's
pid, host and start time so that the refusal can name it. Local file systems and NFSv4 honour
``flock``; on others the lock may be a no-op (then nothing is refused, as before).
"""

import errno
import fcntl
import json
import os
import socket
import time

LOCK_FILE = ".lock"


class WorkdirInUseError(RuntimeError):
    """Another live process holds the work directory's lock."""


class WorkdirLock:
    """Exclusive lock of a work directory for the lifetime of a ``with`` block.

    Args:
      workdir: the directory (created if missing).
      purpose: what the holder does, for the messages (e.g. ``"training"``).
    Raises (on ``__enter__``):
      WorkdirInUseError: naming the directory, the lock file and the holder.
    """

    def __init__(self, workdir, purpose="training"):
        self.path = os.path.join(os.fspath(workdir), LOCK_FILE)
        self.purpose = purpose
        self._descriptor = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise WorkdirInUseError(
                f"{os.path.dirname(self.path)} is in use by another {holder.get('purpose', 'run')} "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}; "
                f"lock {self.path}): wait for it to finish, stop it, or use another --workdir") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc_info):
        if self._descriptor is not None:
            os.close(self._descriptor)  # releases the lock; the file stays (harmless, reused next time)
            self._descriptor = None
        return False


def _read_holder(descriptor):
    try:
        return json.loads(os.pread(descriptor, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
