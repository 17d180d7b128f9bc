"""The errors a user can cause, each carrying one line that names the problem and the fix.

Only the CLI prints them (as `hellocontainer: error: <message>`) and chooses the exit status;
every other module raises them and never prints or exits.
"""

from __future__ import annotations


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


class LayoutError(HelloContainerError):
    """An OCI image layout cannot be read or written."""
