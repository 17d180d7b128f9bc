"""oci-archive: the whole layout as one deterministic tar, for flashing or `skopeo copy oci-archive:`.

The same tar writer as the layers pins every header field. The archive holds the index, the
oci-layout file and exactly the blobs the index reaches, in sorted order, so its bytes depend only
on the layout's content, never on leftovers in the folder or the order a directory lists.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import LayoutError, os_error_message
from .layout import OCI_LAYOUT_BYTES
from .tarwriter import TarEntry, write_tar


def _layout_entries(top: Path, blobs: dict[str, Path], mtime: int) -> list[TarEntry]:
    """The members of the archive of one layout: its index, oci-layout and the blobs it reaches."""
    entries = [TarEntry("blobs", 0o755, mtime)]
    for algorithm in sorted({digest.split(":", 1)[0] for digest in blobs}):
        entries.append(TarEntry(f"blobs/{algorithm}", 0o755, mtime))
    for name in ("oci-layout", "index.json"):  # written to `top` by the caller
        entries.append(TarEntry(name, 0o644, mtime, source=top / name, size=(top / name).stat().st_size))
    for digest, path in sorted(blobs.items()):
        entries.append(TarEntry(f"blobs/{digest.replace(':', '/', 1)}", 0o644, mtime, source=path,
                                size=path.stat().st_size))
    return entries


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
            fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
        except OSError as error:
            raise LayoutError(
                os_error_message(error, f"cannot write archive {archive}", "or choose another --archive")
            ) from None
        self._stream = os.fdopen(fd, "wb")
        self._tmp = tmp
        self._moved = False

    def write(self, index: bytes, blobs: dict[str, Path]) -> None:
        """Fill the archive with a layout whose index.json is `index` and whose blobs are `blobs`."""
        self._stream.seek(0)
        self._stream.truncate()
        with tempfile.TemporaryDirectory(dir=os.path.dirname(self._tmp),
                                         prefix=f".{self.archive.name}.") as top:
            (Path(top) / "oci-layout").write_bytes(OCI_LAYOUT_BYTES)
            (Path(top) / "index.json").write_bytes(index)
            write_tar(_layout_entries(Path(top), blobs, self.mtime), self._stream)
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
            self._stream.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
