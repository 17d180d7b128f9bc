"""oci-archive: the whole layout as one deterministic tar, for flashing or `skopeo copy oci-archive:`.

The same tar writer as the layers pins every header field; the layout's own files are walked
in sorted order, so the archive's bytes depend only on the layout's content.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import LayoutError
from .tarwriter import TarEntry, write_tar


def _layout_entries(layout: Path, mtime: int) -> list[TarEntry]:
    entries = [TarEntry("blobs", 0o755, mtime), TarEntry("blobs/sha256", 0o755, mtime)]
    for name in ("oci-layout", "index.json"):
        path = layout / name
        entries.append(TarEntry(name, 0o644, mtime, source=path, size=path.stat().st_size))
    for blob in (layout / "blobs" / "sha256").iterdir():
        if blob.name.startswith("."):
            continue  # a temporary file of a build in progress, not part of the layout
        entries.append(TarEntry(f"blobs/sha256/{blob.name}", 0o644, mtime, source=blob,
                                size=blob.stat().st_size))
    return entries


class ArchiveWriter:
    """An oci-archive of a layout, written atomically once the layout is published.

    The temporary file is created up front, before anything is published, so that an archive
    path that cannot be written fails the build while it can still leave no output.
    """

    def __init__(self, archive: Path, layout: Path, mtime: int) -> None:
        self.archive, self.layout, self.mtime = archive, layout, mtime
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)  # like --output, parents are created
            fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
        except OSError as error:
            raise LayoutError(
                f"cannot write archive {archive}: {error.strerror}; choose a writable --archive"
            ) from None
        self._stream = os.fdopen(fd, "wb")
        self._tmp = tmp
        self._moved = False

    def write(self) -> None:
        """Fill the archive from the layout as it is now and move it into place."""
        with self._stream as stream:
            write_tar(_layout_entries(self.layout, self.mtime), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.archive)
        self._moved = True

    def discard(self) -> None:
        """Remove the temporary file unless `write` moved it into place."""
        if not self._moved:
            self._stream.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
