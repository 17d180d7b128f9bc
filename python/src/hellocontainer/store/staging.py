"""A private, locked folder beside an output, where a command builds what it then publishes.

Used by `build`/`index` (a layout's blobs) and `bundle` (a runtime bundle): the one place that
decides where unfinished work lives and how debris of killed runs is told from live work.

- It sits in the output's parent folder, so publishing is a rename within one file system:
  atomic, never half visible.
- It is held under flock(2) while its process lives. A run that was killed (SIGKILL, power loss)
  leaves a folder whose lock the kernel released; the next run for the same output removes it.
  Cleaning up and creating-then-locking happen under a short lock on the parent folder, so no
  run can take another's new, not yet locked folder for debris.
- It is removed whatever happens, unless it was published; parents created for it are removed
  again on failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci.leftovers import staging_prefix, stale_staging
from . import fdwalk

# How a folder is opened to hold flock(2) on it: a file in its place is refused (ENOTDIR), and no
# child process inherits the lock.
LOCK_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive flock(2) on a folder itself: no lock file to leave behind."""
    fd = os.open(directory, LOCK_FLAGS)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_tree(path: Path) -> None:
    """Remove a folder, whatever its depth and whatever modes its content gave its subfolders;
    quietly as far as it can: what is left is removed by the next run, as a killed run's is."""
    with contextlib.suppress(OSError):
        parent = os.open(path.parent, fdwalk.DIR_FLAGS)
        try:
            fdwalk.remove_at(parent, path.name)
        finally:
            os.close(parent)


def remove_stale(output: Path, kind: str) -> list[str]:
    """Remove what killed runs left beside `output`; the names removed."""
    removed = []
    for candidate in stale_staging(output, kind):
        remove_tree(candidate)
        removed.append(candidate.name)
    return removed


class StagingDir:
    """The folder `dir`, beside `output`, locked until this object is closed."""

    def __init__(self, output: Path, kind: str, flag: str) -> None:
        self.output = output
        self.kind = kind
        self.published = False  # True once the folder became (or went into) the output
        self._created: list[Path] = []
        self._lock_fd: int | None = None  # the folder's, while we hold its lock
        try:
            for parent in reversed([output.parent, *output.parent.parents]):
                if not parent.exists():
                    parent.mkdir()
                    self._created.append(parent)
            with locked(output.parent):
                remove_stale(output, kind)
                self.dir = Path(tempfile.mkdtemp(prefix=staging_prefix(output, kind), dir=output.parent))
                self._lock_fd = os.open(self.dir, LOCK_FLAGS)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError as error:
            self._cleanup(failed=True)
            raise LayoutError(os_error_message(
                error, f"cannot write {flag} {output}", f"or choose another {flag}")) from None

    def __enter__(self) -> StagingDir:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self._cleanup(failed=error is not None)

    def _cleanup(self, failed: bool) -> None:
        if not self.published and hasattr(self, "dir"):
            remove_tree(self.dir)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if failed:
            for parent in reversed(self._created):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only ever removes a folder we made and left empty


def write_beside(path: Path, data: bytes, mode: int) -> str:
    """A complete, fsynced temporary copy of `path` in its folder, with `mode` (never the
    umask's); the caller renames it over `path` (atomic) or removes it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp

