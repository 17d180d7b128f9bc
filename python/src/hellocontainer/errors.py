"""The errors a user can cause, each carrying one line that names the problem and the fix.

Only the CLI prints them (as `hellocontainer: error: <message>`) and chooses the exit status;
every other module raises them and never prints or exits.
"""

from __future__ import annotations

import errno


class HelloContainerError(Exception):
    """A problem in the user's input or environment; str(error) is the whole one-line message."""

    exit_status = 1


class UsageError(HelloContainerError):
    """The command line itself is wrong (argparse's territory): exit status 2."""

    exit_status = 2


class SpecError(HelloContainerError):
    """The image settings (spec file or flags) are invalid."""


class BinaryError(HelloContainerError):
    """The binary cannot be packaged: missing, not ELF, wrong platform, dynamically linked."""


class DynamicBinaryError(BinaryError):
    """The binary is dynamically linked and --allow-dynamic was not given: exit status 3, so
    that a caller (the Yocto class) can tell this refusal from any other error."""

    exit_status = 3


class LayoutError(HelloContainerError):
    """An OCI image layout cannot be read or written."""


# What to do about each OS error a user can meet, in the words of the one line we print.
_FIXES = {
    errno.ENOSPC: "free space on that file system, or write somewhere else",
    errno.EDQUOT: "the disk quota is used up; free space, or write somewhere else",
    errno.EROFS: "that file system is read-only; write somewhere else",
    errno.EACCES: "check its permissions, or run as a user allowed to write there",
    errno.EPERM: "check its permissions and attributes (lsattr shows an immutable 'i')",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ELOOP: "a symbolic link on the way loops or is refused; point it at a real file",
    errno.EISDIR: "it is a directory; name a file",
    errno.ENOTDIR: "a part of the path is a file, not a directory; check the path",
    errno.ENOENT: "check the path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.EIO: "the device reported an I/O error; check the disk",
}


def os_error_message(error: OSError, what: str | None = None, fix: str | None = None) -> str:
    """One line for an OS error: the thing and path concerned, the cause, and what to do.

    Every OSError that reaches the user goes through here, so ENOSPC on a full disk and EACCES
    on an immutable folder read the same in every command. `fix` adds the flag to change.
    """
    path = None if error.filename is None else str(error.filename)
    named = bool(what and path and path not in what)
    subject = f"{what} ({path})" if named else what or path or "a file"
    cause = error.strerror or str(error)
    advice = [a for a in (_FIXES.get(error.errno or 0), fix) if a]
    return f"{subject}: {cause}" + "".join(f"; {a}" for a in advice)
