"""Paths inside a rootfs being built, reached without ever following a link.

The hard problem is that a layer is untrusted input that writes to our disk. A tar entry may
name `../../etc/passwd`, or a layer may first plant `lib -> /etc` and then write `lib/passwd`
through it. So no path is ever handed to the kernel whole: every entry is reached by opening
its parent directories one component at a time with O_NOFOLLOW, relative to a descriptor of
the root, and the final name is created with *at() calls on the parent's descriptor. A symbolic
link already in the tree is data for the container to interpret later, never a way for us to
reach anything; an entry whose path goes through one is refused.

Layers list a directory before what it holds, so the directory of the last entry is kept open
(the cursor): the next entry in the same directory, or one level below it, costs one open at
most, not one per component of its path, and a tree thousands deep is built in linear time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import LayoutError
from ..oci.entries import through
from ..store.fdwalk import DIR_FLAGS, lstat_at

BUILD_DIR_MODE = 0o700  # while extracting: ours to write into, whatever the entry's mode says


class ConfinedRoot:
    """The directory `root`, whose paths are opened one component at a time, never through a
    link. `made(inode)` hears of every directory made for a path's missing parents."""

    def __init__(self, root: Path, made: Callable[[int], None]) -> None:
        self.root = root
        self._made = made
        self._cursor: tuple[list[str], int] | None = None  # a directory's components, its fd
        self._busy = False  # the cursor's descriptor is lent out

    @contextlib.contextmanager
    def parent(self, parts: list[str], create: bool, what: str) -> Iterator[int | None]:
        """A descriptor of the directory holding `parts[-1]`, or None if it does not exist.

        With `create`, missing directories are made (implied parents of an entry); a component
        that is a symbolic link or a file is an error naming `what`. Without it, such a path
        simply has nothing to delete or read, and None is yielded. `[*dir, "."]` gives the
        directory `dir` itself. The descriptor is lent: the caller must not close it.
        """
        directory = parts[:-1]
        if self._busy:  # a path looked up while another is in use (a hardlink's target)
            fd = self._open(directory, create, what)
            try:
                yield fd
            finally:
                if fd is not None:
                    os.close(fd)
            return
        self._busy = True
        try:
            yield self._move_cursor(directory, create, what)
        finally:
            self._busy = False

    def _move_cursor(self, directory: list[str], create: bool, what: str) -> int | None:
        base, start = None, 0
        if self._cursor is not None:
            at, fd = self._cursor
            if at == directory:
                return fd
            if len(directory) > len(at) and directory[:len(at)] == at:
                base, start = fd, len(at)  # below the cursor: go on from there
        fd = self._open(directory, create, what, base, start)
        if fd is not None:
            self.close()
            self._cursor = (directory, fd)
        return fd

    def _open(self, directory: list[str], create: bool, what: str, base: int | None = None,
              start: int = 0) -> int | None:
        """An fd of `directory` (owned by the caller), opened from `base` (the root if None),
        which is at its component `start`."""
        fd = os.open(self.root, DIR_FLAGS) if base is None else os.dup(base)
        for depth in range(start, len(directory)):
            try:
                child = self._step(fd, directory, depth, create, what)
            finally:
                os.close(fd)
            if child is None:
                return None
            fd = child
        return fd

    def _step(self, fd: int, parts: list[str], depth: int, create: bool, what: str) -> int | None:
        """Open directory `parts[depth]` inside `fd`, as `parent` says; None where it stops."""
        part = parts[depth]
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not create:
                return None
            # The kernel says ENOTDIR or ELOOP for a link, depending on the flags' order.
            info = lstat_at(fd, part)
            link = info is not None and stat.S_ISLNK(info.st_mode)
            raise LayoutError(f"{what}: {through(parts[:depth + 1], link)}") from None
        os.mkdir(part, BUILD_DIR_MODE, dir_fd=fd)
        child = os.open(part, DIR_FLAGS, dir_fd=fd)
        self._made(os.fstat(child).st_ino)
        return child

    def forget(self, parts: list[str]) -> None:
        """`parts` was removed: drop the cursor if it was there or below."""
        if self._cursor is not None and self._cursor[0][:len(parts)] == parts:
            self.close()

    def close(self) -> None:
        if self._cursor is not None:
            os.close(self._cursor[1])
            self._cursor = None

    def read_file(self, path: str, cap: int) -> bytes | None:
        """A small regular file of the tree (/etc/passwd), or None if there is none.

        Reached like every entry, without following links: a link would be resolved by the
        container at run time inside its root, not by us on the build machine.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        with self.parent(parts, create=False, what=path) as parent_fd:
            if parent_fd is None:
                return None
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=parent_fd)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ELOOP):
                    return None
                raise
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = stream.read(cap + 1)
        if len(data) > cap:
            raise LayoutError(f"{path} in the image is larger than {cap >> 10} KiB; "
                              "that is not a user database")
        return data
