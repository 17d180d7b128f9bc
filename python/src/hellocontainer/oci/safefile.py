"""Opening and reading files that anyone may have put there, without blocking or growing.

Layout files, spec files and a target's passwd all come from outside: a FIFO must not hang us,
/dev/zero must not fill memory, and what is checked must be what is read. These primitives
decide on the open descriptor (fstat after O_NONBLOCK) and read with a cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import LayoutError, os_error_message

CHUNK = 1 << 20  # read and inflate 1 MiB at a time: memory does not grow with a blob's size

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link",
          stat.S_IFREG: "a regular file"}  # `validate FILE`: "layout FILE is a regular file"


def file_kind(mode: int) -> str:
    """What a file of this st_mode is, in words: "a FIFO", "a directory", ..."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: Path, what: str, follow: bool = True) -> int:
    """A read-only descriptor of `path`, refusing (without blocking) anything but a regular file.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; fstat on the
    open descriptor then decides, so the check and the read concern the same file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise LayoutError(os_error_message(error, what)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LayoutError(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_bounded(fd: int, cap: int, what: str) -> bytes:
    """At most `cap` bytes of an open file; more is an error, so /dev/zero-like input cannot grow us."""
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            part = os.read(fd, min(CHUNK, cap + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
            if total > cap:
                raise LayoutError(f"{what} is larger than {cap >> 20} MiB, the limit for this file")
    except OSError as error:
        raise LayoutError(os_error_message(error, what)) from None
    finally:
        os.close(fd)
    return b"".join(parts)
