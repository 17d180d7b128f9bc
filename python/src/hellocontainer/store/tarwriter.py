"""A deterministic tar writer: the same entries always give the same bytes.

Used for image layers and for oci-archive files. Every header field that could carry something
of the build machine is pinned here, each with its reason, and file contents are streamed so
memory stays constant whatever the size of the binary.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import BinaryError
from ..oci.value import Value

BLOCK = 512
CHUNK = 1 << 20  # read files 1 MiB at a time: constant memory for any size


class TarEntry(Value):
    """One member: a directory, or a regular file whose bytes come from `source`."""

    __slots__ = ("gid", "mode", "mtime", "name", "size", "source", "uid")

    def __init__(
        self,
        name: str,
        mode: int,
        mtime: int,
        uid: int = 0,
        gid: int = 0,
        source: Path | None = None,
        size: int = 0,
    ) -> None:
        self.name = name  # relative POSIX path, no leading "/", no "." or ".." parts
        self.mode = mode
        self.mtime = mtime
        self.uid = uid
        self.gid = gid
        self.source = source  # None for a directory
        self.size = size

    @property
    def is_dir(self) -> bool:
        return self.source is None

    def sort_key(self) -> tuple[str, ...]:
        """Order by path components so that a directory always precedes its contents."""
        return tuple(self.name.split("/"))


def header(entry: TarEntry) -> bytes:
    """The ustar header block(s) of `entry`.

    PAX format is asked for, but Python writes a PAX extended header only when a field does not
    fit ustar (a name over 255 bytes, non-ASCII, a huge size), so ordinary layers carry none.
    """
    info = tarfile.TarInfo(entry.name + ("/" if entry.is_dir else ""))
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.mode = entry.mode
    info.size = 0 if entry.is_dir else entry.size
    info.mtime = entry.mtime  # an int: a float would force a PAX record with sub-second digits
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""  # host user names must not reach the image; ids say enough
    info.devmajor = info.devminor = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tar(entries: Iterable[TarEntry], out: BinaryIO) -> None:
    """Write `entries` in sorted order to `out`, then the end-of-archive marker."""
    for entry in sorted(entries, key=TarEntry.sort_key):
        out.write(header(entry))
        if entry.source is not None:
            _copy_exactly(entry.source, entry.size, out)
    # Two zero blocks end the archive (POSIX). No padding to a 10 KiB record: that would only
    # add zeros to the layer, and readers do not need it.
    out.write(b"\0" * (2 * BLOCK))


def _copy_exactly(source: Path, size: int, out: BinaryIO) -> None:
    """Copy exactly `size` bytes (the size already written in the header), then pad the block."""
    remaining = size
    with source.open("rb") as stream:
        while remaining:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)
        if remaining or stream.read(1):
            raise BinaryError(
                f"{source} changed size while it was being packaged; "
                "do not modify inputs during the build"
            )
    out.write(b"\0" * (-size % BLOCK))
