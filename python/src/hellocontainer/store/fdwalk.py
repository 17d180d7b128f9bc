"""Walking and removing directory trees through descriptors: no recursion, no links followed.

A tree may be an image's (a hostile layer nests directories thousands deep) or the debris of a
killed run, so every walk here is a loop over an explicit stack of names, holds at most two
descriptors at a time whatever the depth, and costs one open per directory: it goes down by
opening a child relative to its parent's descriptor and back up through `..`, checked to be the
directory it came from (a tree moved under a walk is an error, never a way out of it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from typing import Generic, TypeVar

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OWNER_ONLY = 0o700

T = TypeVar("T")
# enter(fd, item) -> the subdirectories of fd to visit next, each (name, item)
Enter = Callable[[int, T], list[tuple[str, T]]]
# leave(fd, parent_fd, name) once every subdirectory of fd was left; parent None for the top
Leave = Callable[[int, "int | None", "str | None"], None]


class _Frame(Generic[T]):
    __slots__ = ("identity", "name", "pending")  # a plain class: see oci/value.py

    def __init__(self, name: str | None, pending: list[tuple[str, T]],
                 identity: tuple[int, int]) -> None:
        self.name = name
        self.pending = pending
        self.identity = identity


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def walk(top: int, item: T, enter: Enter[T], leave: Leave) -> None:
    """Depth first below the directory `top` (borrowed, not closed): `enter` on the way down,
    `leave` on the way up, children before their parents."""
    frames: list[_Frame[T]] = [_Frame(None, enter(top, item), _identity(top))]
    fd = top
    try:
        while frames:
            frame = frames[-1]
            if frame.pending:
                name, child_item = frame.pending.pop()
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
                if fd != top:
                    os.close(fd)
                fd = child
                frames.append(_Frame(name, enter(fd, child_item), _identity(fd)))
                continue
            frames.pop()
            if not frames:
                leave(top, None, None)
                break
            up = top if len(frames) == 1 else os.open("..", DIR_FLAGS, dir_fd=fd)
            if up != top and _identity(up) != frames[-1].identity:
                os.close(up)
                raise OSError(errno.ESTALE, "a directory was moved while being walked")
            try:
                leave(fd, up, frame.name)
            finally:
                os.close(fd)
                fd = up
    finally:
        if fd != top:
            os.close(fd)


def lstat_at(parent_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(parent_fd: int, name: str) -> bool:
    """Delete `name` in `parent_fd` and all it holds; whether it was a directory.

    Anyone but root first gives back to themselves the directories an image made read-only
    (0555 is common) or unreadable, each before going into it.
    """
    info = lstat_at(parent_fd, name)
    if info is None:
        return False
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return False
    _reclaim(parent_fd, name)
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        walk(fd, None, _empty, _remove_left)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
    return True


def _reclaim(parent_fd: int, name: str) -> None:
    if os.geteuid() != 0:
        with contextlib.suppress(OSError):
            os.chmod(name, OWNER_ONLY, dir_fd=parent_fd, follow_symlinks=False)


def _empty(fd: int, _: None) -> list[tuple[str, None]]:
    """Unlink everything in `fd` but its subdirectories, which are returned to be emptied."""
    with os.scandir(fd) as scan:
        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan]
    subdirectories: list[tuple[str, None]] = []
    for name, is_dir in entries:
        if is_dir:
            _reclaim(fd, name)
            subdirectories.append((name, None))
        else:
            os.unlink(name, dir_fd=fd)
    return subdirectories


def _remove_left(_: int, parent_fd: int | None, name: str | None) -> None:
    if parent_fd is not None and name is not None:
        os.rmdir(name, dir_fd=parent_fd)


def subdirectories(fd: int, _: None = None) -> list[tuple[str, None]]:
    """`enter` for a walk of every directory."""
    with os.scandir(fd) as scan:
        return [(entry.name, None) for entry in scan if entry.is_dir(follow_symlinks=False)]
