"""The small text files a user names (a spec file, the target's passwd and group), read safely.

They are not part of any layout, but come from outside just the same: the file may be a FIFO, a
device or far too large, and its text may not be UTF-8. Every problem is one SpecError that says
what to fix.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LayoutError, SpecError, os_error_message
from ..oci.safefile import open_regular, read_bounded


def read_input_text(path: Path, what: str, cap: int, fix: str, encoding_fix: str) -> str:
    """The UTF-8 text of a small file the user names (a spec file, the target's passwd): a
    regular file of at most `cap` bytes. Every problem is one SpecError ending in `fix`
    (`encoding_fix` for text that is not UTF-8)."""
    try:
        data = read_bounded(open_regular(path, what), cap, f"{what} {path}")
    except LayoutError as error:
        raise SpecError(f"{error}; {fix}") from None
    except OSError as error:
        raise SpecError(os_error_message(error, f"{what} {path}", fix)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{what} {path} is not UTF-8 text ({error.reason} at byte "
                        f"{error.start}); {encoding_fix}") from None
