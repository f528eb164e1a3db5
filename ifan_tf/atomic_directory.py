"""Publishing a directory atomically: build it under a temporary sibling, then rename it into place."""

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
