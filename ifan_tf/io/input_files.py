"""Reading input files that a user (or a stranger) points us at, without hanging or reading forever.

Every file is checked BEFORE it is opened: it must be a regular file (not a FIFO, which would
block ``open``, not a device such as ``/dev/zero`` or ``/dev/random`` behind a symlink, which
would never end, not a socket or a directory named like an image) no larger than a byte limit.
The open itself is non-blocking and the check is repeated on the open descriptor (the path may
have been swapped in between), and reads are bounded by the size seen then: a file that grows
while it is read is refused instead of filling memory.
"""

import os
import stat

MAX_INPUT_BYTES = 1 << 30  # 1 GiB: far above any encoded photo, far below what would exhaust memory


class InputFileError(ValueError):
    """An input file is missing, of a special type, too large or unreadable (the message names it)."""


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _limit(max_bytes):
    return MAX_INPUT_BYTES if max_bytes is None else max_bytes


def _check(path, info, max_bytes):
    max_bytes = _limit(max_bytes)
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{path}: is {_kind(info.st_mode)}, not a regular file; skipped")
    if info.st_size > max_bytes:
        raise InputFileError(f"{path}: {info.st_size} bytes is more than the limit of {max_bytes} bytes "
                             "for an input file")


def check_regular_file(path, max_bytes=None):
    """``os.stat_result`` of ``path`` (symlinks followed) if it is a regular file of at most ``max_bytes``.

    Raises ``InputFileError`` naming the file otherwise; never opens it. ``max_bytes`` None means
    ``MAX_INPUT_BYTES`` (looked up at call time).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file (or a broken symlink)") from None
    except OSError as error:
        raise InputFileError(f"{path}: cannot read file ({error.strerror or error})") from None
    _check(path, info, max_bytes)
    return info


def open_regular_file(path, max_bytes=None):
    """A binary file object for reading ``path``, after ``check_regular_file``; the caller closes it.

    The descriptor is opened non-blocking (a FIFO swapped in after the check does not hang) and
    checked again with ``fstat``. Its ``size`` attribute is the file's size at that moment.
    """
    check_regular_file(path, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise InputFileError(f"{path}: cannot open file ({error.strerror or error})") from None
    try:
        info = os.fstat(descriptor)
        _check(path, info, max_bytes)
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    handle.size = info.st_size  # io.BufferedReader accepts new attributes
    return handle


def read_regular_file(path, max_bytes=None):
    """All bytes of a regular file of at most ``max_bytes`` (None: ``MAX_INPUT_BYTES``); ``InputFileError`` otherwise."""
    with open_regular_file(path, max_bytes) as handle:
        try:
            data = handle.read(handle.size + 1)
        except OSError as error:
            raise InputFileError(f"{path}: cannot read file ({error.strerror or error})") from None
    if len(data) > handle.size:
        raise InputFileError(f"{path}: the file grew while it was read; skipped")
    return data

