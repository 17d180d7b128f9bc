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


def write_archive(layout: Path, archive: Path, mtime: int) -> None:
    """Write `layout` as an oci-archive tar at `archive`, atomically (temporary file + rename)."""
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)  # like --output, parents are created
        fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.")
    except OSError as error:
        raise LayoutError(
            f"cannot write archive {archive}: {error.strerror}; choose a writable --archive"
        ) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            write_tar(_layout_entries(layout, mtime), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, archive)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
