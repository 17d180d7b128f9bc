"""oci-archive: the whole layout as one deterministic tar, for flashing or `skopeo copy oci-archive:`.

The same tar writer as the layers pins every header field. The archive holds the index, the
oci-layout file and exactly the blobs the index reaches, in sorted order, so its bytes depend only
on the layout's content, never on leftovers in the folder or the order a directory lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from ..errors import LayoutError, os_error_message
from ..oci.leftovers import abandoned
from .tarwriter import TarEntry, write_tar


def _layout_entries(top: Path, blobs: dict[str, Path], mtime: int) -> list[TarEntry]:
    """The members of the archive of one layout: its index, oci-layout and the blobs it reaches."""
    entries = [TarEntry("blobs", 0o755, mtime)]
    for algorithm in sorted({digest.split(":", 1)[0] for digest in blobs}):
        entries.append(TarEntry(f"blobs/{algorithm}", 0o755, mtime))
    for name in ("oci-layout", "index.json"):
        entries.append(TarEntry(name, 0o644, mtime, source=top / name, size=(top / name).stat().st_size))
    for digest, path in sorted(blobs.items()):
        entries.append(TarEntry(f"blobs/{digest.replace(':', '/', 1)}", 0o644, mtime, source=path,
                                size=path.stat().st_size))
    return entries


def _remove_stale_temporaries(archive: Path) -> None:
    """Remove temporary archives of killed builds: `.NAME.*` files beside it, lock released."""
    for candidate in sorted(archive.parent.glob(f".{archive.name}.*")):
        if candidate.is_file() and not candidate.is_symlink() and abandoned(candidate):
            with contextlib.suppress(OSError):
                candidate.unlink()


class ArchiveWriter:
    """An oci-archive of a layout, complete on disk before the layout is published.

    The temporary file is created up front, so that an archive path that cannot be written
    fails the build before anything else is written; `write` fills it from exactly what is about
    to be published, and `commit` moves it into place once the layout is published.
    """

    def __init__(self, archive: Path, mtime: int) -> None:
        self.archive, self.mtime = archive, mtime
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)  # like --output, parents are created
            _remove_stale_temporaries(archive)
            fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
            # Held while this build lives, so a later build can tell our file from the debris
            # of a killed one (whose lock the kernel released) and remove only the latter.
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            raise LayoutError(
                os_error_message(error, f"cannot write archive {archive}", "or choose another --archive")
            ) from None
        self._stream = os.fdopen(fd, "wb")
        self._tmp = tmp
        self._moved = False

    def write(self, top: Path, blobs: dict[str, Path]) -> None:
        """Fill the archive with the layout whose oci-layout and index.json lie in `top` and
        whose blobs are `blobs`: exactly what is about to be published."""
        self._stream.seek(0)
        self._stream.truncate()
        write_tar(_layout_entries(top, blobs, self.mtime), self._stream)
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def commit(self) -> None:
        """Move the finished archive into place."""
        self._stream.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.archive)
        self._moved = True

    def discard(self) -> None:
        """Remove the temporary file unless `commit` moved it into place."""
        if not self._moved:
            # Closing flushes what a failed write left in the buffer, which fails again on a
            # full disk; the file must go all the same.
            with contextlib.suppress(OSError):
                self._stream.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
